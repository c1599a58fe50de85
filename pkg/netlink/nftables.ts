// nf_tables over netlink, for what a pod needs once a node's table exists: set and map elements added and deleted
// in one transaction, and the reads CHECK, DEL and GC make (elements with their comments, a chain's hook and its
// rules as terms). Tables, sets and chains are still made by `nft -f` (pkg/nat): rare, node-level work.
// Layouts are those of <linux/netfilter/nf_tables.h> and <linux/netfilter/nfnetlink.h>; element comments use
// libnftnl's user-data format, so `nft list` shows them as it shows its own.
import { formatIP, parseIP } from '../ipnet';
import {
  attr,
  cstr,
  decodeAttrs,
  type Attrs,
  encodeAttrs,
  encodeMessage,
  nested,
  NetlinkError,
  NetlinkSocket,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_REQUEST,
  str,
  type Attr,
  type Message,
} from './nl';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 16;
const NFNL_MSG_BATCH_END = 17;
const MSG = { GETTABLE: 1, GETCHAIN: 4, GETRULE: 7, NEWSETELEM: 12, GETSETELEM: 13, DELSETELEM: 14 } as const;
const FAMILY = { inet: 1, bridge: 7 } as const;
const NFTA_TABLE_NAME = 1;
const NFTA_CHAIN = { TABLE: 1, NAME: 3, HOOK: 4, TYPE: 7 } as const;
const NFTA_HOOK = { HOOKNUM: 1, PRIORITY: 2 } as const;
const NFTA_RULE = { TABLE: 1, CHAIN: 2, EXPRESSIONS: 4 } as const;
const NFTA_EXPR = { NAME: 1, DATA: 2 } as const;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3 } as const;
const NFTA_SET_ELEM = { KEY: 1, DATA: 2, FLAGS: 3, USERDATA: 6, KEY_END: 10 } as const;
const NFT_SET_ELEM_INTERVAL_END = 1;
const NFTA_DATA = { VALUE: 1, VERDICT: 2 } as const;
const NFTA_VERDICT_CODE = 1;
const NFTNL_UDATA_SET_ELEM_COMMENT = 0;
/** the hooks of the inet and bridge families, by number */
const HOOKS = ['prerouting', 'input', 'forward', 'output', 'postrouting'];

export type NftFamily = keyof typeof FAMILY;
/** the key types tscni's sets use */
export type KeyField = 'ipv4_addr' | 'ipv6_addr' | 'ifname' | 'ether_addr';
const FIELD_LEN: Record<KeyField, number> = { ipv4_addr: 4, ipv6_addr: 16, ifname: 16, ether_addr: 6 };

/** A set or map of a table, with what its keys are made of. */
export interface SetSpec {
  family: NftFamily;
  table: string;
  name: string;
  fields: KeyField[];
  /** `flags interval`: each element is a range, with an end key */
  interval?: boolean;
  /** a map to `mark` (a 32-bit value in host order) */
  mark?: boolean;
}

/** An element in nft syntax: `10.1.0.5`, `10.1.0.5 . 10.1.0.0/16`, `"veth1" . 0a:58:0a:16:00:05` */
export interface Element {
  key: string;
  comment?: string;
  mark?: number;
}

export interface ElementOp extends Element {
  op: 'add' | 'del';
  set: SetSpec;
}

// ---- keys: nft syntax <-> the bytes of a key register

const pad4 = (n: number): number => (n + 3) & ~3;

function fieldBytes(f: KeyField, text: string, end: boolean): Buffer {
  if (f === 'ifname') {
    const b = Buffer.alloc(16);
    b.write(text.replace(/^"|"$/g, ''), 'utf8');
    return b;
  }
  if (f === 'ether_addr') {
    const b = Buffer.from(text.split(':').map((x) => parseInt(x, 16)));
    if (b.length !== 6) throw new Error(`not a MAC address: ${text}`);
    return b;
  }
  const [ip, len] = text.split('/');
  const a = parseIP(ip);
  const bits = f === 'ipv4_addr' ? 32 : 128;
  if (!a || a.family !== (bits === 32 ? 4 : 6)) throw new Error(`not an ${f}: ${text}`);
  const host = bits - Number(len ?? bits);
  // a prefix's end is its last address
  const v = end && host > 0 ? a.ip | ((1n << BigInt(host)) - 1n) : a.ip;
  const b = Buffer.alloc(bits / 8);
  let x = v;
  for (let i = b.length - 1; i >= 0; i--, x >>= 8n) b[i] = Number(x & 0xffn);
  return b;
}

