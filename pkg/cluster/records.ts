// What a node registers in etcd under <prefix>/subnets/<subnet>: its name, node IP and pod subnet. Pure: keys,
// encoding, and the reading of what others wrote (a record that does not parse is skipped with a reason).
import { canonicalIP, formatCIDR, networkOf, parseCIDR } from '../ipnet';
import type { Peer } from '../fabric/types';

export interface NodeRecord {
  node: string;
  nodeIP: string;
  podCIDR: string;
}

/** The key of a subnet: its CIDR with the slash made a dash (10.244.3.0-24), under <prefix>/subnets/. */
export const subnetKey = (prefix: string, cidr: string): string => `${prefix.replace(/\/+$/, '')}/subnets/${cidr.replace('/', '-')}`;

export const subnetsPrefix = (prefix: string): string => `${prefix.replace(/\/+$/, '')}/subnets/`;

export const encodeRecord = (r: NodeRecord): string => JSON.stringify({ node: r.node, nodeIP: r.nodeIP, podCIDR: r.podCIDR });

/** A record read back: its key must name the subnet it holds. */
export function decodeRecord(prefix: string, key: string, value: string): NodeRecord | { skip: string } {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return { skip: `${key}: not JSON` };
  }
  const o = v as Partial<NodeRecord>;
  if (!o || typeof o !== 'object' || typeof o.node !== 'string' || !o.node) return { skip: `${key}: no node name` };
  const ip = typeof o.nodeIP === 'string' ? canonicalIP(o.nodeIP) : undefined;
  if (!ip) return { skip: `${key}: nodeIP ${JSON.stringify(o.nodeIP)} is not an IP address` };
  const n = typeof o.podCIDR === 'string' ? parseCIDR(o.podCIDR) : undefined;
  if (!n) return { skip: `${key}: podCIDR ${JSON.stringify(o.podCIDR)} is not a CIDR` };
  const podCIDR = formatCIDR(networkOf(n));
  if (subnetKey(prefix, podCIDR) !== key) return { skip: `${key}: holds podCIDR ${podCIDR}, not the subnet its key names` };
  return { node: o.node, nodeIP: ip, podCIDR };
}

/** The peers of `self`: every record but its own, as the peers file lists them. */
export function peersOf(records: NodeRecord[], self: string): Peer[] {
  return records
    .filter((r) => r.node !== self)
    .sort((a, b) => a.node.localeCompare(b.node))
    .map((r) => ({ nodeIP: r.nodeIP, podCIDR: r.podCIDR, name: r.node, key: `node ${r.node}` }));
}
