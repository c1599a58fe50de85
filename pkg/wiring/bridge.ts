// The node's Linux bridge: created once with a fixed MAC (so it never follows its ports), then reused.
import { CniError, ErrCode } from '../cni/errors';
import { randomMac } from '../ip/mac';
import { applyOps, OpError, readLinks, type IpAddr, type KernelOp } from '../ip/ops';
import { readLink, type SysLink } from '../ip/sysfs';
import { setSysctls } from '../ip/sysctl';
import { formatCIDR, networkOf, parseCIDR, overlaps } from '../ipnet';

export interface BridgeSpec {
  name: string;
  mtu: number;
  promisc: boolean;
  vlanFiltering: boolean;
}

/** Make sure the bridge exists and is up; tolerate a concurrent ADD creating it first. */
export async function ensureBridge(spec: BridgeSpec): Promise<SysLink> {
  let link = readLink(spec.name);
  if (!link) {
    try {
      await applyOps([{ op: 'link-add', name: spec.name, mac: randomMac(), mtu: spec.mtu, link: { type: 'bridge', vlanFiltering: spec.vlanFiltering } }]);
    } catch (e) {
      if (!(e instanceof OpError && e.exists)) throw e;
    }
    link = readLink(spec.name);
    if (!link) throw new CniError(ErrCode.KernelOperation, `bridge ${spec.name} vanished after creation`);
  }
  // sysfs shows a bridge's attributes a moment after the device (a concurrent ADD may have just made it): the
  // kind netlink reports is there from the start
  if (!link.isBridge && (await readLinks(spec.name))[0]?.linkinfo?.info_kind !== 'bridge') {
    throw new CniError(ErrCode.InvalidConfig, `invalid config: bridge: ${JSON.stringify(spec.name)} already exists but is not a bridge`);
  }
  const fix: KernelOp[] = [];
  if (spec.vlanFiltering) fix.push({ op: 'link-set', name: spec.name, vlanFiltering: true });
  if (spec.promisc) fix.push({ op: 'link-set', name: spec.name, promisc: true });
  if (!link.adminUp || fix.length) fix.push({ op: 'link-set', name: spec.name, up: true });
  await applyOps(fix);
  await ensureBridgeSysctls(spec.name);
  return link;
}

/** A bridge that accepts router advertisements could pick up a default route from a pod. */
export async function ensureBridgeSysctls(name: string): Promise<void> {
  await setSysctls({ [`net/ipv6/conf/${name}/accept_ra`]: '0' }).catch(() => undefined);
}

/**
 * Operations that put each gateway (CIDR: gateway address with the pod subnet's prefix) on the bridge.
 * An IPv4 bridge address other than the gateway, or an IPv6 one overlapping it, is a conflict (a node whose pod
 * subnet changed): an error naming it, or with forceAddress, removed.
 */
export function gatewayOps(dev: string, gateways: string[], existing: IpAddr[], forceAddress: boolean): KernelOp[] {
  const cmds: KernelOp[] = [];
  for (const gw of gateways) {
    const want = parseCIDR(gw)!;
    for (const a of existing) {
      const have = parseCIDR(`${a.local}/${a.prefixlen}`)!;
      if (have.family !== want.family) continue;
      const same = have.ip === want.ip && have.prefix === want.prefix;
      const conflicting = !same && (want.family === 4 ? !gateways.includes(`${a.local}/${a.prefixlen}`) : overlaps(have, want));
      if (!conflicting) continue;
      if (!forceAddress) {
        throw new CniError(
          ErrCode.InvalidConfig,
          `invalid config: ${dev} already has an IP address ${a.local}/${a.prefixlen} different from ${gw} ` +
            `(subnet ${formatCIDR(networkOf(want))}); set forceAddress to replace it`,
        );
      }
      cmds.push({ op: 'addr-del', dev, cidr: `${a.local}/${a.prefixlen}` });
    }
    // held as it should be: nothing to do (the common case, so a steady-state ADD writes nothing here)
    const held = existing.some((a) => {
      const h = parseCIDR(`${a.local}/${a.prefixlen}`);
      return h?.family === want.family && h.ip === want.ip && h.prefix === want.prefix && !a.tentative && !a.dadfailed;
    });
    if (held) continue;
    // nodad: pods need their IPv6 gateway at once, not after duplicate address detection
    cmds.push({ op: 'addr-replace', dev, cidr: gw, nodad: true });
  }
  return cmds;
}
