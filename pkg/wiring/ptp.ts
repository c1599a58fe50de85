// Calico-style routed pod wiring: a veth whose node end has no address, a /32 (/128) route to the pod
// through it, and a pod that reaches everything via a fake gateway (169.254.1.1, fe80::ecee:eeff:feee:eeee).
// Planning is pure (unit-tested without root); applyPtpPlan makes the kernel match it.
//
// How the pod resolves its gateway. Proxy ARP on the node end answers for 169.254.1.1 only when the node
// has a route to 169.254.1.1 out of *another* interface (arp_process needs a forwarding route, not one back
// out of the asking port): a node without a default route leaves the pod's first ARP unanswered, and with
// the default proxy_delay (a random wait of up to 0.8 s) even a node with one answers late. Options weighed:
//   - a node route for 169.254.1.1/32 out of some other device: node-wide state shared by every pod,
//     which DEL must not remove while other pods need it, and there may be no sensible device to name;
//   - a permanent neighbour entry inside the pod, 169.254.1.1 -> ee:ee:ee:ee:ee:ee: per pod, gone with
//     the pod's interface, one more line in the pod batch (no extra spawn), no ARP round trip at all.
// We add the neighbour entry (and the same for the IPv6 link-local gateway, which spares the NS round
// trip); proxy_arp/proxy_ndp stay on as in Calico, for a pod whose neighbour table gets flushed.
// The node-to-pod direction resolves normally: ARP works at once; for NS the node end needs a usable
// link-local source address, so it gets fe80::ecee:eeff:feee:eeee with nodad instead of a kernel-made
// one that would sit tentative through DAD (NS from a tentative-only link is not sent at all).
import type { Result, Route } from '../cni/types';
import { linkLocalFromMac } from '../ip/mac';
import { applyOps, type KernelOp } from '../ip/ops';
import type { Undo } from '../undo';
import { parseCIDR, type Family } from '../ipnet';
import { applyPairOps, nodeOps, planVeth, podOps, sysctlOps, type RouteSpec, type VethPlan } from './veth';

export const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
export const GATEWAY4 = '169.254.1.1';
export const GATEWAY6 = linkLocalFromMac(HOST_MAC); // fe80::ecee:eeff:feee:eeee
const GATEWAY: Record<Family, string> = { 4: GATEWAY4, 6: GATEWAY6 };
const DEFAULT_DST: Record<Family, string> = { 4: '0.0.0.0/0', 6: '::/0' };
const HOST_PREFIX: Record<Family, number> = { 4: 32, 6: 128 };

export interface PtpPodInput {
  netns: string;
  ifName: string;
  hostName: string;
  podMac: string;
  mtu: number;
  /** the IPAM result: addresses with the IPAM prefix, routes (their gw is ignored) */
  ipam: Result;
  /** the node's net.ipv6.conf.default.disable_ipv6 is 1: a new node end has no IPv6 until we enable it */
  nodeIpv6DisabledByDefault?: boolean;
}

export interface PtpPlan {
  veth: VethPlan;
  /**
   * hostSysctls go right after the pair is made, before the node end's IPv6 lines, which need IPv6 enabled on it
   * (a node whose default disables it); otherwise after all node lines (one spawn)
   */
  hostSysctlsFirst: boolean;
  /** node-side sysctls, written after the pair exists (slashed keys) */
  hostSysctls: Record<string, string>;
  /** the addresses as the pod holds them: /32 and /128 */
  podAddresses: string[];
  /** pod routes after the gateway's own scope-link route */
  podRoutes: RouteSpec[];
  families: Family[];
  /** the CNI result (without interfaces): IPAM's addresses and prefixes, our gateways and routes */
  result: Result;
}

export function familiesOf(r: Result): Family[] {
  const f = new Set((r.ips ?? []).map((ip) => parseCIDR(ip.address)?.family).filter((x): x is Family => !!x));
  return ([4, 6] as Family[]).filter((x) => f.has(x));
}

export function hostAddress(cidr: string): string {
  const n = parseCIDR(cidr)!;
  return `${cidr.split('/')[0]}/${HOST_PREFIX[n.family]}`;
}

/** IPAM routes of each family (or the default route when IPAM gives none for it), all via our gateway. */
export function ptpRoutes(ipam: Result, ifName: string, families: Family[]): RouteSpec[] {
  const out: RouteSpec[] = [];
  for (const f of families) {
    const given = (ipam.routes ?? []).filter((r) => parseCIDR(r.dst)?.family === f);
    const routes: Route[] = given.length ? given : [{ dst: DEFAULT_DST[f] }];
    for (const r of routes) {
      // an IPAM gateway is an address of the pod subnet, unreachable from a /32: the node end routes instead
      out.push({ dst: r.dst, gw: GATEWAY[f], dev: ifName, mtu: r.mtu, advmss: r.advmss, metric: r.priority, table: r.table });
    }
  }
  return out;
}

export function hostSysctls(hostName: string, families: Family[], ipv6Available: boolean): Record<string, string> {
  const s: Record<string, string> = {};
  // global forwarding first: writing it resets every interface's own forwarding flag
  if (families.includes(4)) s['net/ipv4/ip_forward'] = '1';
  if (families.includes(6)) s['net/ipv6/conf/all/forwarding'] = '1';
  if (families.includes(4)) {
    s[`net/ipv4/conf/${hostName}/forwarding`] = '1';
    s[`net/ipv4/conf/${hostName}/proxy_arp`] = '1';
    s[`net/ipv4/neigh/${hostName}/proxy_delay`] = '0';
  }
  if (families.includes(6)) {
    s[`net/ipv6/conf/${hostName}/disable_ipv6`] = '0';
    s[`net/ipv6/conf/${hostName}/accept_dad`] = '0';
    s[`net/ipv6/conf/${hostName}/forwarding`] = '1';
    s[`net/ipv6/conf/${hostName}/proxy_ndp`] = '1';
  }
  // a pod must not become the node's router by sending router advertisements
  if (ipv6Available) s[`net/ipv6/conf/${hostName}/accept_ra`] = '0';
  return s;
}

