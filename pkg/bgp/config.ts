// The BGP keys of a host-gw config (`"routing": "bgp"`): this node's AS, its router ID, and either explicit
// neighbours (a leaf, route reflectors) or none (a full mesh of the peers, in our own AS).
import type { ConfigReader } from '../cni/config';
import { canonicalIP } from '../ipnet';

export interface BgpNeighbor {
  address: string;
  asn: number;
  /** where it came from, for messages: `bgp.neighbors[0]`, or `node node2` in a full mesh */
  key: string;
}

export interface BgpConf {
  asn: number;
  /** an IPv4 address; default: the node IP, resolved when the node is known */
  routerId?: string;
  /** explicit neighbours; empty: a full mesh of the peers (iBGP) */
  neighbors: BgpNeighbor[];
  /** seconds; BIRD's default (240) when unset. Short for tests: a peer that vanishes is withdrawn after this */
  holdTime?: number;
  /**
   * seconds a neighbour keeps this node's routes when its BIRD dies without closing its sessions (graceful
   * restart), so that pods keep talking while the agent starts it again; default 60
   */
  restartTime: number;
  /** the directory of BIRD's config and control socket (default: a `bird` directory in tscni's run dir) */
  dir?: string;
}

const ASN_MAX = 4294967295;

/** `bgp`, read and checked; every error names its key. */
export function parseBgp(c: ConfigReader): BgpConf {
  const b = c.object('bgp');
  if (!b) throw c.fail('bgp', 'is required with "routing": "bgp" (at least {"asn": <this node\'s AS>})');
  const asn = b.int('asn', undefined, 1, ASN_MAX);
  if (asn === undefined) throw b.fail('asn', 'is required');
  const rid = b.string('routerId');
  if (rid !== undefined && !(/^\d+\.\d+\.\d+\.\d+$/.test(rid) && canonicalIP(rid))) throw b.fail('routerId', `${JSON.stringify(rid)} is not an IPv4 address`);
  const neighbors = (b.objectList('neighbors') ?? []).map((n): BgpNeighbor => {
    const a = n.requiredString('address');
    const address = canonicalIP(a);
    if (!address) throw n.fail('address', `${JSON.stringify(a)} is not an IP address`);
    const nAsn = n.int('asn', undefined, 1, ASN_MAX);
    if (nAsn === undefined) throw n.fail('asn', 'is required');
    return { address, asn: nAsn, key: n.prefix };
  });
  const seen = new Set<string>();
  for (const n of neighbors) {
    if (seen.has(n.address)) throw b.fail('neighbors', `${n.address} is listed twice`);
    seen.add(n.address);
  }
  return {
    asn,
    routerId: rid,
    neighbors,
    holdTime: b.int('holdTime', undefined, 3, 65535),
    restartTime: b.int('restartTime', 60, 1, 4095),
    dir: b.absolutePath('dir'),
  };
}
