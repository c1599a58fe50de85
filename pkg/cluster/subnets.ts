// Cluster-level IPAM (the seeds' name for it): each node leases one subnet of the cluster CIDR. Pure: which
// subnets a cluster CIDR holds, which one a node should try first, and the checks of the sizes.
import { formatCIDR, lastOf, networkOf, parseCIDR, type IPNet } from '../ipnet';

export interface SubnetPlan {
  cluster: IPNet;
  subnetLen: number;
}

/** The cluster CIDR and subnet length, checked; errors name the key. */
export function subnetPlan(clusterCIDR: string, subnetLen: number): SubnetPlan {
  const n = parseCIDR(clusterCIDR);
  if (!n) throw new Error(`clusterCIDR: ${JSON.stringify(clusterCIDR)} is not a CIDR`);
  const cluster = networkOf(n);
  const max = cluster.family === 4 ? 32 : 128;
  if (!Number.isInteger(subnetLen) || subnetLen < 1 || subnetLen > max)
    throw new Error(`subnetLen: ${subnetLen} is not a prefix length of ${clusterCIDR}'s family`);
  if (subnetLen < cluster.prefix) throw new Error(`subnetLen: /${subnetLen} is larger than the cluster CIDR ${formatCIDR(cluster)}`);
  // a pod subnet needs room for a gateway and pods: host-local takes network and broadcast out of it
  if (cluster.family === 4 && subnetLen > 30) throw new Error(`subnetLen: /${subnetLen} leaves no room for pods (at most /30)`);
  return { cluster, subnetLen };
}

/** How many subnets the cluster holds (capped: an IPv6 cluster can hold more than a number says). */
export function subnetCount(p: SubnetPlan): bigint {
  return 1n << BigInt(p.subnetLen - p.cluster.prefix);
}

/** The i-th subnet of the cluster CIDR. */
export function subnetAt(p: SubnetPlan, i: bigint): string {
  const size = 1n << BigInt((p.cluster.family === 4 ? 32 : 128) - p.subnetLen);
  return formatCIDR({ family: p.cluster.family, ip: p.cluster.ip + i * size, prefix: p.subnetLen });
}

/** Is `cidr` one of the plan's subnets (inside the cluster, of the right length, aligned)? */
export function isPlanSubnet(p: SubnetPlan, cidr: string): boolean {
  const n = parseCIDR(cidr);
  return !!n && n.family === p.cluster.family && n.prefix === p.subnetLen && networkOf(n).ip === n.ip && n.ip >= p.cluster.ip && n.ip <= lastOf(p.cluster);
}

/**
 * The subnets to try, in order: the one this node held before (when still a plan subnet), then the free ones from
 * a start that depends on the node (so nodes joining at once do not all race for the first free one). At most
 * `limit` of them.
 */
export function candidates(p: SubnetPlan, taken: ReadonlySet<string>, seed: number, previous?: string, limit = 64): string[] {
  const out: string[] = [];
  if (previous && isPlanSubnet(p, previous)) out.push(previous);
  const count = subnetCount(p);
  const start = BigInt(seed >>> 0) % count;
  for (let k = 0n; k < count && out.length < limit; k++) {
    const s = subnetAt(p, (start + k) % count);
    if (!taken.has(s) && s !== previous) out.push(s);
  }
  return out;
}
