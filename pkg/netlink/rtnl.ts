// rtnetlink: the kernel operations of pkg/ip/ops.ts as messages, sent over one socket in the netns they are for.
// Message layouts are those of <linux/rtnetlink.h>, <linux/if_link.h>, <linux/neighbour.h>, <linux/if_addr.h>,
// <linux/if_bridge.h>; the numbers below are the kernel's ABI.
import * as fs from 'fs';
import { parseIP } from '../ipnet';
import type { KernelOp, LinkType, RouteSpec } from '../ip/ops';
import {
  align4,
  attr,
  cstr,
  be16,
  decodeAttrs,
  type Attrs,
  encodeAttrs,
  encodeMessage,
  nested,
  NetlinkError,
  NetlinkSocket,
  NLM_F_ACK,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_REQUEST,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  str,
  u16,
  u32,
  u8,
  type Attr,
} from './nl';

export const NETLINK_ROUTE = 0;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;
export const RTM_GETNSID = 90;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

export const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, OPERSTATE: 16, LINKINFO: 18, IFALIAS: 20, AF_SPEC: 26, NET_NS_FD: 28 } as const;
export const IFLA_INFO = { KIND: 1, DATA: 2, SLAVE_KIND: 4, SLAVE_DATA: 5 } as const;
const VETH_INFO_PEER = 1;
const IFLA_BR_VLAN_FILTERING = 7;
export const IFLA_VXLAN = { ID: 1, LINK: 3, LOCAL: 4, LEARNING: 7, PORT: 15, LOCAL6: 17 } as const;
export const IFLA_IPTUN = { LINK: 1, LOCAL: 2 } as const;
const IFLA_VLAN_ID = 1;
const IFLA_BRPORT_MODE = 4;
const IFLA_BRPORT_ISOLATED = 33;
const IFLA_INET6_ADDR_GEN_MODE = 8;
const IN6_ADDR_GEN_MODE = { eui64: 0, none: 1 } as const;
const IFLA_BRIDGE_FLAGS = 0;
const IFLA_BRIDGE_VLAN_INFO = 2;
const BRIDGE_FLAGS_SELF = 2;
const BRIDGE_VLAN_INFO_PVID = 2;
const BRIDGE_VLAN_INFO_UNTAGGED = 4;
export const IFF_UP = 0x1;
export const IFF_PROMISC = 0x100;

export const IFA = { ADDRESS: 1, LOCAL: 2, FLAGS: 8 } as const;
export const IFA_F_NODAD = 0x02;

export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, TABLE: 15, VIA: 18 } as const;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RT_SCOPE = { universe: 0, link: 253, host: 254, nowhere: 255 } as const;
export const RTN_UNICAST = 1;
export const RTNH_F_ONLINK = 4;

export const NDA = { DST: 1, LLADDR: 2, IFINDEX: 8 } as const;
export const NUD_PERMANENT = 0x80;
const NUD_NOARP = 0x40;
export const NTF_SELF = 0x02;

/** Address bytes (network order) and family of an IP given as text (a prefix, if any, is dropped). */
export function ipBytes(ip: string): { family: number; bytes: Buffer } {
  const a = parseIP(ip.split('/')[0]);
  if (!a) throw new Error(`not an IP address: ${ip}`);
  const n = a.family === 4 ? 4 : 16;
  const b = Buffer.alloc(n);
  let v = a.ip;
  for (let i = n - 1; i >= 0; i--, v >>= 8n) b[i] = Number(v & 0xffn);
  return { family: a.family === 4 ? AF_INET : AF_INET6, bytes: b };
}

export function macBytes(mac: string): Buffer {
  const b = Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
  if (b.length !== 6 || mac.split(':').some((x) => !/^[0-9a-fA-F]{1,2}$/.test(x))) throw new Error(`not a MAC address: ${mac}`);
  return b;
}

/** A C struct of `size` bytes from [offset, width, value] fields, in host order (little-endian on x86 and arm64). */
function struct(size: number, fields: Array<[number, 1 | 2 | 4, number]>): Buffer {
  const b = Buffer.alloc(size);
  for (const [offset, width, value] of fields) b.writeUIntLE(value >>> 0, offset, width);
  return b;
}

