// A veth pair from the node into the pod, planned as kernel operations in named phases: on the node, the pair
// (its peer made straight inside the pod netns), what the node end needs before it goes up, up, and what comes
// after (routes through it); in the pod, sysctls before its end goes up, then addresses and up, then routes.
import { applyOps, deleteLink, OpError, type ApplyOptions, type KernelOp, type KernelRead, type ReadResults, type RouteSpec } from '../ip/ops';
import type { Undo } from '../undo';

export type { RouteSpec };

/** The pod end as the pair is made, before IPAM has answered. */
export interface PeerEnd {
  netns: string;
  ifName: string;
  mac: string;
  mtu: number;
}

export interface PodSide extends PeerEnd {
  /** the pair was made before `mac` was known (it follows from the IPAM result): the pod side sets it */
  setMac?: boolean;
  /** CIDRs, e.g. 10.22.0.5/16 on a bridge, 10.22.0.5/32 on ptp */
  addresses: string[];
  /** skip IPv6 duplicate address detection so the address is usable at once */
  nodad: boolean;
  /** applied in order after the link is up */
  routes: RouteSpec[];
  /** slashed keys, e.g. net/ipv4/conf/eth0/arp_notify */
  sysctls: Record<string, string>;
  /** false leaves the pod interface down (bridge disableContainerInterface) */
  up?: boolean;
  /** more pod-side operations once it is up (ptp's gateway neighbours) */
  after?: KernelOp[];
}

export interface HostSide {
  name: string;
  mac: string;
  mtu: number;
  master?: string;
  hairpin?: boolean;
  isolated?: boolean;
  /** node-side operations between creation and up (ptp's IPv6 link-local) */
  beforeUp?: KernelOp[];
  /** node-side operations once the pair is up (routes to the pod) */
  after?: KernelOp[];
}

/** The node end's phases in the order they run: the pair (its peer made inside the pod netns), before up, up, after. */
export interface NodeEndPlan {
  create: KernelOp[];
  beforeUp: KernelOp[];
  up: KernelOp[];
  after: KernelOp[];
}

/** The pod end's phases: sysctls before up, addresses and up, then routes. */
export interface PodEndPlan {
  beforeUp: KernelOp[];
  up: KernelOp[];
  after: KernelOp[];
}

/** Both ends; each side's lists are applied in one go (pkg/ip/ops.ts). */
export interface VethPlan {
  netns: string;
  hostName: string;
  node: NodeEndPlan;
  pod: PodEndPlan;
}

export const sysctlOps = (values: Record<string, string>): KernelOp[] => Object.entries(values).map(([key, value]) => ({ op: 'sysctl', key, value }));

/** The node end: what making the pair needs of the pod end is only its name, netns, MAC and MTU. */
export function planNodeEnd(host: HostSide, peer: PeerEnd): NodeEndPlan {
  const beforeUp: KernelOp[] = [];
  if (host.master) beforeUp.push({ op: 'link-set', name: host.name, master: host.master });
  if (host.hairpin || host.isolated)
    beforeUp.push({ op: 'port-set', name: host.name, ...(host.hairpin ? { hairpin: true } : {}), ...(host.isolated ? { isolated: true } : {}) });
  beforeUp.push(...(host.beforeUp ?? []));
  return {
    create: [
      {
        op: 'link-add',
        name: host.name,
        mac: host.mac,
        mtu: host.mtu,
        link: { type: 'veth', peer: { name: peer.ifName, mac: peer.mac, mtu: peer.mtu, netns: peer.netns } },
      },
    ],
    beforeUp,
    up: [{ op: 'link-set', name: host.name, up: true }],
    after: host.after ?? [],
  };
}

/** The pod end, once its addresses are known. */
export function planPodEnd(pod: PodSide): PodEndPlan {
  const up: KernelOp[] = pod.setMac ? [{ op: 'link-set', name: pod.ifName, mac: pod.mac }] : [];
  up.push(...pod.addresses.map((cidr): KernelOp => ({ op: 'addr-replace', dev: pod.ifName, cidr, nodad: pod.nodad })));
  const goesUp = pod.up !== false;
  if (goesUp) up.push({ op: 'link-set', name: pod.ifName, up: true });
  return {
    beforeUp: sysctlOps(pod.sysctls),
    up,
    after: goesUp ? [...pod.routes.map((route): KernelOp => ({ op: 'route-replace', route })), ...(pod.after ?? [])] : [],
  };
}

/** Both ends when everything is known at once (ptp). */
export function planVeth(host: HostSide, pod: PodSide): VethPlan {
  return { netns: pod.netns, hostName: host.name, node: planNodeEnd(host, pod), pod: planPodEnd(pod) };
}

/** The node side in order: pair, before up, up, after. */
export function nodeOps(n: NodeEndPlan): KernelOp[] {
  return [...n.create, ...n.beforeUp, ...n.up, ...n.after];
}

/** The pod side in order: sysctls, addresses and up, routes. */
export function podOps(p: PodEndPlan): KernelOp[] {
  return [...p.beforeUp, ...p.up, ...p.after];
}

/**
 * Apply node-side ops that begin with the pair's `link add`. From the moment the pair exists, its deletion is
 * on the undo stack; a failed `link add` made nothing, and the name may belong to a live pod, so then nothing is.
 */
export async function applyPairOps<const T extends readonly KernelRead[] = []>(
  undo: Undo,
  hostName: string,
  ops: KernelOp[],
  o: ApplyOptions<T> = {},
): Promise<ReadResults<T>> {
  try {
    const found = await applyOps(ops, o);
    undo.push(() => deleteLink(hostName));
    return found;
  } catch (e) {
    if (!(e instanceof OpError && e.index === 0)) undo.push(() => deleteLink(hostName));
    throw e;
  }
}
