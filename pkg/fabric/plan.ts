// Planning: (mode, this node, peers, underlay facts) -> the fabric the kernel should hold. Pure: no I/O.
import { CniError, ErrCode } from '../cni/errors';
import { stableMac } from '../ip/mac';
import { contains, formatCIDR, formatIP, networkOf, overlaps, parseCIDR, parseIP, type Family } from '../ipnet';
import type { RouteSpec } from '../ip/ops';
import {
  RTPROT_TSCNI,
  type DesiredDevice,
  type DesiredFabric,
  type FabricOptions,
  type FdbEntry,
  type JsonLink,
  type NeighEntry,
  type Peer,
  type UnderlayFacts,
} from './types';

export interface Self {
  /** undefined: the address of the default-route interface */
  nodeIP?: string;
  podCIDR: string;
}

export interface PlanContext {
  self: { nodeIP: string; podCIDR: string };
  underlay: UnderlayFacts;
  opts: FabricOptions;
  /** the fabric MTU, already computed from the underlay and the mode's overhead */
  mtu: number;
}

export interface PeerPlan {
  route: RouteSpec;
  neighs?: NeighEntry[];
  fdb?: FdbEntry[];
  via: 'direct' | 'tunnel';
}

/**
 * A fabric mode: host-gw, vxlan, ipip. planFabric does the shared part (validation, MTU, ownership); a mode says
 * what device it needs and what each peer gets. A new mode is one object passed to registerFabricMode.
 */
export interface FabricMode {
  name: string;
  /** bytes the encapsulation takes from the underlay MTU, by the underlay's family */
  overhead(family: Family): number;
  /** the device's name, known before planning so reconcile can read its neighbours and FDB */
  deviceName?(opts: FabricOptions): string;
  /** whether the device carries FDB entries (read with `bridge fdb`) */
  usesFdb?: boolean;
  device?(ctx: PlanContext): DesiredDevice;
  /** node-wide or device sysctls (slashed keys) beyond forwarding */
  sysctls?(ctx: PlanContext): Record<string, string>;
  peer(ctx: PlanContext, peer: Peer, onLink: boolean): PeerPlan;
}

const MODES = new Map<string, FabricMode>();

export function registerFabricMode(m: FabricMode): void {
  MODES.set(m.name, m);
}

export function fabricMode(name: string): FabricMode {
  const m = MODES.get(name);
  if (!m) throw new CniError(ErrCode.InvalidConfig, `invalid config: type: unknown fabric mode ${JSON.stringify(name)}`);
  return m;
}

const family = (ip: string): Family => (ip.includes(':') ? 6 : 4);

/** The pod CIDR's network address, held by a tunnel device and used as the peer's next hop. */
export function networkAddress(cidr: string): string {
  const n = networkOf(parseCIDR(cidr)!);
  return formatIP(n.family, n.ip);
}

function hostCIDR(ip: string): string {
  return `${ip}/${family(ip) === 4 ? 32 : 128}`;
}

/** Is ip inside one of the connected subnets? */
export function isOnLink(ip: string, connected: string[]): boolean {
  const a = parseIP(ip);
  return !!a && connected.some((c) => contains(parseCIDR(c)!, a.family, a.ip));
}

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
 * peer, or that the mode cannot reach; nothing has been changed when it throws.
 */
