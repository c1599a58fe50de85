// Kernel operations as data. Plans (pkg/wiring, pkg/fabric) say what the kernel should do in these values and
// never in command lines; this module is the one that carries them out: in-process over netlink and /proc/sys
// (pkg/netlink) when its native module loads, else through iproute2 (`ip -batch`, `bridge -batch`), which also
// gives ops their words in messages.
import { CniError, ErrCode } from '../cni/errors';
import { observingOps, opDone } from '../doorlog';
import { run } from '../exec';
import { applyOverNetlink, FailedOp, readFdbOverNetlink } from '../netlink/door';
import { netlinkUsable } from '../netlink/native';
import { setSysctls } from './sysctl';

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

/** What kind of link a link-add makes, with what only that kind takes. */
export type LinkType =
  /** a pair; the peer is made straight inside `netns` (a path) when given */
  | { type: 'veth'; peer: { name: string; mac?: string; mtu?: number; netns?: string } }
  | { type: 'bridge'; vlanFiltering?: boolean }
  | { type: 'vxlan'; vni: number; local: string; dev: string; port: number; learning: boolean }
  | { type: 'ipip'; local: string; dev: string }
  | { type: 'vlan'; parent: string; id: number };

export type KernelOp =
  | { op: 'link-add'; name: string; mac?: string; mtu?: number; link: LinkType }
  | {
      op: 'link-set';
      name: string;
      up?: boolean;
      master?: string;
      mtu?: number;
      mac?: string;
      alias?: string;
      promisc?: boolean;
      vlanFiltering?: boolean;
      /** 'none': the kernel makes no IPv6 link-local address of its own */
      addrGenMode?: 'none' | 'eui64';
    }
  /** flags of a bridge port */
  | { op: 'port-set'; name: string; hairpin?: boolean; isolated?: boolean }
  | { op: 'link-del'; name: string }
  /** nodad: an IPv6 address usable at once, without duplicate address detection */
  | { op: 'addr-replace'; dev: string; cidr: string; nodad?: boolean }
  | { op: 'addr-del'; dev: string; cidr: string }
  | { op: 'route-replace'; route: RouteSpec }
  /** deletes the route to dst with that protocol (and on that device, when given) */
  | { op: 'route-del'; dst: string; proto?: number; dev?: string }
  | { op: 'neigh-replace'; dev: string; ip: string; mac: string }
  | { op: 'neigh-del'; dev: string; ip: string }
  /** a VTEP's forwarding entry: frames for mac go to the node dst */
  | { op: 'fdb-append'; dev: string; mac: string; dst: string }
  | { op: 'fdb-del'; dev: string; mac: string; dst?: string }
  /** a bridge VLAN on a port (or on the bridge itself: self) */
  | { op: 'vlan-add'; dev: string; vid: number; pvid?: boolean; untagged?: boolean; self?: boolean }
  | { op: 'vlan-del'; dev: string; vid: number }
  /** slashed key, so interface names with dots (cni0.100) stay whole: net/ipv4/conf/eth0/arp_notify */
  | { op: 'sysctl'; key: string; value: string };

