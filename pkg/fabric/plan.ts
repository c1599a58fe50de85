// Planning: (mode, this node, peers, underlay facts) -> the fabric the kernel should hold. Pure: no I/O.
import { CniError, ErrCode } from '../cni/errors';
import { contains, formatCIDR, insideAny, lastOf, networkOf, overlaps, parseCIDR, type Family, type IPNet } from '../ipnet';
import { family, type FabricMode, type PlanContext } from './mode';
import { RTPROT_TSCNI, type DesiredFabric, type LeftOutPeer, type Peer, type UnderlayFacts } from './types';
import { globalAddrs, type IpLink } from '../ip/ops';

/**
 * The underlay from `ip -json addr show`: the interface holding nodeIP; without nodeIP, the default-route
 * interface and its first global address of the pod CIDR's family (IPv4 preferred when unknown).
 */
export function underlayFacts(links: IpLink[], nodeIP: string | undefined, defaultDev: string | undefined, want?: Family): UnderlayFacts {
  const connected = (l: IpLink, f: Family) =>
    globalAddrs(l)
      .filter((a) => family(a.local) === f)
      .map((a) => formatCIDR(networkOf(parseCIDR(`${a.local}/${a.prefixlen}`)!)));
  const facts = (l: IpLink, ip: string): UnderlayFacts => {
    const f = family(ip);
    const otherIP = globalAddrs(l).find((a) => family(a.local) !== f)?.local;
    return {
      dev: l.ifname,
      mtu: l.mtu,
      nodeIP: ip,
      connected: connected(l, f),
      ...(otherIP ? { other: { nodeIP: otherIP, connected: connected(l, family(otherIP)) } } : {}),
    };
  };
  if (nodeIP) {
    for (const l of links) {
      if (globalAddrs(l).some((a) => a.local === nodeIP)) return facts(l, nodeIP);
    }
    throw new CniError(ErrCode.InvalidConfig, `invalid config: nodeIP: ${nodeIP} is not an address of any interface on this node`);
  }
  const l = links.find((x) => x.ifname === defaultDev);
  const addrs = l ? globalAddrs(l) : [];
  const pick = addrs.find((a) => family(a.local) === (want ?? 4)) ?? addrs[0];
  if (!l || !pick) {
    throw new CniError(
      ErrCode.InvalidConfig,
      `invalid config: nodeIP: not set, and ${defaultDev ? `the default-route interface ${defaultDev} has no address` : 'this node has no default route'} to take it from`,
    );
  }
  return facts(l, pick.local);
}

/** This node's pod networks: one CIDR per address family (dual stack), each with its cluster CIDR if known. */
export interface SelfNets {
  podCIDR: string;
  /** all of them, podCIDR first; [podCIDR] when absent */
  podCIDRs?: string[];
  clusterCIDR?: string;
  clusterCIDRs?: string[];
}

/**
 * The desired fabric. A peer that conflicts with this node or another peer, lies outside the cluster CIDR, or
 * that the mode cannot reach is left out and named in `leftOut`: one bad record never stops the others (nor a
 * pod's ADD). Throws only for this node's own config (MTU). `mtu`: the configured one, if any.
 * Dual stack: each pod family is planned with the peers whose pod CIDR is of that family (a node is one peer
 * entry per family, its underlay address the same), over the one underlay; the device and its addresses are one.
 */
