// The pod end: routes and sysctls derived from an IPAM result, and the CHECK of what ADD configured.
import { CniError, ErrCode } from '../cni/errors';
import type { CmdArgs, Result } from '../cni/types';
import { readLinks, readState, type RouteSpec } from '../ip/ops';
import { defaultRouteMtu, readOperstate } from '../ip/sysfs';
import { netnsExists } from '../ip/netns';
import { canonicalIP, networkOf, parseCIDR, formatCIDR, type Family } from '../ipnet';
import type { MasqRule } from '../nat';

const SCOPES: Record<number, RouteSpec['scope']> = { 0: 'global', 253: 'link', 254: 'host' };

/**
 * The pod MTU when the config sets none: the default-route interface's; on CHECK the one ADD gave the pod
 * (prevResult, 1.1.0), so a default route that changed since ADD does not fail a healthy pod.
 */
export function defaultPodMtu(a: CmdArgs): number {
  const added = a.command === 'CHECK' ? a.conf.prevResult?.interfaces?.find((i) => i.sandbox && i.name === a.ifName)?.mtu : undefined;
  return added ?? defaultRouteMtu();
}

function families(result: Result): Set<Family> {
  return new Set((result.ips ?? []).map((ip) => parseCIDR(ip.address)?.family).filter((f): f is Family => !!f));
}

/** The first gateway per family: routes without their own `gw` go through it, as in the reference. */
function defaultGateway(result: Result, family: Family): string | undefined {
  return result.ips?.find((ip) => ip.gateway && parseCIDR(ip.address)?.family === family)?.gateway;
}

export function podRoutes(result: Result, ifName: string): RouteSpec[] {
  return (result.routes ?? []).map((r) => {
    const family = parseCIDR(r.dst)?.family;
    if (!family) throw new CniError(ErrCode.DecodeFailure, `IPAM result route ${JSON.stringify(r.dst)} is not a CIDR`);
    return {
      dst: r.dst,
      gw: r.gw ?? defaultGateway(result, family),
      dev: ifName,
      mtu: r.mtu,
      advmss: r.advmss,
      metric: r.priority,
      table: r.table,
      scope: r.scope === undefined ? undefined : SCOPES[r.scope],
    };
  });
}

/** IPv6 needs its sysctls set in the pod; an IPv4-only pod needs none (see macFromIPv4 and arp_notify in bridgepod) */
export function podSysctls(ifName: string, result: Result, enableDad: boolean): Record<string, string> {
  const s: Record<string, string> = {};
  if (families(result).has(6)) {
    s[`net/ipv6/conf/${ifName}/disable_ipv6`] = '0';
    s[`net/ipv6/conf/${ifName}/accept_dad`] = enableDad ? '1' : '0';
    if (enableDad) s[`net/ipv6/conf/${ifName}/enhanced_dad`] = '1';
  }
  return s;
}

export function forwardingSysctls(result: Result): Record<string, string> {
  const f = families(result);
  const s: Record<string, string> = {};
  if (f.has(4)) s['net/ipv4/ip_forward'] = '1';
  if (f.has(6)) s['net/ipv6/conf/all/forwarding'] = '1';
  return s;
}

/** One rule per pod address: masquerade what leaves its own subnet and the extra excluded CIDRs. */
export function masqRules(a: CmdArgs, result: Result, excluded: string[]): MasqRule[] {
  return (result.ips ?? []).map((ip) => {
    const net = parseCIDR(ip.address)!;
    const own = formatCIDR(networkOf(net));
    return {
      network: a.conf.name,
      containerId: a.containerId,
      ifName: a.ifName,
      ip: ip.address.split('/')[0],
      excluded: [own, ...excluded.filter((c) => parseCIDR(c)?.family === net.family)],
    };
  });
}

/** The rules ADD made, as prevResult tells them (DEL); undefined without one. */
export function prevMasqRules(a: CmdArgs, excluded: string[]): MasqRule[] | undefined {
  const prev = a.conf.prevResult;
  if (!prev?.ips?.length) return undefined;
  try {
    return masqRules(a, prev, excluded);
  } catch {
    return undefined; // a prevResult we cannot read: find the rules by tag instead
  }
}