/** A key's bytes (or, for a range, its end's): fields in order, each padded to 4 bytes when concatenated. */
export function keyBytes(fields: KeyField[], text: string, end = false): Buffer {
  const parts = text.split(' . ');
  if (parts.length !== fields.length) throw new Error(`key ${JSON.stringify(text)} does not have the ${fields.length} field(s) ${fields.join(' . ')}`);
  return Buffer.concat(
    fields.map((f, i) => {
      const b = fieldBytes(f, parts[i], end);
      return fields.length > 1 ? Buffer.concat([b, Buffer.alloc(pad4(b.length) - b.length)]) : b;
    }),
  );
}

const bigOf = (b: Buffer): bigint => [...b].reduce((v, x) => (v << 8n) | BigInt(x), 0n);

function fieldText(f: KeyField, start: Buffer, end: Buffer | undefined): string {
  if (f === 'ifname') return `"${cstr(start)}"`;
  if (f === 'ether_addr') return [...start].map((x) => x.toString(16).padStart(2, '0')).join(':');
  const fam = f === 'ipv4_addr' ? 4 : 6;
  const a = bigOf(start);
  const z = end ? bigOf(end) : a;
  if (z === a) return formatIP(fam, a);
  const span = z - a + 1n;
  const host = span.toString(2).length - 1;
  // a prefix when the range is a power of two long and starts on its boundary, as nft prints it
  if (span === 1n << BigInt(host) && (a & (span - 1n)) === 0n) return `${formatIP(fam, a)}/${(fam === 4 ? 32 : 128) - host}`;
  return `${formatIP(fam, a)}-${formatIP(fam, z)}`;
}

/** A key in nft syntax from its bytes (and an interval's end). */
export function keyText(fields: KeyField[], key: Buffer, keyEnd?: Buffer): string {
  let o = 0;
  return fields
    .map((f) => {
      const n = FIELD_LEN[f];
      const t = fieldText(f, key.subarray(o, o + n), keyEnd?.subarray(o, o + n));
      o += fields.length > 1 ? pad4(n) : n;
      return t;
    })
    .join(' . ');
}

// ---- messages

/** struct nfgenmsg: family, version 0, resource id (big endian) */
function nfgen(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0);
  b.writeUInt16BE(resId, 2);
  return b;
}

const nftMessage = (type: number, flags: number, family: number, attrs: Attr[]): Buffer =>
  encodeMessage((NFNL_SUBSYS_NFTABLES << 8) | type, flags | NLM_F_REQUEST, 0, Buffer.concat([nfgen(family), encodeAttrs(attrs)]));

/** libnftnl user data: type, length, value (a comment with its NUL) */
function commentData(comment: string): Buffer {
  const v = Buffer.from(`${comment}\0`);
  if (v.length > 255) throw new Error(`comment longer than 254 bytes: ${comment}`);
  return Buffer.concat([Buffer.from([NFTNL_UDATA_SET_ELEM_COMMENT, v.length]), v]);
}

function commentOf(b: Buffer | undefined): string | undefined {
  for (let o = 0; b && o + 2 <= b.length; o += 2 + b[o + 1]) {
    if (b[o] === NFTNL_UDATA_SET_ELEM_COMMENT) return cstr(b.subarray(o + 2, o + 2 + b[o + 1]));
  }
  return undefined;
}

function elementAttrs(set: SetSpec, e: Element, add: boolean): Attr {
  const a: Attr[] = [nested(NFTA_SET_ELEM.KEY, [attr(NFTA_DATA.VALUE, keyBytes(set.fields, e.key))])];
  if (set.interval) a.push(nested(NFTA_SET_ELEM.KEY_END, [attr(NFTA_DATA.VALUE, keyBytes(set.fields, e.key, true))]));
  if (add && set.mark) {
    const m = Buffer.alloc(4);
    m.writeUInt32LE((e.mark ?? 0) >>> 0);
    a.push(nested(NFTA_SET_ELEM.DATA, [attr(NFTA_DATA.VALUE, m)]));
  }
  if (add && e.comment) a.push(attr(NFTA_SET_ELEM.USERDATA, commentData(e.comment)));
  return nested(NFTA_LIST_ELEM, a);
}

function socket(netns?: string): NetlinkSocket {
  return NetlinkSocket.open(NETLINK_NETFILTER, netns);
}

