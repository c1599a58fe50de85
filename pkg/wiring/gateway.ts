// Gateways for the bridge: which address the bridge holds per family, and the pod's default routes.
import type { IpCommand } from '../ip/batch';
import { linkExists } from '../ip/sysfs';
import { formatIP, networkOf, parseCIDR } from '../ipnet';
import type { Result } from '../cni/types';
import type { BridgePodConf } from './bridgepod';

export interface Gateways {
  /** CIDRs to put on the bridge: gateway address with the pod subnet's prefix */
  bridgeAddrs: string[];
  vlanDev: boolean;
}

/**
 * As the reference does: every IP belongs to interface 2 (the pod end); a gateway IPAM left out becomes the
 * subnet's first address; isDefaultGateway adds a default route per family unless IPAM gave one with a gateway.
 */
export function calcGateways(result: Result, conf: BridgePodConf): Gateways {
  const bridgeAddrs: string[] = [];
  const defaults = new Set<number>();
  for (const ip of result.ips ?? []) {
    ip.interface = 2;
    const net = parseCIDR(ip.address);
    if (!net) continue;
    if (!ip.gateway && conf.isGateway) ip.gateway = formatIP(net.family, networkOf(net).ip + 1n);
    if (!conf.isGateway || !ip.gateway) continue;
    const cidr = `${ip.gateway}/${net.prefix}`;
    if (!bridgeAddrs.includes(cidr)) bridgeAddrs.push(cidr);
    if (conf.isDefaultGateway && !defaults.has(net.family)) {
      defaults.add(net.family);
      const dst = net.family === 4 ? '0.0.0.0/0' : '::/0';
      const routes = (result.routes ??= []);
      const have = routes.find((r) => parseCIDR(r.dst)?.prefix === 0 && parseCIDR(r.dst)?.family === net.family);
      if (!have) routes.push({ dst, gw: ip.gateway });
      else if (!have.gw) have.gw = ip.gateway;
    }
  }
  return { bridgeAddrs, vlanDev: conf.vlan !== 0 && conf.isGateway };
}

/** With a VLAN, the gateway lives on `<bridge>.<vlan>`, created here on first use. */
export function vlanGatewayDevCommands(conf: BridgePodConf): IpCommand[] {
  if (!conf.vlan || !conf.isGateway) return [];
  const dev = `${conf.bridge}.${conf.vlan}`;
  if (linkExists(dev)) return [];
  return [
    ['link', 'add', 'link', conf.bridge, 'name', dev, 'type', 'vlan', 'id', String(conf.vlan)],
    ['link', 'set', dev, 'up'],
  ];
}

/** `bridge vlan` commands for the pod's port (access port: PVID untagged) and the bridge itself. */
export function vlanBridgeCommands(conf: BridgePodConf, hostVeth: string): string[][] {
  if (!conf.vlan) return [];
  const vid = String(conf.vlan);
  const cmds = [
    ['vlan', 'del', 'dev', hostVeth, 'vid', '1'],
    ['vlan', 'add', 'dev', hostVeth, 'vid', vid, 'pvid', 'untagged'],
  ];
  if (conf.isGateway) cmds.push(['vlan', 'add', 'dev', conf.bridge, 'vid', vid, 'self']);
  return cmds;
}
