// Dumps over rtnetlink, in the shapes `ip -json -details` prints (pkg/ip/ops.ts IpLink, IpRoute, IpNeigh,
// FdbRecord), with the fields tscni reads: so the code that compares the kernel with a plan is the same whichever
// door the reads came through.
import { macString } from '../ip/mac';
import type { FdbRecord, IpAddr, IpLink, IpNeigh, IpRoute } from '../ip/ops';
import { formatIP } from '../ipnet';
import * as fs from 'fs';
import * as path from 'path';
import { cstr, decodeAttrs, str, u32 } from './nl';
import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  IFA,
  IFLA,
  IFLA_INFO,
  IFLA_IPTUN,
  IFLA_VXLAN,
  NDA,
  NTF_SELF,
  RTA,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETNEIGH,
  RTM_GETNSID,
  RTM_GETROUTE,
  RT_TABLE_MAIN,
  RTNH_F_ONLINK,
  ifaddrmsg,
  ifinfomsg,
  ndmsg,
  rtmsg,
  type Decoded,
  type Rtnl,
} from './rtnl';

const IFLA_LINK_NETNSID = 37;
const IFA_F_DADFAILED = 0x08;
const IFA_F_TENTATIVE = 0x40;
const IFF: Array<[number, string]> = [
  [0x1, 'UP'],
  [0x2, 'BROADCAST'],
  [0x8, 'LOOPBACK'],
  [0x10, 'POINTOPOINT'],
  [0x80, 'NOARP'],
  [0x100, 'PROMISC'],
  [0x200, 'ALLMULTI'],
  [0x1000, 'MULTICAST'],
  [0x10000, 'LOWER_UP'],
];
/**
 * The names of the bits set in `bits`, from `table`: one shared array per distinct value (a fabric's dumps
 * hold thousands of entries with the same few flags; read-only, as every reader treats them).
 */
const bitNamesCache = new Map<Array<[number, string]>, Map<number, string[]>>();
function bitNames(table: Array<[number, string]>, bits: number): string[] {
  let byBits = bitNamesCache.get(table);
  if (!byBits) bitNamesCache.set(table, (byBits = new Map()));
  let names = byBits.get(bits);
  if (!names) byBits.set(bits, (names = table.filter(([bit]) => bits & bit).map(([, n]) => n)));
  return names;
}

/** A number as text, for the codes without a name (protocols, tables): the same string each time. */
const numberTexts: string[] = [];
const numberText = (n: number): string => (numberTexts[n] ??= String(n));

/** IF_OPER_* as ip prints them */
const OPERSTATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'];
const SCOPES: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host', 255: 'nowhere' };
/** the names of /etc/iproute2/rt_protos that ip prints; other protocols print as their number */
const PROTOCOLS: Record<number, string> = {
  1: 'redirect',
  2: 'kernel',
  3: 'boot',
  4: 'static',
  9: 'ra',
  12: 'bird',
  16: 'dhcp',
  42: 'babel',
  186: 'bgp',
  187: 'isis',
  188: 'ospf',
  189: 'rip',
};
const ROUTE_TYPES: Record<number, string> = {
  1: 'unicast',
  2: 'local',
  3: 'broadcast',
  4: 'anycast',
  5: 'multicast',
  6: 'blackhole',
  7: 'unreachable',
  8: 'prohibit',
  9: 'throw',
  10: 'nat',
};
/** next-hop flags in the order ip prints them */
const ROUTE_FLAGS: Array<[number, string]> = [
  [1, 'dead'],
  [RTNH_F_ONLINK, 'onlink'],
  [2, 'pervasive'],
  [16, 'linkdown'],
];
const TABLES: Record<number, string> = { 253: 'default', 254: 'main', 255: 'local' };
const NUD_NOARP = 0x40;
const NUD: Array<[number, string]> = [
  [0x01, 'INCOMPLETE'],
  [0x02, 'REACHABLE'],
  [0x04, 'STALE'],
  [0x08, 'DELAY'],
  [0x10, 'PROBE'],
  [0x20, 'FAILED'],
  [0x40, 'NOARP'],
  [0x80, 'PERMANENT'],
];