/** struct ifinfomsg: family, index, flags, change (the flags to change) */
export const ifinfomsg = (family: number, index: number, flags = 0, change = 0): Buffer =>
  struct(16, [
    [0, 1, family],
    [4, 4, index],
    [8, 4, flags],
    [12, 4, change],
  ]);

/** struct ifaddrmsg */
export const ifaddrmsg = (family: number, prefixlen: number, flags: number, scope: number, index: number): Buffer =>
  struct(8, [
    [0, 1, family],
    [1, 1, prefixlen],
    [2, 1, flags],
    [3, 1, scope],
    [4, 4, index],
  ]);

/** struct rtmsg (source length and TOS are always 0 here) */
export const rtmsg = (o: { family: number; dstLen: number; table: number; protocol: number; scope: number; type: number; flags: number }): Buffer =>
  struct(12, [
    [0, 1, o.family],
    [1, 1, o.dstLen],
    [4, 1, o.table],
    [5, 1, o.protocol],
    [6, 1, o.scope],
    [7, 1, o.type],
    [8, 4, o.flags],
  ]);

/** struct ndmsg */
export const ndmsg = (family: number, index: number, state: number, flags: number): Buffer =>
  struct(12, [
    [0, 1, family],
    [4, 4, index],
    [8, 2, state],
    [10, 1, flags],
  ]);

/** A fixed header and its attributes; these start at the next 4-byte boundary (rtgenmsg is 1 byte long). */
const body = (head: Buffer, attrs: Attr[]): Buffer => Buffer.concat([head, Buffer.alloc(align4(head.length) - head.length), encodeAttrs(attrs)]);

/** One request: its message type, flags and body. */
export interface Request {
  type: number;
  flags: number;
  body: Buffer;
}

/** What an op needs of the world: interface indexes (of this netns) and netns descriptors (for a veth's peer). */
export interface Lookup {
  index(name: string): number;
  netnsFd(path: string): number;
}

function linkKind(t: LinkType, l: Lookup): { attrs: Attr[]; extra: Attr[] } {
  switch (t.type) {
    case 'veth': {
      const p = t.peer;
      const peerAttrs: Attr[] = [str(IFLA.IFNAME, p.name)];
      if (p.mac) peerAttrs.push(attr(IFLA.ADDRESS, macBytes(p.mac)));
      if (p.mtu) peerAttrs.push(u32(IFLA.MTU, p.mtu));
      if (p.netns) peerAttrs.push(u32(IFLA.NET_NS_FD, l.netnsFd(p.netns)));
      // the peer is an ifinfomsg followed by its attributes, not a plain attribute list
      const peer = attr(VETH_INFO_PEER, body(ifinfomsg(AF_UNSPEC, 0), peerAttrs));
      return { attrs: [str(IFLA_INFO.KIND, 'veth'), nested(IFLA_INFO.DATA, [peer])], extra: [] };
    }
    case 'bridge':
      return { attrs: [str(IFLA_INFO.KIND, 'bridge'), ...(t.vlanFiltering ? [nested(IFLA_INFO.DATA, [u8(IFLA_BR_VLAN_FILTERING, 1)])] : [])], extra: [] };
    case 'vxlan': {
      const local = ipBytes(t.local);
      return {
        attrs: [
          str(IFLA_INFO.KIND, 'vxlan'),
          nested(IFLA_INFO.DATA, [
            u32(IFLA_VXLAN.ID, t.vni),
            u32(IFLA_VXLAN.LINK, l.index(t.dev)),
            attr(local.family === AF_INET ? IFLA_VXLAN.LOCAL : IFLA_VXLAN.LOCAL6, local.bytes),
            be16(IFLA_VXLAN.PORT, t.port),
            u8(IFLA_VXLAN.LEARNING, t.learning ? 1 : 0),
          ]),
        ],
        extra: [],
      };
    }
    case 'ipip':
      return {
        attrs: [str(IFLA_INFO.KIND, 'ipip'), nested(IFLA_INFO.DATA, [u32(IFLA_IPTUN.LINK, l.index(t.dev)), attr(IFLA_IPTUN.LOCAL, ipBytes(t.local).bytes)])],
        extra: [],
      };
    case 'vlan':
      return { attrs: [str(IFLA_INFO.KIND, 'vlan'), nested(IFLA_INFO.DATA, [u16(IFLA_VLAN_ID, t.id)])], extra: [u32(IFLA.LINK, l.index(t.parent))] };
  }
}

