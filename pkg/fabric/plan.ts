// Planning: (mode, this node, peers, underlay facts) -> the fabric the kernel should hold. Pure: no I/O.
import { CniError, ErrCode } from '../cni/errors';
import { formatCIDR, lastOf, networkOf, overlaps, parseCIDR, type Family } from '../ipnet';
import { family, onLinkTest, type FabricMode, type PlanContext } from './mode';
import { RTPROT_TSCNI, type DesiredFabric, type JsonLink, type Peer, type UnderlayFacts } from './types';

/**
 * The underlay from `ip -json addr show`: the interface holding nodeIP; without nodeIP, the default-route
 * interface and its first global address of the pod CIDR's family (IPv4 preferred when unknown).
 */
export function underlayFacts(links: JsonLink[], nodeIP: string | undefined, defaultDev: string | undefined, want?: Family): UnderlayFacts {
  const globalAddrs = (l: JsonLink) =>
    (l.addr_info ?? []).filter((a) => (a.family === 'inet' || a.family === 'inet6') && a.scope !== 'link' && a.scope !== 'host');
  const facts = (l: JsonLink, ip: string): UnderlayFacts => ({
    dev: l.ifname,
    mtu: l.mtu,
    nodeIP: ip,
    connected: globalAddrs(l)
      .filter((a) => family(a.local) === family(ip))
      .map((a) => formatCIDR(networkOf(parseCIDR(`${a.local}/${a.prefixlen}`)!))),
  });
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

/**
 * The desired fabric. Throws a CniError naming the key for a peer that conflicts with this node or another
 * peer, or that the mode cannot reach; nothing has been changed when it throws. `mtu`: the configured one, if any.
 */
export function planFabric<O>(mode: FabricMode<O>, self: { podCIDR: string }, peers: Peer[], underlay: UnderlayFacts, opts: O, mtu?: number): DesiredFabric {
  const selfNet = networkOf(parseCIDR(self.podCIDR)!);
  const nodeIP = underlay.nodeIP;
  checkPeers(peers, { nodeIP, podCIDR: formatCIDR(selfNet) });

  const fam = family(nodeIP);
  const maxMtu = underlay.mtu - mode.overhead(fam);
  if (mtu !== undefined && mtu > maxMtu) {
    throw new CniError(
      ErrCode.InvalidConfig,
      `invalid config: mtu: ${mtu} does not fit the underlay: ${underlay.dev} has MTU ${underlay.mtu}` +
        (mode.overhead(fam) ? `, ${mode.name} takes ${mode.overhead(fam)} of it (at most ${maxMtu})` : ''),
    );
  }
  const ctx: PlanContext<O> = { self: { nodeIP, podCIDR: formatCIDR(selfNet) }, underlay, opts, mtu: mtu ?? maxMtu, device: mode.deviceName?.(opts) };
  const device = mode.device?.(ctx);
  const d: DesiredFabric = {
    mode: mode.name,
    family: selfNet.family,
    mtu: ctx.mtu,
    device,
    usesFdb: !!mode.usesFdb,
    routes: [],
    neighs: [],
    fdb: [],
    // forwarding is what the node does for pods of other nodes; the bridge plugin enables it per pod family too
    sysctls: { [selfNet.family === 4 ? 'net/ipv4/ip_forward' : 'net/ipv6/conf/all/forwarding']: '1', ...mode.sysctls?.(ctx) },
    paths: [],
  };
  const onLink = onLinkTest(underlay.connected);
  for (const p of peers) {
    const pp = mode.peer(ctx, p, onLink(p.nodeIP));
    d.routes.push({ ...pp.route, proto: RTPROT_TSCNI });
    d.neighs.push(...(pp.neighs ?? []));
    d.fdb.push(...(pp.fdb ?? []));
    d.paths.push({ peer: p.nodeIP, ...(p.name ? { name: p.name } : {}), via: pp.via });
  }
  return d;
}

/**
 * No peer may be this node, share a node IP with another, or overlap another pod CIDR (or ours). In O(n log n):
 * node IPs by key, pod CIDRs as address ranges sorted by start (two CIDRs overlap only when one holds the other).
 * The error names the later peer of a pair, as the file lists them.
 */
export function checkPeers(peers: Peer[], self: { nodeIP: string; podCIDR: string }): void {
  const bad = (p: Peer, why: string) => new CniError(ErrCode.InvalidConfig, `invalid config: ${p.key}: ${why}`);
  const selfNet = parseCIDR(self.podCIDR)!;
  const byNodeIP = new Map<string, Peer>();
  const ranges: Array<{ i: number; start: bigint; end: bigint }> = [];
  peers.forEach((p, i) => {
    const net = parseCIDR(p.podCIDR)!;
    if (p.nodeIP === self.nodeIP) throw bad(p, `nodeIP ${p.nodeIP} is this node`);
    if (overlaps(net, selfNet)) throw bad(p, `podCIDR ${p.podCIDR} overlaps this node's podCIDR ${self.podCIDR}`);
    if (family(p.nodeIP) !== family(self.nodeIP)) throw bad(p, `nodeIP ${p.nodeIP} is not of the family of this node's ${self.nodeIP}`);
    if (net.family !== selfNet.family) throw bad(p, `podCIDR ${p.podCIDR} is not of the family of this node's ${self.podCIDR}`);
    const q = byNodeIP.get(p.nodeIP);
    if (q) throw bad(p, `nodeIP ${p.nodeIP} is also ${q.key}`);
    byNodeIP.set(p.nodeIP, p);
    ranges.push({ i, start: networkOf(net).ip, end: lastOf(net) });
  });
  ranges.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.i - b.i));
  let widest = ranges[0];
  for (const r of ranges.slice(1)) {
    if (r.start <= widest.end) {
      const [p, q] = r.i > widest.i ? [peers[r.i], peers[widest.i]] : [peers[widest.i], peers[r.i]];
      throw bad(p, `podCIDR ${p.podCIDR} overlaps ${q.key} podCIDR ${q.podCIDR}`);
    }
    if (r.end > widest.end) widest = r;
  }
}
