// A veth pair from the node into the pod, planned as two lists of ip commands and applied in three spawns:
// node side (creates the pair, peer straight into the pod netns), pod sysctls (none for most pods), pod side.
import { CniError, ErrCode } from '../cni/errors';
import { run } from '../exec';
import { BatchError, inNetns, ipBatch, type IpCommand } from '../ip/batch';
import { setSysctls } from '../ip/sysctl';

export interface RouteSpec {
  dst: string;
  gw?: string;
  dev: string;
  scope?: 'link' | 'host' | 'global';
  onlink?: boolean;
  src?: string;
  mtu?: number;
  advmss?: number;
  metric?: number;
  table?: number;
  /** route protocol number, so routes we own are recognisable */
  proto?: number;
}

export interface PodSide {
  netns: string;
  ifName: string;
  mac: string;
  /** the pair was made before `mac` was known (it follows from the IPAM result): the pod batch sets it */
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
}

export interface HostSide {
  name: string;
  mac: string;
  mtu: number;
  master?: string;
  hairpin?: boolean;
  isolated?: boolean;
  /** node-side commands to run after the pair is up (routes, bridge addresses ...) */
  after?: IpCommand[];
}

export interface VethPlan {
  node: IpCommand[];
  podSysctls: Record<string, string>;
  pod: IpCommand[];
  netns: string;
}

export function addrCommand(dev: string, cidr: string, nodad: boolean): IpCommand {
  const c = ['addr', 'replace', cidr, 'dev', dev];
  if (nodad && cidr.includes(':')) c.push('nodad');
  return c;
}

export function routeCommand(r: RouteSpec, verb: 'replace' | 'add' | 'del' = 'replace'): IpCommand {
  // ip -batch lines take no options such as -6: the family follows from the addresses
  const c = ['route', verb, r.dst];
  if (r.gw) c.push('via', r.gw);
  c.push('dev', r.dev);
  if (r.onlink) c.push('onlink');
  if (r.scope) c.push('scope', r.scope);
  if (r.src) c.push('src', r.src);
  if (r.proto !== undefined) c.push('proto', String(r.proto));
  if (r.metric !== undefined) c.push('metric', String(r.metric));
  if (r.table !== undefined) c.push('table', String(r.table));
  if (r.mtu !== undefined) c.push('mtu', String(r.mtu));
  if (r.advmss !== undefined) c.push('advmss', String(r.advmss));
  return c;
}

export function planVeth(host: HostSide, pod: PodSide): VethPlan {
  const node: IpCommand[] = [
    ['link', 'add', host.name, 'address', host.mac, 'mtu', String(host.mtu), 'type', 'veth',
      'peer', 'name', pod.ifName, 'address', pod.mac, 'mtu', String(pod.mtu), 'netns', pod.netns],
  ];
  if (host.master) node.push(['link', 'set', host.name, 'master', host.master]);
  if (host.hairpin) node.push(['link', 'set', host.name, 'type', 'bridge_slave', 'hairpin', 'on']);
  if (host.isolated) node.push(['link', 'set', host.name, 'type', 'bridge_slave', 'isolated', 'on']);
  node.push(['link', 'set', host.name, 'up']);
  node.push(...(host.after ?? []));
  const podCmds: IpCommand[] = pod.setMac ? [['link', 'set', pod.ifName, 'address', pod.mac]] : [];
  podCmds.push(...pod.addresses.map((a) => addrCommand(pod.ifName, a, pod.nodad)));
  if (pod.up !== false) {
    podCmds.push(['link', 'set', pod.ifName, 'up']);
    podCmds.push(...pod.routes.map((r) => routeCommand(r)));
  }
  return { node, podSysctls: pod.sysctls, pod: podCmds, netns: pod.netns };
}

/** Apply a plan; on failure the pair is deleted again (which removes both ends) and the error rethrown. */
export async function applyVeth(plan: VethPlan, hostName: string): Promise<void> {
  try {
    await applyNodeSide(plan);
    await applyPodSide(plan);
  } catch (e) {
    if (pairCreated(e)) await deleteLink(hostName).catch(() => undefined);
    throw e;
  }
}

/** false when the error is a failed `link add` (first node command): nothing was created, and the name may belong to a live pod */
export function pairCreated(e: unknown): boolean {
  return !(e instanceof BatchError && e.failedIndex === 0);
}

/**
 * The node batch: creates the pair (the peer straight into the pod netns) and wires the node end; `show`
 * commands appended to the same spawn return their JSON (a read folded into a write costs no spawn).
 */
export async function applyNodeSide(plan: VethPlan, show: IpCommand[] = []): Promise<unknown[]> {
  return ipBatch([...plan.node, ...show], show.length ? { json: true } : {});
}

/** The pod end: its sysctls (before it goes up), then its addresses, link and routes. */
export async function applyPodSide(plan: VethPlan): Promise<void> {
  await setSysctls(plan.podSysctls, plan.netns);
  await ipBatch(plan.pod, { netns: plan.netns });
}

/** Delete a link by name; absent is fine. */
export async function deleteLink(name: string, netns?: string): Promise<boolean> {
  const [file, args] = inNetns(netns, 'ip', ['link', 'del', name]);
  const r = await run(file, args, { allowFailure: true });
  if (r.exitCode === 0) return true;
  if (/Cannot find device|does not exist/i.test(r.stderr)) return false;
  throw new CniError(ErrCode.KernelOperation, `ip link del ${name}: ${r.stderr.trim()}`);
}