export function planFabric<O>(mode: FabricMode<O>, self: SelfNets, peers: Peer[], underlay: UnderlayFacts, opts: O, mtu?: number): DesiredFabric {
  const nets = (self.podCIDRs?.length ? self.podCIDRs : [self.podCIDR]).map((c) => networkOf(parseCIDR(c)!));
  const clusters = self.clusterCIDRs ?? (self.clusterCIDR ? [self.clusterCIDR] : []);
  const fam = family(underlay.nodeIP);
  const maxMtu = underlay.mtu - mode.overhead(fam);
  if (mtu !== undefined && mtu > maxMtu) {
    throw new CniError(
      ErrCode.InvalidConfig,
      `invalid config: mtu: ${mtu} does not fit the underlay: ${underlay.dev} has MTU ${underlay.mtu}` +
        (mode.overhead(fam) ? `, ${mode.name} takes ${mode.overhead(fam)} of it (at most ${maxMtu})` : ''),
    );
  }
  // host-gw's next hop is the peer's address of the pod family (the kernel takes no IPv6 route via an IPv4 next
  // hop): a pod family other than the underlay's uses the underlay interface's address of that family
  const underlayOf = (net: IPNet): UnderlayFacts | undefined => {
    if (!mode.nextHopInPodFamily || net.family === fam) return underlay;
    return underlay.other && { ...underlay, nodeIP: underlay.other.nodeIP, connected: underlay.other.connected, other: undefined };
  };
  const deviceName = mode.deviceName?.(opts);
  const ctxOf = (net: IPNet): PlanContext<O> => {
    const u = underlayOf(net) ?? underlay;
    return { self: { nodeIP: u.nodeIP, podCIDR: formatCIDR(net) }, underlay: u, opts, mtu: mtu ?? maxMtu, device: deviceName };
  };
  const ctxs = nets.map(ctxOf);
  const devices = ctxs.map((c) => mode.device?.(c));
  const device = devices[0] && { ...devices[0], addresses: devices.flatMap((x) => x?.addresses ?? []) };
  const d: DesiredFabric = {
    mode: mode.name,
    families: nets.map((n) => n.family),
    mtu: ctxs[0].mtu,
    overhead: mode.overhead(fam),
    device,
    usesFdb: !!mode.usesFdb,
    routes: [],
    neighs: [],
    fdb: [],
    // forwarding is what the node does for pods of other nodes; the bridge plugin enables it per pod family too
    sysctls: Object.assign(
      {},
      ...nets.map((n) => ({ [n.family === 4 ? 'net/ipv4/ip_forward' : 'net/ipv6/conf/all/forwarding']: '1' })),
      mode.sysctls?.(ctxs[0]),
    ),
    paths: [],
    leftOut: [],
  };
  const fdbSeen = new Set<string>();
  const pathSeen = new Set<string>();
  // the peers of each pod family, in one pass; one of a family this node has no pod CIDR of goes with the first
  // family, whose screening names it
  const byFamily = new Map<Family, Peer[]>(nets.map((n) => [n.family, []]));
  for (const p of peers) (byFamily.get(family(p.podCIDR)) ?? byFamily.get(nets[0].family)!).push(p);
  nets.forEach((net, i) => {
    const mine = byFamily.get(net.family)!;
    const cluster = clusters.find((c) => parseCIDR(c)!.family === net.family);
    if (!underlayOf(net)) {
      const why = `${underlay.dev} has no IPv${net.family} address: ${mode.name} routes IPv${net.family} pods via the peers' IPv${net.family} addresses`;
      d.leftOut.push(...mine.map((p) => ({ peer: p.key, why })));
      return;
    }
    const ctx = ctxs[i];
    const { kept, leftOut } = screenPeers(mine, { nodeIP: ctx.self.nodeIP, podCIDR: formatCIDR(net), clusterCIDR: cluster });
    d.leftOut.push(...leftOut);
    // a peer inside a subnet connected on the underlay is on-link
    const onLink = insideAny(ctx.underlay.connected);
    for (const p of kept) {
      const pp = mode.peer(ctx, p, onLink(p.nodeIP));
      if ('leftOut' in pp) {
        d.leftOut.push({ peer: p.key, why: pp.leftOut });
        continue;
      }
      d.routes.push({ ...pp.route, proto: RTPROT_TSCNI });
      d.neighs.push(...(pp.neighs ?? []));
      // one FDB entry and one path per peer node, whatever its number of pod families
      for (const f of pp.fdb ?? []) if (!fdbSeen.has(`${f.mac}>${f.dst}`) && fdbSeen.add(`${f.mac}>${f.dst}`)) d.fdb.push(f);
      if (!pathSeen.has(p.nodeIP) && pathSeen.add(p.nodeIP)) d.paths.push({ peer: p.nodeIP, ...(p.name ? { name: p.name } : {}), via: pp.via });
    }
  });
  return d;
}