function using<T>(netns: string | undefined, f: (s: NetlinkSocket) => T): T {
  const s = socket(netns);
  try {
    return f(s);
  } finally {
    s.close();
  }
}

/**
 * Element adds and deletes, in order, as one transaction: all or none. An add of an element already there with
 * the same data is a no-op; with other data the kernel refuses it (EEXIST). A missing table or set: ENOENT.
 */
export function applyElements(ops: ElementOp[], netns?: string): void {
  if (!ops.length) return;
  // consecutive ops of one kind on one set share a message
  const groups: ElementOp[][] = [];
  for (const o of ops) {
    const last = groups[groups.length - 1];
    if (last && last[0].op === o.op && last[0].set === o.set) last.push(o);
    else groups.push([o]);
  }
  const batch = [encodeMessage(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, nfgen(0, NFNL_SUBSYS_NFTABLES))];
  for (const g of groups) {
    const { set, op } = g[0];
    batch.push(
      nftMessage(op === 'add' ? MSG.NEWSETELEM : MSG.DELSETELEM, NLM_F_ACK | (op === 'add' ? NLM_F_CREATE : 0), FAMILY[set.family], [
        str(NFTA_SET_ELEM_LIST.TABLE, set.table),
        str(NFTA_SET_ELEM_LIST.SET, set.name),
        nested(
          NFTA_SET_ELEM_LIST.ELEMENTS,
          g.map((e) => elementAttrs(set, e, op === 'add')),
        ),
      ]),
    );
  }
  batch.push(encodeMessage(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, nfgen(0, NFNL_SUBSYS_NFTABLES)));
  using(netns, (s) => s.exchange(batch, () => undefined));
}

function dump(s: NetlinkSocket, type: number, family: NftFamily, attrs: Attr[]): Message[] {
  return s.dump((NFNL_SUBSYS_NFTABLES << 8) | type, Buffer.concat([nfgen(FAMILY[family]), encodeAttrs(attrs)]));
}

const attrsOf = (m: Message): Attrs => decodeAttrs(m.body, 4);

/** Each nested NFTA_LIST_ELEM of a list attribute. */
function listItems(b: Buffer | undefined): Attrs[] {
  const out: Attrs[] = [];
  for (let o = 0; b && o + 4 <= b.length;) {
    const len = b.readUInt16LE(o);
    if (len < 4) break;
    out.push(decodeAttrs(b, o + 4, o + len));
    o += pad4(len);
  }
  return out;
}

/** The elements of a set; ENOENT when the table or the set does not exist. */
export function listElements(set: SetSpec, netns?: string): Element[] {
  return using(netns, (s) => {
    const out: Element[] = [];
    for (const m of dump(s, MSG.GETSETELEM, set.family, [str(NFTA_SET_ELEM_LIST.TABLE, set.table), str(NFTA_SET_ELEM_LIST.SET, set.name)])) {
      for (const e of listItems(attrsOf(m).get(NFTA_SET_ELEM_LIST.ELEMENTS))) {
        const flags = e.get(NFTA_SET_ELEM.FLAGS)?.readUInt32BE(0) ?? 0;
        const key = e.get(NFTA_SET_ELEM.KEY);
        if (!key || flags & NFT_SET_ELEM_INTERVAL_END) continue;
        const value = (a: number) => decodeAttrs(e.get(a) ?? Buffer.alloc(0)).get(NFTA_DATA.VALUE);
        const x: Element = { key: keyText(set.fields, value(NFTA_SET_ELEM.KEY)!, set.interval ? value(NFTA_SET_ELEM.KEY_END) : undefined) };
        const comment = commentOf(e.get(NFTA_SET_ELEM.USERDATA));
        if (comment !== undefined) x.comment = comment;
        const data = value(NFTA_SET_ELEM.DATA);
        if (data?.length === 4) x.mark = data.readUInt32LE(0);
        out.push(x);
      }
    }
    return out;
  });
}

// ---- a chain and its rules

/** One part of a rule as nft lists it: a match (`ip saddr . ip daddr @keep4`), a verdict, masquerade. */
export type RuleTerm =
  | { match: string; op: '==' | '!='; right: string }
  | { verdict: 'accept' | 'drop' | 'return' | 'continue' | 'jump' | 'goto' }
  | { masquerade: true }
  | { unknown: string };

