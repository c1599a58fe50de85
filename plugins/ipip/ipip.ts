// ipip: pods on a node-local bridge; other nodes' pod CIDRs through one IP-in-IP device (`local <nodeIP>`, any
// remote): per peer `podCIDR via nodeIP dev <tunnel> onlink`; with crossSubnet, same-subnet peers go straight
// over the underlay (Calico's CrossSubnet). The live tests run in a guest kernel (e2e/ipip.e2e.ts).
import type { ConfigReader } from '../../pkg/cni/config';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { directRoute, family, hostCIDR, networkAddress, type FabricMode } from '../../pkg/fabric/mode';
import { fabricPlugin } from '../../pkg/fabric/plugin';
import { fabricDoctorView } from '../bridge/bridge';
import { isValidLinkName } from '../../pkg/wiring/names';

export interface IpipOptions {
  /** route same-subnet peers directly, tunnel only the others */
  crossSubnet: boolean;
  /** the tunnel device's name; default tscni.ipip */
  tunnelName?: string;
}

export const DEFAULT_TUNNEL_NAME = 'tscni.ipip';

function options(c: ConfigReader): IpipOptions {
  const tunnelName = c.string('tunnelName');
  if (tunnelName !== undefined && !isValidLinkName(tunnelName)) throw c.fail('tunnelName', `${JSON.stringify(tunnelName)} is not a valid interface name`);
  return { crossSubnet: c.bool('crossSubnet'), tunnelName };
}

export const ipipMode: FabricMode<IpipOptions> = {
  name: 'ipip',
  options,
  overhead: () => 20,
  deviceName: (o) => o.tunnelName ?? DEFAULT_TUNNEL_NAME,
  device(ctx) {
    // IP-in-IP carries IPv4 over IPv4 only (Calico refuses IPIP on IPv6 pools too): say so before the kernel does
    if (family(ctx.self.nodeIP) === 6)
      throw new CniError(ErrCode.InvalidConfig, `invalid config: nodeIP: ${ctx.self.nodeIP}: ipip needs an IPv4 underlay; use vxlan`);
    if (ctx.self.podCIDR.includes(':'))
      throw new CniError(ErrCode.InvalidConfig, `invalid config: podCIDR: ${ctx.self.podCIDR}: ipip carries IPv4 pods only; use vxlan`);
    return {
      name: ctx.device!,
      kind: 'ipip',
      link: { type: 'ipip', local: ctx.self.nodeIP, dev: ctx.underlay.dev },
      mtu: ctx.mtu,
      addresses: [hostCIDR(networkAddress(ctx.self.podCIDR))],
      infoData: { local: ctx.self.nodeIP, link: ctx.underlay.dev },
    };
  },
  sysctls(ctx) {
    return { [`net/ipv4/conf/${ctx.device}/rp_filter`]: '2' };
  },
  peer(ctx, p, onLink) {
    if (ctx.opts.crossSubnet && onLink) return { route: directRoute(ctx, p), via: 'direct' };
    return { route: { dst: p.podCIDR, gw: p.nodeIP, dev: ctx.device!, onlink: true }, via: 'tunnel' };
  },
};

export const plugin = fabricPlugin(ipipMode);

export const doctorView = fabricDoctorView(ipipMode);