/** One command line of `ip -batch` or `bridge -batch` for an op (argv without the program). */
export function commandOf(o: KernelOp): { tool: 'ip' | 'bridge'; args: string[] } {
  const ip = (...args: string[]) => ({ tool: 'ip' as const, args });
  switch (o.op) {
    case 'link-add':
      return ip('link', 'add', 'name', o.name, ...(o.mac ? ['address', o.mac] : []), ...(o.mtu ? ['mtu', String(o.mtu)] : []), ...linkTypeArgs(o.link));
    case 'link-set': {
      const a = ['link', 'set', o.name];
      if (o.master !== undefined) a.push('master', o.master);
      if (o.mtu !== undefined) a.push('mtu', String(o.mtu));
      if (o.mac !== undefined) a.push('address', o.mac);
      if (o.alias !== undefined) a.push('alias', o.alias);
      if (o.promisc !== undefined) a.push('promisc', o.promisc ? 'on' : 'off');
      if (o.addrGenMode !== undefined) a.push('addrgenmode', o.addrGenMode);
      if (o.vlanFiltering !== undefined) a.push('type', 'bridge', 'vlan_filtering', o.vlanFiltering ? '1' : '0');
      if (o.up !== undefined) a.push(o.up ? 'up' : 'down');
      return ip(...a);
    }
    case 'port-set': {
      const a = ['link', 'set', o.name, 'type', 'bridge_slave'];
      if (o.hairpin !== undefined) a.push('hairpin', o.hairpin ? 'on' : 'off');
      if (o.isolated !== undefined) a.push('isolated', o.isolated ? 'on' : 'off');
      return ip(...a);
    }
    case 'link-del':
      return ip('link', 'del', o.name);
    case 'addr-replace':
      return ip('addr', 'replace', o.cidr, 'dev', o.dev, ...(o.nodad && o.cidr.includes(':') ? ['nodad'] : []));
    case 'addr-del':
      return ip('addr', 'del', o.cidr, 'dev', o.dev);
    case 'route-replace':
      return ip(...routeArgs(o.route));
    case 'route-del':
      return ip('route', 'del', o.dst, ...(o.proto !== undefined ? ['proto', String(o.proto)] : []), ...(o.dev ? ['dev', o.dev] : []));
    case 'neigh-replace':
      return ip('neigh', 'replace', o.ip, 'lladdr', o.mac, 'dev', o.dev, 'nud', 'permanent');
    case 'neigh-del':
      return ip('neigh', 'del', o.ip, 'dev', o.dev);
    case 'fdb-append':
      return { tool: 'bridge', args: ['fdb', 'append', o.mac, 'dev', o.dev, 'dst', o.dst, 'self', 'permanent'] };
    case 'fdb-del':
      return { tool: 'bridge', args: ['fdb', 'del', o.mac, 'dev', o.dev, ...(o.dst ? ['dst', o.dst] : []), 'self'] };
    case 'vlan-add':
      return {
        tool: 'bridge',
        args: [
          'vlan',
          'add',
          'dev',
          o.dev,
          'vid',
          String(o.vid),
          ...(o.pvid ? ['pvid'] : []),
          ...(o.untagged ? ['untagged'] : []),
          ...(o.self ? ['self'] : []),
        ],
      };
    case 'vlan-del':
      return { tool: 'bridge', args: ['vlan', 'del', 'dev', o.dev, 'vid', String(o.vid)] };
    case 'sysctl':
      throw new CniError(ErrCode.Internal, `sysctl ${o.key} is no command line`);
  }
}

function linkTypeArgs(t: LinkType): string[] {
  switch (t.type) {
    case 'veth': {
      const p = t.peer;
      return [
        'type',
        'veth',
        'peer',
        'name',
        p.name,
        ...(p.mac ? ['address', p.mac] : []),
        ...(p.mtu ? ['mtu', String(p.mtu)] : []),
        ...(p.netns ? ['netns', p.netns] : []),
      ];
    }
    case 'bridge':
      return ['type', 'bridge', ...(t.vlanFiltering ? ['vlan_filtering', '1'] : [])];
    case 'vxlan':
      return ['type', 'vxlan', 'id', String(t.vni), 'local', t.local, 'dev', t.dev, 'dstport', String(t.port), ...(t.learning ? [] : ['nolearning'])];
    case 'ipip':
      return ['type', 'ipip', 'local', t.local, 'dev', t.dev];
    case 'vlan':
      return ['link', t.parent, 'type', 'vlan', 'id', String(t.id)];
  }
}

/** `route replace` in ip's words; ip -batch lines take no option such as -6: the family follows from dst. */
function routeArgs(r: RouteSpec): string[] {
  const c = ['route', 'replace', r.dst];
  // a next hop of the other family (an IPv6 pod route via a node's IPv4 address) is named with its family
  if (r.gw) c.push('via', ...(r.gw.includes(':') === r.dst.includes(':') ? [] : [r.gw.includes(':') ? 'inet6' : 'inet']), r.gw);
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

/** An op the kernel refused: which one (its index in the list applied) and the kernel's words. */
export class OpError extends CniError {
  constructor(
    readonly index: number,
    readonly failed: KernelOp | undefined,
    readonly reason: string,
    where: string,
  ) {
    super(ErrCode.KernelOperation, `${failed ? describeOp(failed) : 'kernel operation'}${where}: ${reason}`);
  }

  /** the kernel said the object exists already (EEXIST) */
  get exists(): boolean {
    return /File exists/i.test(this.reason);
  }

  /** the kernel said the object is not there (ENODEV, ENOENT, ESRCH) */
  get missing(): boolean {
    return /Cannot find device|does not exist|No such (device|file|process)/i.test(this.reason);
  }
}

/** Ops as the command lines iproute2 would take (a sysctl as `sysctl key=value`), for reading and for tests. */
export function argvOf(ops: readonly KernelOp[]): string[][] {
  return ops.map((o) => (o.op === 'sysctl' ? ['sysctl', `${o.key}=${o.value}`] : commandOf(o).args));
}

/** An op in ip's own words, for messages: `ip link add name cni0 type bridge`. */
export function describeOp(o: KernelOp): string {
  if (o.op === 'sysctl') return `sysctl ${o.key.replace(/\//g, '.')}=${o.value}`;
  const c = commandOf(o);
  return `${c.tool} ${c.args.join(' ')}`;
}

// ---- what reads return: the shapes ip -json and bridge -json print, one definition each

export interface IpAddr {
  family: 'inet' | 'inet6' | string;
  local: string;
  prefixlen: number;
  scope?: string;
  tentative?: boolean;
  dadfailed?: boolean;
}

export interface IpLink {
  ifname: string;
  ifindex?: number;
  mtu: number;
  address?: string;
  flags?: string[];
  /** RFC 2863 state as ip prints it: UP once the link carries traffic */
  operstate?: string;
  ifalias?: string;
  /** a veth's peer (ifindex in the peer's netns) */
  link_index?: number;
  /** the netns id of a veth's peer, when it is in another namespace */
  link_netnsid?: number;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: IpAddr[];
}

export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  /** a name from rt_protos (kernel, static, ...) or the number */
  protocol?: string;
  scope?: string;
  /** unicast, local, broadcast, multicast ... (reads are detailed: always there) */
  type?: string;
  table?: string;
  flags?: string[];
}