function routeRequest(r: RouteSpec, l: Lookup): Request {
  const dst = r.dst.split('/');
  const d = ipBytes(dst[0]);
  const dstLen = Number(dst[1] ?? (d.family === AF_INET ? 32 : 128));
  const table = r.table ?? RT_TABLE_MAIN;
  // ip's default scope: link for a route without a gateway, universe with one
  const scope = r.scope ? RT_SCOPE[r.scope === 'global' ? 'universe' : r.scope] : r.gw ? RT_SCOPE.universe : RT_SCOPE.link;
  const attrs: Attr[] = [];
  if (dstLen > 0) attrs.push(attr(RTA.DST, d.bytes));
  if (r.gw) {
    const g = ipBytes(r.gw);
    // a next hop of the other family (an IPv6 pod route via a node's IPv4 address): RTA_VIA carries its family
    if (g.family === d.family) attrs.push(attr(RTA.GATEWAY, g.bytes));
    else {
      const via = Buffer.alloc(2 + g.bytes.length);
      via.writeUInt16LE(g.family, 0);
      g.bytes.copy(via, 2);
      attrs.push(attr(RTA.VIA, via));
    }
  }
  attrs.push(u32(RTA.OIF, l.index(r.dev)));
  if (r.src) attrs.push(attr(RTA.PREFSRC, ipBytes(r.src).bytes));
  if (r.metric !== undefined) attrs.push(u32(RTA.PRIORITY, r.metric));
  if (table > 255) attrs.push(u32(RTA.TABLE, table));
  const metrics: Attr[] = [];
  if (r.mtu !== undefined) metrics.push(u32(RTAX_MTU, r.mtu));
  if (r.advmss !== undefined) metrics.push(u32(RTAX_ADVMSS, r.advmss));
  if (metrics.length) attrs.push(nested(RTA.METRICS, metrics));
  const head = rtmsg({
    family: d.family,
    dstLen,
    table: table > 255 ? 252 /* RT_TABLE_COMPAT */ : table,
    protocol: r.proto ?? RTPROT_BOOT,
    scope,
    type: RTN_UNICAST,
    flags: r.onlink ? RTNH_F_ONLINK : 0,
  });
  return { type: RTM_NEWROUTE, flags: NLM_F_CREATE | NLM_F_REPLACE, body: body(head, attrs) };
}

