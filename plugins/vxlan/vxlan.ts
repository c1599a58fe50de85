// vxlan: pods on a node-local bridge; other nodes' pod CIDRs through one VTEP with static neighbour and FDB entries.
import { fabricPlugin } from '../../pkg/fabric/plugin';

export const plugin = fabricPlugin('vxlan');