export interface IpNeigh {
  dst: string;
  lladdr?: string;
  state?: string[];
}

export interface FdbRecord {
  mac: string;
  dst?: string;
  flags?: string[];
  state?: string;
}

/** The global (not link or host scope) addresses of a link. */
export function globalAddrs(l: IpLink | undefined): IpAddr[] {
  return (l?.addr_info ?? []).filter((a) => a.scope !== 'link' && a.scope !== 'host');
}

/** A dump of kernel state; each answers with the list ip -json prints (links carry their addresses). */
export type KernelRead =
  | { read: 'links'; dev?: string }
  /** routes of a table; `family` limits them to that family's (default: v4, or both with table all); `dev` to one device */
  | { read: 'routes'; table: 'main' | 'all'; family?: 4 | 6; dev?: string }
  | { read: 'neighs'; dev: string }
  /** the named network namespaces and their ids as seen from here (`link_netnsid` of a veth names its peer's) */
  | { read: 'namespaces' };

function readArgs(r: KernelRead): string[] {
  switch (r.read) {
    // `addr show` carries each link too; in one batch a `link show` before it would hide addr_info
    case 'links':
      return ['addr', 'show', ...(r.dev ? ['dev', r.dev] : [])];
    case 'routes':
      // ip -batch lines take no -6: `root ::/0` picks the family
      return ['route', 'show', 'table', r.table, ...(r.family ? ['root', r.family === 4 ? '0.0.0.0/0' : '::/0'] : []), ...(r.dev ? ['dev', r.dev] : [])];
    case 'neighs':
      return ['neigh', 'show', 'dev', r.dev];
    case 'namespaces':
      return ['netns', 'list'];
  }
}

export interface ApplyOptions<T extends readonly KernelRead[] = readonly KernelRead[]> {
  /** inside this network namespace (a path: /var/run/netns/x, /proc/PID/ns/net) */
  netns?: string;
  /** dumps taken after the ops, in the same spawn as the last ip ops when there are any (details included) */
  reads?: T;
}

/**
 * Carry out ops in order; the first the kernel refuses stops the rest and is thrown as an OpError. Consecutive
 * ops of one tool go in one spawn. Returns what the reads found, one list per read.
 */
export async function applyOps<const T extends readonly KernelRead[] = []>(ops: readonly KernelOp[], o: ApplyOptions<T> = {}): Promise<ReadResults<T>> {
  return (await carryOut(ops, o)) as ReadResults<T>;
}

async function carryOut(ops: readonly KernelOp[], o: ApplyOptions): Promise<unknown[][]> {
  const reads = [...(o.reads ?? [])];
  if (netlinkUsable()) return applyInProcess(ops, reads, o);
  const toolOf = (x: KernelOp) => (x.op === 'sysctl' ? 'sysctl' : commandOf(x).tool);
  // the reads ride with the last run of ip ops when it is the last run
  const foldReads = reads.length > 0 && ops.length > 0 && toolOf(ops[ops.length - 1]) === 'ip';
  let found: unknown[][] = [];
  for (let i = 0; i < ops.length;) {
    const tool = ops[i].op === 'sysctl' ? 'sysctl' : commandOf(ops[i]).tool;
    let j = i + 1;
    while (j < ops.length && (ops[j].op === 'sysctl' ? 'sysctl' : commandOf(ops[j]).tool) === tool) j++;
    const run = ops.slice(i, j);
    if (tool === 'sysctl') {
      const values = Object.fromEntries(run.map((s) => [(s as Extract<KernelOp, { op: 'sysctl' }>).key, (s as Extract<KernelOp, { op: 'sysctl' }>).value]));
      try {
        await setSysctls(values, o.netns);
      } catch (e) {
        throw new OpError(i, run[0], (e as Error).message, where(o));
      }
    } else {
      const out = await batch(tool, run, i, o, j === ops.length && foldReads ? reads : []);
      if (j === ops.length && foldReads) found = out;
    }
    i = j;
  }
  if (reads.length && !foldReads) found = await batch('ip', [], 0, o, reads);
  return found;
}

