// host-gw: pods on a node-local bridge; a route to each peer's pod CIDR via the peer's node IP (one L2 segment).
import { fabricPlugin } from '../../pkg/fabric/plugin';

export const plugin = fabricPlugin('host-gw');