export interface ChainState {
  /** false when the table does not exist */
  table: boolean;
  /** the base chain's hook, priority and type, when the chain exists */
  chain?: { hook?: string; priority?: number; type?: string };
  rules: RuleTerm[][];
}

/** A table's chain: its hook and its rules as terms. */
export function readChain(family: NftFamily, table: string, chain: string, netns?: string): ChainState {
  return using(netns, (s) => {
    const ask = (type: number, attrs: Attr[]): Message[] => {
      const got: Message[] = [];
      s.exchange([nftMessage(type, NLM_F_ACK, FAMILY[family], attrs)], (m) => void got.push(m));
      return got;
    };
    try {
      ask(MSG.GETTABLE, [str(NFTA_TABLE_NAME, table)]);
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'ENOENT') return { table: false, rules: [] };
      throw e;
    }
    let c: Attrs;
    try {
      c = attrsOf(ask(MSG.GETCHAIN, [str(NFTA_CHAIN.TABLE, table), str(NFTA_CHAIN.NAME, chain)])[0]);
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'ENOENT') return { table: true, rules: [] };
      throw e;
    }
    const hook = c.has(NFTA_CHAIN.HOOK) ? decodeAttrs(c.get(NFTA_CHAIN.HOOK)!) : undefined;
    const state: ChainState = {
      table: true,
      chain: {
        hook: hook?.has(NFTA_HOOK.HOOKNUM) ? HOOKS[hook.get(NFTA_HOOK.HOOKNUM)!.readUInt32BE(0)] : undefined,
        priority: hook?.get(NFTA_HOOK.PRIORITY)?.readInt32BE(0),
        type: cstr(c.get(NFTA_CHAIN.TYPE)),
      },
      rules: [],
    };
    for (const m of dump(s, MSG.GETRULE, family, [str(NFTA_RULE.TABLE, table), str(NFTA_RULE.CHAIN, chain)])) {
      const r = attrsOf(m);
      if (cstr(r.get(NFTA_RULE.CHAIN)) !== chain) continue;
      state.rules.push(ruleTerms(listItems(r.get(NFTA_RULE.EXPRESSIONS))));
    }
    return state;
  });
}

// ---- expressions back into nft's words, for the expressions tscni's rules use

interface Loaded {
  /** 32-bit register index */
  at: number;
  text: string;
  /** the whole field's length: a prefix match loads only its first bytes */
  fieldLen: number;
  /** bits compared: the bytes loaded, or a bitwise mask's */
  prefix?: number;
}

const META_KEYS: Record<number, string> = { 1: 'meta protocol', 6: 'iifname', 7: 'oifname', 15: 'meta nfproto', 16: 'meta l4proto' };
/** payload fields: [base (0 link, 1 network), header ('' for link), offset, length, name] */
const FIELDS: Array<[number, string, number, number, string]> = [
  [0, '', 0, 6, 'ether daddr'],
  [0, '', 6, 6, 'ether saddr'],
  [0, '', 12, 2, 'ether type'],
  [1, 'ip', 12, 4, 'ip saddr'],
  [1, 'ip', 16, 4, 'ip daddr'],
  [1, 'ip6', 8, 16, 'ip6 saddr'],
  [1, 'ip6', 24, 16, 'ip6 daddr'],
  [1, 'arp', 14, 4, 'arp saddr ip'],
  [1, 'arp', 24, 4, 'arp daddr ip'],
];
/** what a dependency match says of the network header: nfproto, ether type, meta protocol values */
const HEADER_OF: Record<string, string> = { '2': 'ip', '10': 'ip6', '0800': 'ip', '86dd': 'ip6', '0806': 'arp' };
/** matches nft adds by itself and leaves out of its listing */
const DEPENDENCIES = new Set(['meta nfproto', 'meta protocol', 'ether type']);
const VERDICTS: Record<number, 'accept' | 'drop' | 'return' | 'continue' | 'jump' | 'goto'> = {
  0: 'drop',
  1: 'accept',
  [-1]: 'continue',
  [-3]: 'jump',
  [-4]: 'goto',
  [-5]: 'return',
};

/** NFT_REG_1..4 are 16 bytes, four 32-bit registers (NFT_REG32_00 = 8) each */
const reg32 = (r: number): number => (r >= 1 && r <= 4 ? 8 + (r - 1) * 4 : r);