function applyInProcess(ops: readonly KernelOp[], reads: KernelRead[], o: ApplyOptions): unknown[][] {
  try {
    const timer = observingOps() ? (i: number, ms: number, error?: string) => opDone(describeOp(ops[i]), o.netns, ms, error) : undefined;
    return applyOverNetlink(ops, reads, o.netns, timer);
  } catch (e) {
    if (e instanceof FailedOp) throw new OpError(e.index, ops[e.index], e.reason, where(o));
    if (e instanceof CniError) throw e;
    // a read failed: say which, as the iproute2 door does
    throw new CniError(ErrCode.KernelOperation, `reading ${reads.map((r) => r.read).join(', ')}${where(o)}: ${(e as Error).message}`);
  }
}

/** A named network namespace and the id this netns knows it by. */
export interface NetnsId {
  name: string;
  id?: number;
}

/** What one read answers with. */
export type ReadResult<R extends KernelRead> = R extends { read: 'links' }
  ? IpLink[]
  : R extends { read: 'routes' }
    ? IpRoute[]
    : R extends { read: 'neighs' }
      ? IpNeigh[]
      : NetnsId[];
export type ReadResults<T extends readonly KernelRead[]> = { -readonly [K in keyof T]: T[K] extends KernelRead ? ReadResult<T[K]> : never };

/** Dumps only (one spawn, or none over netlink), each answered in its own shape. */
export async function readState<const T extends readonly KernelRead[]>(reads: T, o: Omit<ApplyOptions, 'reads'> = {}): Promise<ReadResults<T>> {
  return applyOps([], { ...o, reads });
}

/** Links with their addresses (all, or one device; [] when it does not exist). */
export async function readLinks(dev?: string, netns?: string): Promise<IpLink[]> {
  try {
    return (await readState([{ read: 'links', dev }], { netns }))[0];
  } catch (e) {
    if (dev && /does not exist|Cannot find device/i.test((e as Error).message)) return [];
    throw e;
  }
}

/** A VTEP's forwarding entries of its own (`self`), as `bridge fdb` lists them. */
export async function readFdb(dev: string, netns?: string): Promise<FdbRecord[]> {
  if (netlinkUsable()) return readFdbOverNetlink(dev, netns);
  const r = await run('bridge', ['-json', 'fdb', 'show', 'dev', dev], { netns });
  return (JSON.parse(r.stdout.trim() || '[]') as FdbRecord[]).filter((e) => e.flags?.includes('self'));
}

function where(o: ApplyOptions): string {
  return o.netns ? ` in netns ${o.netns}` : '';
}

async function batch(tool: 'ip' | 'bridge', ops: KernelOp[], offset: number, o: ApplyOptions, reads: KernelRead[]): Promise<unknown[][]> {
  const lines = [...ops.map((x) => commandOf(x).args), ...reads.map(readArgs)];
  for (const l of lines) {
    // -batch splits lines on whitespace: an argument with blanks would silently change meaning
    if (l.some((a) => a === '' || /\s/.test(a))) throw new CniError(ErrCode.Internal, `bad ${tool} argument in ${JSON.stringify(l)}`);
  }
  const args = [...(reads.length ? ['-json', '-details'] : []), '-batch', '-'];
  const r = await run(tool, args, { netns: o.netns, input: lines.map((l) => l.join(' ')).join('\n') + '\n', allowFailure: true });
  if (r.exitCode !== 0) {
    const m = /Command failed -:(\d+)/.exec(r.stderr);
    const index = m ? Number(m[1]) - 1 : -1;
    const reason = r.stderr.replace(/Command failed -:\d+\s*/g, '').trim() || `exit ${r.exitCode}`;
    if (index >= ops.length) throw new CniError(ErrCode.KernelOperation, `ip ${lines[index].join(' ')}${where(o)}: ${reason}`);
    throw new OpError(index < 0 ? -1 : offset + index, index < 0 ? undefined : ops[index], reason, where(o));
  }
  // each show prints one JSON document on its own line; writes print nothing. A route's next hop of the other
  // family is printed as `via: {family, host}`: read as its gateway, as the netlink door does
  return r.stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('['))
    .map((l) => (JSON.parse(l) as Array<IpRoute & { via?: { host?: string } }>).map((x) => (x.via?.host && !x.gateway ? { ...x, gateway: x.via.host } : x)));
}

/** Delete a link by name (both ends of a veth go); false when it was not there. */
export async function deleteLink(name: string, netns?: string): Promise<boolean> {
  try {
    await applyOps([{ op: 'link-del', name }], { netns });
    return true;
  } catch (e) {
    if (e instanceof OpError && e.missing) return false;
    throw e;
  }
}