/**
 * Split the peers into those to program and those left out, with why: a peer that is this node, overlaps our pod
 * CIDR, is of the other family or outside the cluster CIDR; and both peers of a pair that share a node IP or
 * overlapping pod CIDRs (which one is right is not ours to guess). In O(n log n): node IPs by key, pod CIDRs as
 * address ranges sorted by start (two CIDRs overlap only when one holds the other).
 */
export function screenPeers(peers: Peer[], self: { nodeIP: string; podCIDR: string; clusterCIDR?: string }): { kept: Peer[]; leftOut: LeftOutPeer[] } {
  const selfNet = parseCIDR(self.podCIDR)!;
  const cluster = self.clusterCIDR ? parseCIDR(self.clusterCIDR) : undefined;
  const why = new Map<number, string[]>();
  const refuse = (i: number, reason: string) => why.set(i, [...(why.get(i) ?? []), reason]);
  const byNodeIP = new Map<string, number>();
  const ranges: Array<{ i: number; start: bigint; end: bigint }> = [];
  const alone = (p: Peer, net: IPNet): string | undefined => {
    if (p.nodeIP === self.nodeIP) return `nodeIP ${p.nodeIP} is this node`;
    if (family(p.nodeIP) !== family(self.nodeIP)) return `nodeIP ${p.nodeIP} is not of the family of this node's ${self.nodeIP}`;
    if (net.family !== selfNet.family) return `podCIDR ${p.podCIDR} is not of the family of this node's ${self.podCIDR}`;
    if (overlaps(net, selfNet)) return `podCIDR ${p.podCIDR} overlaps this node's podCIDR ${self.podCIDR}`;
    if (cluster && (!contains(cluster, net.family, net.ip) || net.prefix < cluster.prefix))
      return `podCIDR ${p.podCIDR} is not inside clusterCIDR ${self.clusterCIDR}`;
    return undefined;
  };
  peers.forEach((p, i) => {
    const net = parseCIDR(p.podCIDR)!;
    const bad = alone(p, net);
    if (bad) return void refuse(i, bad);
    const q = byNodeIP.get(p.nodeIP);
    if (q !== undefined) {
      refuse(i, `nodeIP ${p.nodeIP} is also ${peers[q].key}`);
      refuse(q, `nodeIP ${p.nodeIP} is also ${p.key}`);
    } else byNodeIP.set(p.nodeIP, i);
    ranges.push({ i, start: networkOf(net).ip, end: lastOf(net) });
  });
  ranges.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.i - b.i));
  let widest = ranges[0];
  for (const r of ranges.slice(1)) {
    if (r.start <= widest.end) {
      const [p, q] = [peers[r.i], peers[widest.i]];
      refuse(r.i, `podCIDR ${p.podCIDR} overlaps ${q.key} podCIDR ${q.podCIDR}`);
      refuse(widest.i, `podCIDR ${q.podCIDR} overlaps ${p.key} podCIDR ${p.podCIDR}`);
    }
    if (r.end > widest.end) widest = r;
  }
  const kept: Peer[] = [];
  const leftOut: LeftOutPeer[] = [];
  peers.forEach((p, i) => {
    const w = why.get(i);
    if (w) leftOut.push({ peer: p.key, why: w.join('; ') });
    else kept.push(p);
  });
  return { kept, leftOut };
}

/** One line per peer a plan (the fabric's, or BGP's) left out. */
export function leftOutLines(p: { leftOut: LeftOutPeer[] }): string[] {
  return p.leftOut.map((l) => `peer ${l.peer} left out: ${l.why}`);
}
