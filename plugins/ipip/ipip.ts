// ipip: pods on a node-local bridge; other nodes' pod CIDRs through one IP-in-IP device (`local <nodeIP>`,
// any remote), or straight over the underlay for same-subnet peers with crossSubnet (Calico's CrossSubnet).
// The wiring is pkg/wiring/bridgepod.ts and the fabric pkg/fabric (mode `ipip` in pkg/fabric/plan.ts).
import { fabricPlugin } from '../../pkg/fabric/plugin';

export const plugin = fabricPlugin('ipip');