function ipText(b: Buffer | undefined): string | undefined {
  if (!b || (b.length !== 4 && b.length !== 16)) return undefined;
  // IPv4 straight from the bytes: a fabric's dumps hold thousands
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return formatIP(6, v);
}

const macText = (b: Buffer | undefined): string | undefined => (b ? macString(b) : undefined);

/** Addresses by interface index: of one interface (`index`), or of all. */
function addrsByIndex(rt: Rtnl, index = 0): Map<number, IpAddr[]> {
  const m = new Map<number, IpAddr[]>();
  for (const a of rt.dump(RTM_GETADDR, ifaddrmsg(AF_UNSPEC, 0, 0, 0, index))) {
    const family = a.body.readUInt8(0);
    const at = a.body.readUInt32LE(4);
    if ((family !== AF_INET && family !== AF_INET6) || (index && at !== index)) continue;
    const flags = a.attrs.get(IFA.FLAGS)?.readUInt32LE(0) ?? a.body.readUInt8(2);
    const local = ipText(a.attrs.get(IFA.LOCAL) ?? a.attrs.get(IFA.ADDRESS));
    if (!local) continue;
    const x: IpAddr = {
      family: family === AF_INET ? 'inet' : 'inet6',
      local,
      prefixlen: a.body.readUInt8(1),
      scope: SCOPES[a.body.readUInt8(3)] ?? String(a.body.readUInt8(3)),
    };
    if (flags & IFA_F_TENTATIVE) x.tentative = true;
    if (flags & IFA_F_DADFAILED) x.dadfailed = true;
    if (!m.has(at)) m.set(at, []);
    m.get(at)!.push(x);
  }
  return m;
}

function infoData(kind: string | undefined, data: Buffer | undefined, nameOf: (i: number) => string | undefined): Record<string, unknown> | undefined {
  if (!data) return undefined;
  const a = decodeAttrs(data);
  if (kind === 'vxlan') {
    return {
      id: a.get(IFLA_VXLAN.ID)?.readUInt32LE(0),
      local: ipText(a.get(IFLA_VXLAN.LOCAL) ?? a.get(IFLA_VXLAN.LOCAL6)),
      link: a.has(IFLA_VXLAN.LINK) ? nameOf(a.get(IFLA_VXLAN.LINK)!.readUInt32LE(0)) : undefined,
      port: a.get(IFLA_VXLAN.PORT)?.readUInt16BE(0),
      learning: a.has(IFLA_VXLAN.LEARNING) ? a.get(IFLA_VXLAN.LEARNING)![0] === 1 : undefined,
    };
  }
  if (kind === 'ipip') {
    const link = a.get(IFLA_IPTUN.LINK)?.readUInt32LE(0);
    return { local: ipText(a.get(IFLA_IPTUN.LOCAL)) ?? 'any', link: link ? nameOf(link) : undefined };
  }
  return {};
}

/** Links with their addresses; `dev`: that one only, and an error in ip's words when it does not exist. */
export function dumpLinks(rt: Rtnl, dev?: string): IpLink[] {
  const raw =
    dev === undefined
      ? rt.dump(RTM_GETLINK, ifinfomsg(AF_UNSPEC, 0))
      : rt.get(RTM_GETLINK, ifinfomsg(AF_UNSPEC, 0), [str(IFLA.IFNAME, dev)], () => new Error(`Device "${dev}" does not exist.`));
  const names = new Map(raw.map((l) => [l.body.readInt32LE(4), cstr(l.attrs.get(IFLA.IFNAME))]));
  const nameOf = (i: number) => names.get(i) ?? rt.nameOf(i);
  const addrs = addrsByIndex(rt, dev === undefined ? 0 : raw[0].body.readInt32LE(4));
  return raw.map((l) => linkOf(l, addrs, nameOf));
}