/**
 * Wait until both ends of a pod's veth report carrier, as the reference does for the node end before returning:
 * the pod may send the moment ADD returns. The kernel's link watcher reports carrier a few ms after a link goes
 * up, and up to a second later when it treats the change as not urgent (a veth whose ifindex equals its
 * peer's, as a node's first pod can have): poll finely at first.
 */
export async function waitPairUp(hostName: string, netns: string, ifName: string): Promise<void> {
  const ends: Array<[string, () => Promise<string | undefined>]> = [
    [hostName, async () => readOperstate(hostName)],
    [`${ifName} in ${netns}`, async () => (await readLinks(ifName, netns))[0]?.operstate?.toLowerCase()],
  ];
  for (const [name, state] of ends) {
    let s: string | undefined;
    for (const delay of [0, 1, 2, 3, 5, 10, 20, 50, 100, 250, 500, 1000]) {
      if (delay) await new Promise((r) => setTimeout(r, delay));
      s = await state();
      if (s === 'up' || s === 'unknown') break;
    }
    if (s !== 'up' && s !== 'unknown') throw new CniError(ErrCode.KernelOperation, `${name} did not come up`);
  }
}

function routeKey(dst: string): string {
  if (dst === 'default') return 'default';
  const n = parseCIDR(dst.includes('/') ? dst : `${dst}/${dst.includes(':') ? 128 : 32}`);
  if (!n) return dst;
  return n.prefix === 0 ? 'default' : formatCIDR(networkOf(n));
}

export interface PodExpectation {
  mtu: number;
  /** ifindex of the node-side veth: the pod interface must be its peer */
  peerIfindex?: number;
}

/** Compare the pod interface, its addresses and routes with prevResult; returns the problems found. */
export async function checkPod(a: CmdArgs, prev: Result, want: PodExpectation): Promise<string[]> {
  if (!netnsExists(a.netns)) throw new CniError(ErrCode.UnknownContainer, `netns ${a.netns} does not exist`);
  const problems: string[] = [];
  const iface = prev.interfaces?.find((i) => i.name === a.ifName && i.sandbox);
  if (!iface) return [`prevResult has no interface ${a.ifName} with a sandbox`];
  if (iface.sandbox !== a.netns) problems.push(`prevResult sandbox ${iface.sandbox} is not CNI_NETNS ${a.netns}`);
  let out;
  try {
    out = await readState(
      [
        { read: 'links', dev: a.ifName },
        { read: 'routes', table: 'all', family: 4 },
        { read: 'routes', table: 'all', family: 6 },
      ],
      { netns: a.netns },
    );
  } catch (e) {
    return [`pod interface ${a.ifName}: ${(e as Error).message}`];
  }
  const [links, routes4, routes6] = out;
  const link = links[0];
  if (link.linkinfo?.info_kind && link.linkinfo.info_kind !== 'veth') problems.push(`${a.ifName} is a ${link.linkinfo.info_kind}, not a veth`);
  if (iface.mac && link.address !== iface.mac) problems.push(`${a.ifName} has MAC ${link.address}, expected ${iface.mac}`);
  if (link.mtu !== want.mtu) problems.push(`${a.ifName} has MTU ${link.mtu}, expected ${want.mtu}`);
  if (want.peerIfindex !== undefined && link.link_index !== undefined && link.link_index !== want.peerIfindex) {
    problems.push(`${a.ifName} is not the peer of the node veth`);
  }
  const have = new Set((link.addr_info ?? []).map((x) => `${canonicalIP(x.local)}/${x.prefixlen}`));
  for (const ip of prev.ips ?? []) {
    const [addr, prefix] = ip.address.split('/');
    if (!have.has(`${canonicalIP(addr)}/${prefix}`)) problems.push(`${a.ifName} lacks address ${ip.address}`);
  }
  const routes = [...routes4, ...routes6].filter((r) => !r.dev || r.dev === a.ifName);
  for (const r of prev.routes ?? []) {
    const key = routeKey(r.dst);
    const gw = r.gw && canonicalIP(r.gw);
    const found = routes.some((x) => routeKey(x.dst) === key && (!gw || (x.gateway && canonicalIP(x.gateway) === gw)));
    if (!found) problems.push(`pod has no route to ${r.dst}${r.gw ? ` via ${r.gw}` : ''}`);
  }
  return problems;
}
