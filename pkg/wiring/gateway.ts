// Gateways for the bridge: which address the bridge holds per family, and the pod's default routes.
import type { KernelOp } from '../ip/ops';
import { formatIP, networkOf, parseCIDR } from '../ipnet';
import type { Result } from '../cni/types';
import type { BridgePodConf } from './bridgepod';

export interface Gateways {
  /** the IPAM result with what the bridge adds: each IP on the pod interface, gateways, default routes */
  result: Result;
  /** CIDRs to put on the bridge: gateway address with the pod subnet's prefix */
  bridgeAddrs: string[];
  vlanDev: boolean;
}

/**
 * As the reference does: every IP belongs to interface 2 (the pod end); a gateway IPAM left out becomes the
 * subnet's first address; isDefaultGateway adds a default route per family unless IPAM gave one with a gateway.
 * The IPAM result is left as it was.
 */
export function calcGateways(ipam: Result, conf: Pick<BridgePodConf, 'isGateway' | 'isDefaultGateway' | 'vlan'>): Gateways {
  const bridgeAddrs: string[] = [];
  const defaults = new Set<number>();
  const ips = (ipam.ips ?? []).map((ip) => ({ ...ip, interface: 2 }));
  const routes = (ipam.routes ?? []).map((r) => ({ ...r }));
  for (const ip of ips) {
    const net = parseCIDR(ip.address);
    if (!net) continue;
    if (!ip.gateway && conf.isGateway) ip.gateway = formatIP(net.family, networkOf(net).ip + 1n);
    if (!conf.isGateway || !ip.gateway) continue;
    const cidr = `${ip.gateway}/${net.prefix}`;
    if (!bridgeAddrs.includes(cidr)) bridgeAddrs.push(cidr);
    if (conf.isDefaultGateway && !defaults.has(net.family)) {
      defaults.add(net.family);
      const have = routes.find((r) => parseCIDR(r.dst)?.prefix === 0 && parseCIDR(r.dst)?.family === net.family);
      if (!have) routes.push({ dst: net.family === 4 ? '0.0.0.0/0' : '::/0', gw: ip.gateway });
      else if (!have.gw) have.gw = ip.gateway;
    }
  }
  const result: Result = { ...ipam, ips };
  if (routes.length || ipam.routes) result.routes = routes;
  return { result, bridgeAddrs, vlanDev: conf.vlan !== 0 && conf.isGateway };
}

/** With a VLAN, the gateway lives on `<bridge>.<vlan>`, created on first use (`exists`: the node has it). */
export function vlanGatewayDevOps(conf: Pick<BridgePodConf, 'bridge' | 'vlan' | 'isGateway'>, exists: boolean): KernelOp[] {
  if (!conf.vlan || !conf.isGateway || exists) return [];
  const dev = `${conf.bridge}.${conf.vlan}`;
  return [
    { op: 'link-add', name: dev, link: { type: 'vlan', parent: conf.bridge, id: conf.vlan } },
    { op: 'link-set', name: dev, up: true },
  ];
}

/** Bridge VLAN entries for the pod's port (access port: PVID untagged) and the bridge itself. */
export function vlanBridgeOps(conf: BridgePodConf, hostVeth: string): KernelOp[] {
  if (!conf.vlan) return [];
  const ops: KernelOp[] = [
    { op: 'vlan-del', dev: hostVeth, vid: 1 },
    { op: 'vlan-add', dev: hostVeth, vid: conf.vlan, pvid: true, untagged: true },
  ];
  if (conf.isGateway) ops.push({ op: 'vlan-add', dev: conf.bridge, vid: conf.vlan, self: true });
  return ops;
}