function linkOf(l: Decoded, addrs: Map<number, IpAddr[]>, nameOf: (i: number) => string | undefined): IpLink {
  const index = l.body.readInt32LE(4);
  const flags = l.body.readUInt32LE(8);
  const info = l.attrs.get(IFLA.LINKINFO) ? decodeAttrs(l.attrs.get(IFLA.LINKINFO)!) : undefined;
  const kind = cstr(info?.get(IFLA_INFO.KIND));
  const link: IpLink = {
    ifname: cstr(l.attrs.get(IFLA.IFNAME))!,
    ifindex: index,
    mtu: l.attrs.get(IFLA.MTU)?.readUInt32LE(0) ?? 0,
    address: macText(l.attrs.get(IFLA.ADDRESS)),
    flags: bitNames(IFF, flags),
    addr_info: addrs.get(index) ?? [],
  };
  const oper = l.attrs.get(IFLA.OPERSTATE)?.readUInt8(0);
  if (oper !== undefined) link.operstate = OPERSTATES[oper] ?? String(oper);
  const alias = cstr(l.attrs.get(IFLA.IFALIAS));
  if (alias) link.ifalias = alias;
  // as ip prints them: the peer's index and netns id when it is in another netns (within one, ip names it)
  const peer = l.attrs.get(IFLA.LINK)?.readInt32LE(0);
  const nsid = l.attrs.get(IFLA_LINK_NETNSID)?.readInt32LE(0);
  if (peer !== undefined && nsid !== undefined) link.link_index = peer;
  if (nsid !== undefined && nsid >= 0) link.link_netnsid = nsid;
  const master = l.attrs.get(IFLA.MASTER)?.readUInt32LE(0);
  if (master) link.master = nameOf(master);
  if (kind) link.linkinfo = { info_kind: kind, info_data: infoData(kind, info?.get(IFLA_INFO.DATA), nameOf) };
  return link;
}

function dstText(family: number, len: number, b: Buffer | undefined): string {
  if (len === 0) return 'default';
  const ip = ipText(b) ?? '?';
  return len === (family === AF_INET ? 32 : 128) ? ip : `${ip}/${len}`;
}

/** Routes of a table ('all': every table), of one family or (table all) both; `dev` limits them to one device. */
export function dumpRoutes(rt: Rtnl, table: 'main' | 'all', family?: 4 | 6, dev?: string): IpRoute[] {
  // ip's defaults: a main-table listing without -6 is IPv4; `table all` lists both families
  const fam = family ?? (table === 'main' ? 4 : undefined);
  const oif = dev === undefined ? undefined : indexOrFail(rt, dev);
  const head = rtmsg({
    family: fam === 4 ? AF_INET : fam === 6 ? AF_INET6 : AF_UNSPEC,
    dstLen: 0,
    table: table === 'main' ? RT_TABLE_MAIN : 0,
    protocol: 0,
    scope: 0,
    type: 0,
    flags: 0,
  });
  const out: IpRoute[] = [];
  for (const r of rt.dump(RTM_GETROUTE, head, oif === undefined ? [] : [u32(RTA.OIF, oif)])) {
    const f = r.body.readUInt8(0);
    if ((fam === 4 && f !== AF_INET) || (fam === 6 && f !== AF_INET6)) continue;
    const tableId = r.attrs.get(RTA.TABLE)?.readUInt32LE(0) ?? r.body.readUInt8(4);
    if (table === 'main' && tableId !== RT_TABLE_MAIN) continue;
    const at = r.attrs.get(RTA.OIF)?.readUInt32LE(0);
    if (oif !== undefined && at !== oif) continue;
    const x: IpRoute = {
      type: ROUTE_TYPES[r.body.readUInt8(7)] ?? numberText(r.body.readUInt8(7)),
      dst: dstText(f, r.body.readUInt8(1), r.attrs.get(RTA.DST)),
      protocol: PROTOCOLS[r.body.readUInt8(5)] ?? numberText(r.body.readUInt8(5)),
      scope: SCOPES[r.body.readUInt8(6)] ?? numberText(r.body.readUInt8(6)),
      table: TABLES[tableId] ?? numberText(tableId),
      flags: bitNames(ROUTE_FLAGS, r.body.readUInt32LE(8)),
    };
    const gw = ipText(r.attrs.get(RTA.GATEWAY)) ?? ipText(r.attrs.get(RTA.VIA)?.subarray(2));
    if (gw) x.gateway = gw;
    const devName = at === undefined ? undefined : rt.nameOf(at);
    if (devName) x.dev = devName;
    out.push(x);
  }
  return out;
}