function valueText(name: string, loaded: Buffer, fieldLen: number, prefix?: number): string {
  // a prefix match compares the field's first bytes: the rest of the address is zero
  const b = Buffer.concat([loaded, Buffer.alloc(Math.max(0, fieldLen - loaded.length))]);
  if (name.includes('ifname')) return `"${cstr(b)}"`;
  if (name.startsWith('ether') && b.length === 6) return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
  if (b.length === 4 && / (saddr|daddr)/.test(name)) return formatIP(4, bigOf(b)) + (prefix !== undefined && prefix < 32 ? `/${prefix}` : '');
  if (b.length === 16 && / (saddr|daddr)/.test(name)) return formatIP(6, bigOf(b)) + (prefix !== undefined && prefix < 128 ? `/${prefix}` : '');
  return b.toString('hex');
}

const popcount = (b: Buffer): number => [...b].reduce((n, x) => n + x.toString(2).replace(/0/g, '').length, 0);

/** A rule's expressions as the terms nft lists (dependency matches and counters left out, the unknown kept). */
export function ruleTerms(exprs: Attrs[]): RuleTerm[] {
  const terms: RuleTerm[] = [];
  let header = '';
  let pending: Loaded[] = [];
  const take = (sreg: number): Loaded | undefined => pending.find((l) => l.at === reg32(sreg));
  for (const e of exprs) {
    const name = cstr(e.get(NFTA_EXPR.NAME)) ?? '?';
    const d = decodeAttrs(e.get(NFTA_EXPR.DATA) ?? Buffer.alloc(0));
    const u32be = (t: number) => d.get(t)?.readUInt32BE(0) ?? 0;
    const load = (text: string, fieldLen: number, len = fieldLen) => {
      const at = reg32(u32be(1));
      pending = pending.filter((l) => l.at !== at);
      pending.push({ at, text, fieldLen, prefix: len < fieldLen ? len * 8 : undefined });
    };
    switch (name) {
      case 'meta':
        load(META_KEYS[u32be(2)] ?? `meta ${u32be(2)}`, u32be(2) === 15 || u32be(2) === 16 ? 1 : u32be(2) === 1 ? 2 : 16);
        break;
      case 'payload': {
        const [base, offset, len] = [u32be(2), u32be(3), u32be(4)];
        const f = FIELDS.find(([b, h, o, n]) => b === base && (base === 0 || h === header) && o === offset && len <= n);
        if (f) load(f[4], f[3], len);
        else load(`payload ${base}:${header}:${offset}:${len}`, len);
        break;
      }
      case 'bitwise': {
        const l = take(u32be(1));
        const mask = decodeAttrs(d.get(4) ?? Buffer.alloc(0)).get(NFTA_DATA.VALUE);
        if (l && mask) {
          l.prefix = popcount(mask);
          l.at = reg32(u32be(2));
        }
        break;
      }
      case 'cmp': {
        const l = take(u32be(1));
        const value = decodeAttrs(d.get(3) ?? Buffer.alloc(0)).get(NFTA_DATA.VALUE) ?? Buffer.alloc(0);
        const op = u32be(2) === 1 ? '!=' : '==';
        if (l && DEPENDENCIES.has(l.text)) header = HEADER_OF[l.text === 'meta nfproto' ? String(value[0]) : value.toString('hex')] ?? header;
        else if (l) terms.push({ match: l.text, op, right: valueText(l.text, value, l.fieldLen, l.prefix) });
        else terms.push({ unknown: `cmp ${value.toString('hex')}` });
        pending = [];
        break;
      }
      case 'lookup': {
        const from = reg32(u32be(2));
        const fields = pending.filter((l) => l.at >= from).sort((a, b) => a.at - b.at);
        terms.push({ match: fields.map((l) => l.text).join(' . '), op: u32be(5) & 1 ? '!=' : '==', right: `@${cstr(d.get(1))}` });
        pending = [];
        break;
      }
      case 'immediate': {
        const verdict = decodeAttrs(decodeAttrs(d.get(2) ?? Buffer.alloc(0)).get(NFTA_DATA.VERDICT) ?? Buffer.alloc(0)).get(NFTA_VERDICT_CODE);
        if (u32be(1) === 0 && verdict) terms.push({ verdict: VERDICTS[verdict.readInt32BE(0)] ?? 'continue' });
        else terms.push({ unknown: 'immediate' });
        break;
      }
      case 'counter':
        break;
      case 'masq':
        terms.push({ masquerade: true });
        break;
      default:
        terms.push({ unknown: name });
    }
  }
  return terms;
}