/** The request of one op (a sysctl is none: it is a /proc write). */
export function requestOf(o: Exclude<KernelOp, { op: 'sysctl' }>, l: Lookup): Request {
  switch (o.op) {
    case 'link-add': {
      const k = linkKind(o.link, l);
      const attrs: Attr[] = [str(IFLA.IFNAME, o.name)];
      if (o.mac) attrs.push(attr(IFLA.ADDRESS, macBytes(o.mac)));
      if (o.mtu) attrs.push(u32(IFLA.MTU, o.mtu));
      attrs.push(...k.extra, nested(IFLA.LINKINFO, k.attrs));
      return { type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, body: body(ifinfomsg(AF_UNSPEC, 0), attrs) };
    }
    case 'link-set': {
      let flags = 0;
      let change = 0;
      if (o.up !== undefined) ((change |= IFF_UP), (flags |= o.up ? IFF_UP : 0));
      if (o.promisc !== undefined) ((change |= IFF_PROMISC), (flags |= o.promisc ? IFF_PROMISC : 0));
      const attrs: Attr[] = [str(IFLA.IFNAME, o.name)];
      if (o.master !== undefined) attrs.push(u32(IFLA.MASTER, l.index(o.master)));
      if (o.mtu !== undefined) attrs.push(u32(IFLA.MTU, o.mtu));
      if (o.mac !== undefined) attrs.push(attr(IFLA.ADDRESS, macBytes(o.mac)));
      if (o.alias !== undefined) attrs.push(str(IFLA.IFALIAS, o.alias));
      if (o.vlanFiltering !== undefined)
        attrs.push(nested(IFLA.LINKINFO, [str(IFLA_INFO.KIND, 'bridge'), nested(IFLA_INFO.DATA, [u8(IFLA_BR_VLAN_FILTERING, o.vlanFiltering ? 1 : 0)])]));
      if (o.addrGenMode !== undefined) attrs.push(nested(IFLA.AF_SPEC, [nested(AF_INET6, [u8(IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE[o.addrGenMode])])]));
      return { type: RTM_NEWLINK, flags: 0, body: body(ifinfomsg(AF_UNSPEC, 0, flags, change), attrs) };
    }
    case 'port-set': {
      const port: Attr[] = [];
      if (o.hairpin !== undefined) port.push(u8(IFLA_BRPORT_MODE, o.hairpin ? 1 : 0));
      if (o.isolated !== undefined) port.push(u8(IFLA_BRPORT_ISOLATED, o.isolated ? 1 : 0));
      const attrs = [str(IFLA.IFNAME, o.name), nested(IFLA.LINKINFO, [str(IFLA_INFO.SLAVE_KIND, 'bridge'), nested(IFLA_INFO.SLAVE_DATA, port)])];
      return { type: RTM_NEWLINK, flags: 0, body: body(ifinfomsg(AF_UNSPEC, 0), attrs) };
    }
    case 'link-del':
      return { type: RTM_DELLINK, flags: 0, body: body(ifinfomsg(AF_UNSPEC, 0), [str(IFLA.IFNAME, o.name)]) };
    case 'addr-replace':
    case 'addr-del': {
      const [ip, len] = o.cidr.split('/');
      const a = ipBytes(ip);
      const v6 = a.family === AF_INET6;
      const nodad = o.op === 'addr-replace' && !!o.nodad && v6;
      const head = ifaddrmsg(a.family, Number(len), nodad ? IFA_F_NODAD : 0, RT_SCOPE.universe, l.index(o.dev));
      const attrs = [attr(IFA.LOCAL, a.bytes), attr(IFA.ADDRESS, a.bytes)];
      if (nodad) attrs.push(u32(IFA.FLAGS, IFA_F_NODAD));
      return o.op === 'addr-replace'
        ? { type: RTM_NEWADDR, flags: NLM_F_CREATE | NLM_F_REPLACE, body: body(head, attrs) }
        : { type: RTM_DELADDR, flags: 0, body: body(head, attrs) };
    }
    case 'route-replace':
      return routeRequest(o.route, l);
    case 'route-del': {
      const dst = o.dst.split('/');
      const d = ipBytes(dst[0]);
      const dstLen = Number(dst[1] ?? (d.family === AF_INET ? 32 : 128));
      // scope nowhere and type 0 match a route of any scope and type, as `ip route del` does
      const head = rtmsg({ family: d.family, dstLen, table: RT_TABLE_MAIN, protocol: o.proto ?? 0, scope: RT_SCOPE.nowhere, type: 0, flags: 0 });
      const attrs: Attr[] = dstLen > 0 ? [attr(RTA.DST, d.bytes)] : [];
      if (o.dev) attrs.push(u32(RTA.OIF, l.index(o.dev)));
      return { type: RTM_DELROUTE, flags: 0, body: body(head, attrs) };
    }
    case 'neigh-replace':
    case 'neigh-del': {
      const a = ipBytes(o.ip);
      const head = ndmsg(a.family, l.index(o.dev), o.op === 'neigh-replace' ? NUD_PERMANENT : 0, 0);
      const attrs = [attr(NDA.DST, a.bytes)];
      if (o.op === 'neigh-replace') attrs.push(attr(NDA.LLADDR, macBytes(o.mac)));
      return o.op === 'neigh-replace'
        ? { type: RTM_NEWNEIGH, flags: NLM_F_CREATE | NLM_F_REPLACE, body: body(head, attrs) }
        : { type: RTM_DELNEIGH, flags: 0, body: body(head, attrs) };
    }
    case 'fdb-append':
    case 'fdb-del': {
      // permanent and noarp, as `bridge fdb append ... permanent` asks
      const head = ndmsg(AF_BRIDGE, l.index(o.dev), o.op === 'fdb-append' ? NUD_PERMANENT | NUD_NOARP : 0, NTF_SELF);
      const attrs = [attr(NDA.LLADDR, macBytes(o.mac))];
      if (o.dst) attrs.push(attr(NDA.DST, ipBytes(o.dst).bytes));
      return o.op === 'fdb-append'
        ? { type: RTM_NEWNEIGH, flags: NLM_F_CREATE | NLM_F_APPEND, body: body(head, attrs) }
        : { type: RTM_DELNEIGH, flags: 0, body: body(head, attrs) };
    }
    case 'vlan-add':
    case 'vlan-del': {
      const info = Buffer.alloc(4);
      const add = o.op === 'vlan-add';
      info.writeUInt16LE((add && o.pvid ? BRIDGE_VLAN_INFO_PVID : 0) | (add && o.untagged ? BRIDGE_VLAN_INFO_UNTAGGED : 0), 0);
      info.writeUInt16LE(o.vid, 2);
      const spec: Attr[] = [];
      if (add && o.self) spec.push(u16(IFLA_BRIDGE_FLAGS, BRIDGE_FLAGS_SELF));
      spec.push(attr(IFLA_BRIDGE_VLAN_INFO, info));
      return { type: add ? RTM_SETLINK : RTM_DELLINK, flags: 0, body: body(ifinfomsg(AF_BRIDGE, l.index(o.dev)), [nested(IFLA.AF_SPEC, spec)]) };
    }
  }
}

