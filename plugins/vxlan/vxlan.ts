// vxlan: pods on a node-local bridge; other nodes' pod CIDRs through one VTEP. Per peer: a route via the peer's
// pod network address (onlink), a permanent neighbour entry for it with the peer VTEP's MAC, and an FDB entry
// sending that MAC to the peer node. MACs derive from node IPs, so a peer needs only {nodeIP, podCIDR}.
import type { ConfigReader } from '../../pkg/cni/config';
import { directRoute, hostCIDR, networkAddress, type FabricMode } from '../../pkg/fabric/mode';
import { fabricPlugin } from '../../pkg/fabric/plugin';
import { fabricDoctorView } from '../bridge/bridge';
import { stableMac } from '../../pkg/ip/mac';
import { isValidLinkName } from '../../pkg/wiring/names';

export interface VxlanOptions {
  vni: number;
  /** the VXLAN UDP port */
  port: number;
  /** the VTEP's name; default tscni.<vni> */
  vtepName?: string;
  /** peers on this node's subnet are routed directly, without encapsulation */
  directRouting: boolean;
}

export function defaultVtepName(vni: number): string {
  return `tscni.${vni}`;
}

function options(c: ConfigReader): VxlanOptions {
  const vtepName = c.string('vtepName');
  if (vtepName !== undefined && !isValidLinkName(vtepName)) throw c.fail('vtepName', `${JSON.stringify(vtepName)} is not a valid interface name`);
  return { vni: c.int('vni', 1, 1, 16777215), port: c.int('port', 8472, 1, 65535), vtepName, directRouting: c.bool('directRouting') };
}

export const vxlanMode: FabricMode<VxlanOptions> = {
  name: 'vxlan',
  options,
  overhead: (f) => (f === 4 ? 50 : 70),
  deviceName: (o) => o.vtepName ?? defaultVtepName(o.vni),
  usesFdb: true,
  device(ctx) {
    const mac = stableMac(ctx.self.nodeIP);
    const { vni, port } = ctx.opts;
    return {
      name: ctx.device!,
      kind: 'vxlan',
      link: { type: 'vxlan', vni, local: ctx.self.nodeIP, dev: ctx.underlay.dev, port, learning: false },
      mtu: ctx.mtu,
      mac,
      addresses: [hostCIDR(networkAddress(ctx.self.podCIDR))],
      infoData: { id: vni, local: ctx.self.nodeIP, link: ctx.underlay.dev, port, learning: false },
    };
  },
  sysctls(ctx) {
    // loose reverse-path check on the VTEP only: a peer whose directRouting setting differs from ours still gets
    // through here; the underlay keeps whatever the node's policy is
    return { [`net/ipv4/conf/${ctx.device}/rp_filter`]: '2' };
  },
  peer(ctx, p, onLink) {
    const dev = ctx.device!;
    const gw = networkAddress(p.podCIDR);
    const mac = stableMac(p.nodeIP);
    const neighs = [{ ip: gw, lladdr: mac, dev }];
    const fdb = [{ mac, dev, dst: p.nodeIP }];
    // directRouting: on-link peers skip encapsulation. Both ends decide by the same test (peer in our connected
    // subnet), so a pair of nodes on one subnet is direct both ways and rp_filter=1 sees symmetric paths.
    if (ctx.opts.directRouting && onLink) return { route: directRoute(ctx, p), neighs, fdb, via: 'direct' };
    return { route: { dst: p.podCIDR, gw, dev, onlink: true }, neighs, fdb, via: 'tunnel' };
  },
};

export const plugin = fabricPlugin(vxlanMode);

export const doctorView = fabricDoctorView(vxlanMode);