/** A device's index, or ip's words for a missing one. */
function indexOrFail(rt: Rtnl, dev: string): number {
  try {
    return rt.index(dev);
  } catch {
    throw new Error(`Cannot find device "${dev}"`);
  }
}

/** Neighbour entries of one device. */
export function dumpNeighs(rt: Rtnl, dev: string): IpNeigh[] {
  const index = indexOrFail(rt, dev);
  const out: IpNeigh[] = [];
  // a strict dump takes the device as an attribute; the header's index must be 0
  for (const n of rt.dump(RTM_GETNEIGH, ndmsg(AF_UNSPEC, 0, 0, 0), [u32(NDA.IFINDEX, index)])) {
    const f = n.body.readUInt8(0);
    if ((f !== AF_INET && f !== AF_INET6) || n.body.readInt32LE(4) !== index) continue;
    const dst = ipText(n.attrs.get(NDA.DST));
    if (!dst) continue;
    const state = n.body.readUInt16LE(8);
    // as `ip neigh show` without `nud all`: entries that are only NOARP (multicast mappings) or NONE are left out
    if (!(state & ~NUD_NOARP)) continue;
    const x: IpNeigh = { dst, state: bitNames(NUD, state) };
    const lladdr = macText(n.attrs.get(NDA.LLADDR));
    if (lladdr) x.lladdr = lladdr;
    out.push(x);
  }
  return out;
}

const SELF = ['self'];

/** A VTEP's own forwarding entries (`self`), as `bridge fdb show dev` lists them. */
export function dumpFdb(rt: Rtnl, dev: string): FdbRecord[] {
  const index = indexOrFail(rt, dev);
  const out: FdbRecord[] = [];
  for (const n of rt.dump(RTM_GETNEIGH, ndmsg(AF_BRIDGE, 0, 0, 0), [u32(NDA.IFINDEX, index)])) {
    if (n.body.readUInt8(0) !== AF_BRIDGE || n.body.readInt32LE(4) !== index || !(n.body.readUInt8(10) & NTF_SELF)) continue;
    const mac = macText(n.attrs.get(NDA.LLADDR));
    if (!mac) continue;
    const x: FdbRecord = { mac, flags: SELF, state: n.body.readUInt16LE(8) & 0x80 ? 'permanent' : '' };
    const dst = ipText(n.attrs.get(NDA.DST));
    if (dst) x.dst = dst;
    out.push(x);
  }
  return out;
}

const NETNSA_NSID = 1;
const NETNSA_FD = 3;
/** where `ip netns add` puts named namespaces */
export const NETNS_RUN_DIR = '/var/run/netns';

/** The named network namespaces, each with its id as this netns knows it (none when it has given it none). */
export function listNamespaces(rt: Rtnl): { name: string; id?: number }[] {
  let names: string[];
  try {
    names = fs.readdirSync(NETNS_RUN_DIR);
  } catch {
    return [];
  }
  return names.map((name) => {
    try {
      const [m] = rt.get(RTM_GETNSID, Buffer.alloc(1) /* rtgenmsg: family unspec */, [u32(NETNSA_FD, rt.netnsFd(path.join(NETNS_RUN_DIR, name)))]);
      const id = m?.attrs.get(NETNSA_NSID)?.readInt32LE(0);
      return id !== undefined && id >= 0 ? { name, id } : { name };
    } catch {
      return { name };
    }
  });
}