/** What Rtnl needs of a socket: a NetlinkSocket, or in unit tests one that replays answers captured from a kernel. */
export type Transport = Pick<NetlinkSocket, 'request' | 'dump' | 'exchange' | 'close'>;

/** An rtnetlink socket with the lookups ops need, for one netns (ours when `netns` is undefined). */
export class Rtnl {
  private readonly sock: Transport;
  private readonly indexes = new Map<string, number>();
  private readonly nsFds = new Map<string, number>();

  constructor(
    readonly netns?: string,
    sock?: Transport,
  ) {
    this.sock = sock ?? NetlinkSocket.open(NETLINK_ROUTE, netns);
  }

  close(): void {
    for (const fd of this.nsFds.values()) fs.closeSync(fd);
    this.nsFds.clear();
    this.sock.close();
  }

  /** An interface's index in this netns (asked of the kernel: /sys shows the netns of whoever mounted it). */
  index(name: string): number {
    const known = this.indexes.get(name);
    if (known !== undefined) return known;
    const [link] = this.get(RTM_GETLINK, ifinfomsg(AF_UNSPEC, 0), [str(IFLA.IFNAME, name)], (e) => new NetlinkError(e.errno, `no device ${name}`));
    const index = link.body.readInt32LE(4);
    this.indexes.set(name, index);
    return index;
  }

  /** An interface's name by index; undefined when there is none. */
  nameOf(index: number): string | undefined {
    for (const [n, i] of this.indexes) if (i === index) return n;
    try {
      const [link] = this.get(RTM_GETLINK, ifinfomsg(AF_UNSPEC, index), []);
      const name = cstr(link.attrs.get(IFLA.IFNAME));
      if (name) this.indexes.set(name, index);
      return name;
    } catch {
      return undefined;
    }
  }

  /** One request answered with data (not a dump): its answers, attributes decoded; `refusal` words an error. */
  get(type: number, head: Buffer, attrs: Attr[], refusal?: (e: NetlinkError) => Error): Decoded[] {
    const out: Decoded[] = [];
    try {
      this.sock.exchange(
        [encodeMessage(type, NLM_F_REQUEST | NLM_F_ACK, 0, body(head, attrs))],
        (m) => void out.push({ body: m.body, attrs: decodeAttrs(m.body, align4(head.length)) }),
      );
    } catch (e) {
      throw refusal && e instanceof NetlinkError ? refusal(e) : e;
    }
    return out;
  }

  netnsFd(path: string): number {
    let fd = this.nsFds.get(path);
    if (fd === undefined) {
      fd = fs.openSync(path, 'r');
      this.nsFds.set(path, fd);
    }
    return fd;
  }

  /** Carry out one op; names that it makes or removes are forgotten by the index cache. */
  apply(o: Exclude<KernelOp, { op: 'sysctl' }>): void {
    const r = requestOf(o, this);
    this.sock.request(r.type, r.flags, r.body);
    if (o.op === 'link-del' || o.op === 'link-add') this.indexes.delete(o.name);
  }

  /** A dump of one message type with a request body; each answer with its attributes decoded. */
  dump(type: number, head: Buffer, attrs: Attr[] = []): Decoded[] {
    return this.sock.dump(type, body(head, attrs)).map((m) => ({ body: m.body, attrs: decodeAttrs(m.body, align4(head.length)) }));
  }
}

/** An answer: its fixed header (the body) and its attributes by type. */
export interface Decoded {
  body: Buffer;
  attrs: Attrs;
}