export function planFabric(modeName: string, self: { podCIDR: string }, peers: Peer[], underlay: UnderlayFacts, opts: FabricOptions): DesiredFabric {
  const mode = fabricMode(modeName);
  const selfNet = networkOf(parseCIDR(self.podCIDR)!);
  const nodeIP = underlay.nodeIP;
  checkPeers(peers, { nodeIP, podCIDR: formatCIDR(selfNet) });

  const fam = family(nodeIP);
  const maxMtu = underlay.mtu - mode.overhead(fam);
  if (opts.mtu !== undefined && opts.mtu > maxMtu) {
    throw new CniError(
      ErrCode.InvalidConfig,
      `invalid config: mtu: ${opts.mtu} does not fit the underlay: ${underlay.dev} has MTU ${underlay.mtu}` +
        (mode.overhead(fam) ? `, ${modeName} takes ${mode.overhead(fam)} of it (at most ${maxMtu})` : ''),
    );
  }
  const ctx: PlanContext = { self: { nodeIP, podCIDR: formatCIDR(selfNet) }, underlay, opts, mtu: opts.mtu ?? maxMtu };
  const device = mode.device?.(ctx);
  const d: DesiredFabric = {
    mode: modeName,
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
  for (const p of peers) {
    const pp = mode.peer(ctx, p, isOnLink(p.nodeIP, underlay.connected));
    d.routes.push({ ...pp.route, proto: RTPROT_TSCNI });
    d.neighs.push(...(pp.neighs ?? []));
    d.fdb.push(...(pp.fdb ?? []));
    d.paths.push({ peer: p.nodeIP, ...(p.name ? { name: p.name } : {}), via: pp.via });
  }
  return d;
}

/** No peer may be this node, share a node IP with another, or overlap another pod CIDR (or ours). */
export function checkPeers(peers: Peer[], self: { nodeIP: string; podCIDR: string }): void {
  const bad = (p: Peer, why: string) => new CniError(ErrCode.InvalidConfig, `invalid config: ${p.key}: ${why}`);
  const selfNet = parseCIDR(self.podCIDR)!;
  const seen: Peer[] = [];
  for (const p of peers) {
    const net = parseCIDR(p.podCIDR)!;
    if (p.nodeIP === self.nodeIP) throw bad(p, `nodeIP ${p.nodeIP} is this node`);
    if (overlaps(net, selfNet)) throw bad(p, `podCIDR ${p.podCIDR} overlaps this node's podCIDR ${self.podCIDR}`);
    if (family(p.nodeIP) !== family(self.nodeIP)) throw bad(p, `nodeIP ${p.nodeIP} is not of the family of this node's ${self.nodeIP}`);
    if (net.family !== selfNet.family) throw bad(p, `podCIDR ${p.podCIDR} is not of the family of this node's ${self.podCIDR}`);
    for (const q of seen) {
      if (q.nodeIP === p.nodeIP) throw bad(p, `nodeIP ${p.nodeIP} is also ${q.key}`);
      if (overlaps(net, parseCIDR(q.podCIDR)!)) throw bad(p, `podCIDR ${p.podCIDR} overlaps ${q.key} podCIDR ${q.podCIDR}`);
    }
    seen.push(p);
  }
}

/** A route straight to the peer node over the underlay: host-gw, and the direct paths of vxlan and ipip. */
export function directRoute(ctx: PlanContext, p: Peer): RouteSpec {
  return { dst: p.podCIDR, gw: p.nodeIP, dev: ctx.underlay.dev };
}

// host-gw: one route per peer via its node IP; only for peers on the underlay's L2 segment.
registerFabricMode({
  name: 'host-gw',
  overhead: () => 0,
  peer(ctx, p, onLink) {
    if (!onLink) {
      throw new CniError(
        ErrCode.InvalidConfig,
        `invalid config: ${p.key}: nodeIP ${p.nodeIP} is not on-link on ${ctx.underlay.dev} (${ctx.underlay.connected.join(', ') || 'no subnet'}); ` +
          'host-gw needs every peer on the same L2 segment: use vxlan (or ipip) for this cluster',
      );
    }
    return { route: directRoute(ctx, p), via: 'direct' };
  },
});

export function defaultVtepName(vni: number): string {
  return `tscni.${vni}`;
}

// vxlan: one VTEP; per peer a route via the peer's network address (onlink), a permanent neighbour entry for it
// with the peer VTEP's MAC, and an FDB entry sending that MAC to the peer node. MACs derive from node IPs.
registerFabricMode({
  name: 'vxlan',
  overhead: (f) => (f === 4 ? 50 : 70),
  deviceName: (o) => o.vtepName ?? defaultVtepName(o.vni),
  usesFdb: true,
  device(ctx) {
    const name = ctx.opts.vtepName ?? defaultVtepName(ctx.opts.vni);
    const mac = stableMac(ctx.self.nodeIP);
    return {
      name,
      kind: 'vxlan',
      link: { type: 'vxlan', vni: ctx.opts.vni, local: ctx.self.nodeIP, dev: ctx.underlay.dev, port: ctx.opts.port, learning: false },
      mtu: ctx.mtu,
      mac,
      addresses: [hostCIDR(networkAddress(ctx.self.podCIDR))],
      infoData: { id: ctx.opts.vni, local: ctx.self.nodeIP, link: ctx.underlay.dev, port: ctx.opts.port, learning: false },
    };
  },
  sysctls(ctx) {
    const dev = ctx.opts.vtepName ?? defaultVtepName(ctx.opts.vni);
    // loose reverse-path check on the VTEP only: a peer whose directRouting setting differs from ours still gets
    // through here; the underlay keeps whatever the node's policy is
    return { [`net/ipv4/conf/${dev}/rp_filter`]: '2' };
  },
  peer(ctx, p, onLink) {
    const dev = ctx.opts.vtepName ?? defaultVtepName(ctx.opts.vni);
    const gw = networkAddress(p.podCIDR);
    const mac = stableMac(p.nodeIP);
    const neighs = [{ ip: gw, lladdr: mac, dev }];
    const fdb = [{ mac, dev, dst: p.nodeIP }];
    // directRouting: on-link peers skip encapsulation. Both ends decide by the same test (peer in our connected
    // subnet), so a pair of nodes on one subnet is direct both ways and rp_filter=1 sees symmetric paths.
    if (ctx.opts.directRouting && onLink) return { route: directRoute(ctx, p), neighs, fdb, via: 'direct' };
    return { route: { dst: p.podCIDR, gw, dev, onlink: true }, neighs, fdb, via: 'tunnel' };
  },
});

export function defaultTunnelName(): string {
  return 'tscni.ipip';
}

// ipip: one IP-in-IP device with `local <nodeIP>` (any remote); per peer `podCIDR via nodeIP dev <tun> onlink`.
// Planning only here: the live tests run in a UML guest, as this kernel has no ipip.
registerFabricMode({
  name: 'ipip',
  overhead: () => 20,
  deviceName: (o) => o.tunnelName ?? defaultTunnelName(),
  device(ctx) {
    const name = ctx.opts.tunnelName ?? defaultTunnelName();
    // IP-in-IP carries IPv4 over IPv4 only (Calico refuses IPIP on IPv6 pools too): say so before the kernel does
    if (family(ctx.self.nodeIP) === 6)
      throw new CniError(ErrCode.InvalidConfig, `invalid config: nodeIP: ${ctx.self.nodeIP}: ipip needs an IPv4 underlay; use vxlan`);
    if (ctx.self.podCIDR.includes(':'))
      throw new CniError(ErrCode.InvalidConfig, `invalid config: podCIDR: ${ctx.self.podCIDR}: ipip carries IPv4 pods only; use vxlan`);
    return {
      name,
      kind: 'ipip',
      link: { type: 'ipip', local: ctx.self.nodeIP, dev: ctx.underlay.dev },
      mtu: ctx.mtu,
      addresses: [hostCIDR(networkAddress(ctx.self.podCIDR))],
      infoData: { local: ctx.self.nodeIP, link: ctx.underlay.dev },
    };
  },
  sysctls(ctx) {
    return { [`net/ipv4/conf/${ctx.opts.tunnelName ?? defaultTunnelName()}/rp_filter`]: '2' };
  },
  peer(ctx, p, onLink) {
    if (ctx.opts.crossSubnet && onLink) return { route: directRoute(ctx, p), via: 'direct' };
    return { route: { dst: p.podCIDR, gw: p.nodeIP, dev: ctx.opts.tunnelName ?? defaultTunnelName(), onlink: true }, via: 'tunnel' };
  },
});
