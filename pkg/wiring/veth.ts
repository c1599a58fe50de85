// A veth pair from the node into the pod, planned as kernel operations in named phases: on the node, the pair
// (its peer made straight inside the pod netns), what the node end needs before it goes up, up, and what comes
// after (routes through it); in the pod, sysctls before its end goes up, then addresses and up, then routes.
import { applyOps, deleteLink, OpError, type ApplyOptions, type KernelOp, type RouteSpec } from '../ip/ops';
import type { Undo } from '../undo';

export type { RouteSpec };

export interface PodSide {
  netns: string;
  ifName: string;
  mac: string;
  /** the pair was made before `mac` was known (it follows from the IPAM result): the pod side sets it */
  setMac?: boolean;
  mtu: number;
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

/** The phases in the order they run; each side's lists are applied in one go (pkg/ip/ops.ts). */
export interface VethPlan {
  netns: string;
  hostName: string;
  node: { create: KernelOp[]; beforeUp: KernelOp[]; up: KernelOp[]; after: KernelOp[] };
  pod: { beforeUp: KernelOp[]; up: KernelOp[]; after: KernelOp[] };
}

export const sysctlOps = (values: Record<string, string>): KernelOp[] => Object.entries(values).map(([key, value]) => ({ op: 'sysctl', key, value }));

export function planVeth(host: HostSide, pod: PodSide): VethPlan {
  const beforeUp: KernelOp[] = [];
  if (host.master) beforeUp.push({ op: 'link-set', name: host.name, master: host.master });
  if (host.hairpin || host.isolated)
    beforeUp.push({ op: 'port-set', name: host.name, ...(host.hairpin ? { hairpin: true } : {}), ...(host.isolated ? { isolated: true } : {}) });
  beforeUp.push(...(host.beforeUp ?? []));
  const podUp: KernelOp[] = pod.setMac ? [{ op: 'link-set', name: pod.ifName, mac: pod.mac }] : [];
  podUp.push(...pod.addresses.map((cidr): KernelOp => ({ op: 'addr-replace', dev: pod.ifName, cidr, nodad: pod.nodad })));
  const up = pod.up !== false;
  if (up) podUp.push({ op: 'link-set', name: pod.ifName, up: true });
  return {
    netns: pod.netns,
    hostName: host.name,
    node: {
      create: [
        {
          op: 'link-add',
          name: host.name,
          mac: host.mac,
          mtu: host.mtu,
          link: { type: 'veth', peer: { name: pod.ifName, mac: pod.mac, mtu: pod.mtu, netns: pod.netns } },
        },
      ],
      beforeUp,
      up: [{ op: 'link-set', name: host.name, up: true }],
      after: host.after ?? [],
    },
    pod: {
      beforeUp: sysctlOps(pod.sysctls),
      up: podUp,
      after: up ? [...pod.routes.map((route): KernelOp => ({ op: 'route-replace', route })), ...(pod.after ?? [])] : [],
    },
  };
}

/** The node side in order: pair, before up, up, after. */
export function nodeOps(p: VethPlan): KernelOp[] {
  return [...p.node.create, ...p.node.beforeUp, ...p.node.up, ...p.node.after];
}

/** The pod side in order: sysctls, addresses and up, routes. */
export function podOps(p: VethPlan): KernelOp[] {
  return [...p.pod.beforeUp, ...p.pod.up, ...p.pod.after];
}

/**
 * Apply node-side ops that begin with the pair's `link add`. From the moment the pair exists, its deletion is
 * on the undo stack; a failed `link add` made nothing, and the name may belong to a live pod, so then nothing is.
 */
export async function applyPairOps(undo: Undo, hostName: string, ops: KernelOp[], o: ApplyOptions = {}): Promise<unknown[][]> {
  try {
    const found = await applyOps(ops, o);
    undo.push(() => deleteLink(hostName));
    return found;
  } catch (e) {
    if (!(e instanceof OpError && e.index === 0)) undo.push(() => deleteLink(hostName));
    throw e;
  }
}
