// A fabric mode (host-gw, vxlan, ipip; each lives in its plugin's folder) and what modes share. planFabric
// (pkg/fabric/plan.ts) does the common part: validation, MTU, route ownership; a mode says which keys it reads,
// which device it needs and what each peer gets.
import type { ConfigReader } from '../cni/config';
import { formatIP, networkOf, parseCIDR, type Family } from '../ipnet';
import type { RouteSpec } from '../ip/ops';
import type { DesiredDevice, FdbEntry, NeighEntry, Peer, UnderlayFacts } from './types';

export interface PlanContext<O = unknown> {
  self: { nodeIP: string; podCIDR: string };
  underlay: UnderlayFacts;
  /** the mode's own options, as its `options` read them */
  opts: O;
  /** the fabric MTU, already computed from the underlay and the mode's overhead */
  mtu: number;
  /** the mode's device name, resolved once (undefined for a mode without one) */
  device?: string;
}

export interface PeerPlan {
  route: RouteSpec;
  neighs?: NeighEntry[];
  fdb?: FdbEntry[];
  via: 'direct' | 'tunnel';
}

export interface FabricMode<O = unknown> {
  name: string;
  /** the mode's own config keys (vni, crossSubnet, ...), read and checked; errors name the key */
  options(c: ConfigReader): O;
  /** bytes the encapsulation takes from the underlay MTU, by the underlay's family */
  overhead(family: Family): number;
  /** the device's name, known before planning so reconcile can read its neighbours and FDB */
  deviceName?(opts: O): string;
  /** whether the device carries FDB entries (read with `bridge fdb`) */
  usesFdb?: boolean;
  /**
   * routes go via the peer's address of the pod family, not through a tunnel (host-gw): with dual stack the
   * peers file gives a node's IPv6 pod CIDR with its IPv6 address
   */
  nextHopInPodFamily?: boolean;
  device?(ctx: PlanContext<O>): DesiredDevice;
  /** node-wide or device sysctls (slashed keys) beyond forwarding */
  sysctls?(ctx: PlanContext<O>): Record<string, string>;
  /** what the peer gets, or why this mode cannot reach it (the peer is then left out, the others programmed) */
  peer(ctx: PlanContext<O>, peer: Peer, onLink: boolean): PeerPlan | { leftOut: string };
}

export const family = (ip: string): Family => (ip.includes(':') ? 6 : 4);

/** The pod CIDR's network address, held by a tunnel device and used as the peer's next hop. */
export function networkAddress(cidr: string): string {
  const n = networkOf(parseCIDR(cidr)!);
  return formatIP(n.family, n.ip);
}

export function hostCIDR(ip: string): string {
  return `${ip}/${family(ip) === 4 ? 32 : 128}`;
}

/** A route straight to the peer node over the underlay: host-gw, and the direct paths of vxlan and ipip. */
export function directRoute(ctx: PlanContext, p: Peer): RouteSpec {
  return { dst: p.podCIDR, gw: p.nodeIP, dev: ctx.underlay.dev };
}