export function planPtpPod(p: PtpPodInput, ipv6Available = true): PtpPlan {
  const families = familiesOf(p.ipam);
  const v6 = families.includes(6);
  const podAddresses = (p.ipam.ips ?? []).map((ip) => hostAddress(ip.address));
  const podRoutes = ptpRoutes(p.ipam, p.ifName, families);
  const gatewayRoutes: RouteSpec[] = families.includes(4) ? [{ dst: `${GATEWAY4}/32`, dev: p.ifName, scope: 'link' }] : [];

  // node end: the v6 link-local (before up, so the kernel makes none of its own), then routes to the pod
  const beforeUp: KernelOp[] = v6
    ? [
        { op: 'link-set', name: p.hostName, addrGenMode: 'none' },
        { op: 'addr-replace', dev: p.hostName, cidr: `${GATEWAY6}/64`, nodad: true },
      ]
    : [];
  const hostRoutes = podAddresses.map((dst): KernelOp => ({ op: 'route-replace', route: { dst, dev: p.hostName, scope: 'link' } }));

  const veth = planVeth(
    { name: p.hostName, mac: HOST_MAC, mtu: p.mtu, beforeUp, after: hostRoutes },
    {
      netns: p.netns,
      ifName: p.ifName,
      mac: p.podMac,
      mtu: p.mtu,
      addresses: podAddresses,
      nodad: true,
      routes: [...gatewayRoutes, ...podRoutes],
      // no arp_notify: the node end is new, so no neighbour holds a stale entry for this address
      sysctls: v6 ? { [`net/ipv6/conf/${p.ifName}/disable_ipv6`]: '0', [`net/ipv6/conf/${p.ifName}/accept_dad`]: '0' } : {},
      after: gatewayNeighbours(p.ifName, families),
    },
  );

  return {
    veth,
    hostSysctlsFirst: v6 && !!p.nodeIpv6DisabledByDefault,
    hostSysctls: hostSysctls(p.hostName, families, ipv6Available),
    podAddresses,
    podRoutes,
    families,
    result: ptpResult(p.ipam, podRoutes),
  };
}

export function gatewayNeighbours(ifName: string, families: Family[]): KernelOp[] {
  return families.map((f) => ({ op: 'neigh-replace', dev: ifName, ip: GATEWAY[f], mac: HOST_MAC }));
}

/**
 * The result says what the pod holds, as Calico's does: each address as /32 (/128), via the fake gateways. (The
 * reference ptp reports IPAM's prefix; no runtime reads it. Masquerade takes the pod subnet from IPAM instead.)
 */
export function ptpResult(ipam: Result, routes: RouteSpec[]): Result {
  return {
    cniVersion: ipam.cniVersion,
    ips: (ipam.ips ?? []).map((ip) => ({ address: hostAddress(ip.address), gateway: GATEWAY[parseCIDR(ip.address)!.family], interface: 1 })),
    routes: routes.map((r) => {
      const x: Route = { dst: r.dst, gw: r.gw };
      if (r.mtu !== undefined) x.mtu = r.mtu;
      if (r.advmss !== undefined) x.advmss = r.advmss;
      if (r.metric !== undefined) x.priority = r.metric;
      if (r.table !== undefined) x.table = r.table;
      return x;
    }),
    dns: ipam.dns,
  };
}

/** The result's addresses as the pod holds them; a result of an older tscni carried IPAM's prefixes. */
export function asHeld(r: Result): Result {
  return { ...r, ips: (r.ips ?? []).map((ip) => ({ ...ip, address: hostAddress(ip.address) })) };
}

/**
 * The result's addresses at the prefix of the IPAM subnet holding them, as masquerade leaves that subnet alone:
 * `subnetOf` names it (from the IPAM config); an address it does not know keeps the prefix it has.
 */
export function withSubnets(r: Result, subnetOf: (ip: string) => number | undefined): Result {
  return {
    ...r,
    ips: (r.ips ?? []).map((ip) => {
      const [addr, prefix] = ip.address.split('/');
      const p = subnetOf(addr);
      return { ...ip, address: `${addr}/${p ?? prefix}` };
    }),
  };
}

/**
 * The node side (pair, link-local, routes; its sysctls are direct /proc writes), then the pod side (sysctls only
 * with IPv6, then one batch). Once the pair exists its deletion is on the undo stack (a failed `link add` made
 * nothing).
 */
export async function applyPtpPlan(plan: PtpPlan, undo: Undo): Promise<void> {
  const { node } = plan.veth;
  const sysctls = sysctlOps(plan.hostSysctls);
  const nodeSide = plan.hostSysctlsFirst ? [...node.create, ...sysctls, ...node.beforeUp, ...node.up, ...node.after] : [...nodeOps(plan.veth.node), ...sysctls];
  await applyPairOps(undo, plan.veth.hostName, nodeSide);
  await applyOps(podOps(plan.veth.pod), { netns: plan.veth.netns });
}
