// nftables backend. Layout (one `inet` table, IPv4 and IPv6 together):
//
//   table inet tscni
//     map masq4 { type ipv4_addr : mark }                              pod address -> attachment id
//     map keep4 { type ipv4_addr . ipv4_addr : mark; flags interval }  pod address . destination left alone
//     map masq6, keep6: the same for IPv6
//     chain postrouting (nat, srcnat):
//       ip daddr 224.0.0.0/4 return; ip6 daddr ff00::/8 return
//       ip saddr . ip daddr @keep4 return; ip6 saddr . ip6 daddr @keep6 return
//       ip saddr @masq4 counter masquerade; ip6 saddr @masq6 counter masquerade
//
// Why this shape: the rules never change, only map elements do. Each element carries a comment
// `tscni:<net8>-<att12> net=.. id=.. if=..` (how teardown and GC find an attachment's own without its
// address; readable in `nft list ruleset`) and a mark derived from the same tag (so adding an address
// held by another attachment clashes instead of silently keeping the other's comment).
// Setup is one transaction of element adds: `add` of an identical element is a no-op, so ADD twice
// leaves the same ruleset. A transaction that deletes or flushes anything, or touches a chain, costs the
// kernel's commit several times what one that only adds elements does, so:
//   1. fast path: add the elements (over netlink in process, pkg/netlink/nftables.ts; else one `nft -f`);
//   2. table or map missing (first pod of the node): one `nft -f` transaction creating table, maps, chain
//      (flushed and refilled, so a tampered chain is repaired too) plus the elements;
//   3. clash with a stale attachment holding the address: list, then the full transaction that also
//      deletes that attachment's elements for our addresses (rare).
// Listing (CHECK, DEL without prevResult, GC) and element deletes also go over netlink when they can.
// The lookup per packet is a hash/interval lookup whatever the number of pods.
import { run } from '../exec';
import { CniError, ErrCode } from '../cni/errors';
import { netlinkUsable } from '../netlink/native';
import { NetlinkError } from '../netlink/nl';
import { applyElements, listElements, readChain, type ElementOp, type RuleTerm, type SetSpec } from '../netlink/nftables';
import { MULTICAST, attachmentMark, type AttachmentPlan } from './model';
import type { Family } from '../ipnet';

export const TABLE = 'tscni';
export const BASE_CHAIN = 'postrouting';
export const MASQ: Record<Family, string> = { 4: 'masq4', 6: 'masq6' };
export const KEEP: Record<Family, string> = { 4: 'keep4', 6: 'keep6' };
const ADDR: Record<Family, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };
const T = `inet ${TABLE}`;

/** the maps as netlink sees them: key fields, ranges, mark data */
const MAPS: Record<string, SetSpec> = Object.fromEntries(
  ([4, 6] as Family[]).flatMap((f) => {
    const addr = f === 4 ? 'ipv4_addr' : 'ipv6_addr';
    return [
      [MASQ[f], { family: 'inet', table: TABLE, name: MASQ[f], fields: [addr], mark: true }],
      [KEEP[f], { family: 'inet', table: TABLE, name: KEEP[f], fields: [addr, addr], interval: true, mark: true }],
    ];
  }),
);

export const commentTag = (tag: string): string => `tscni:${tag}`;
/** the tag an element comment carries, or undefined for foreign elements */
export const tagOf = (comment: string | undefined): string | undefined => /^tscni:(\S+)/.exec(comment ?? '')?.[1];

/** The elements whose tag is selected (untagged ones are never ours). */
export function selectTagged<E extends { comment?: string }>(elements: E[], select: (tag: string) => boolean): E[] {
  return elements.filter((e) => {
    const t = tagOf(e.comment);
    return t !== undefined && select(t);
  });
}

/** The base chain's rules as `ruleKey` renders them. */
export const BASE_RULE_KEYS = [
  `ip daddr ${MULTICAST[4]} return`,
  `ip6 daddr ${MULTICAST[6]} return`,
  `ip saddr . ip daddr @${KEEP[4]} return`,
  `ip6 saddr . ip6 daddr @${KEEP[6]} return`,
  `ip saddr @${MASQ[4]} masquerade`,
  `ip6 saddr @${MASQ[6]} masquerade`,
];

/** Elements of the plans: [map, key text, comment, mark]. */
export function planElements(plans: AttachmentPlan[]): { map: string; key: string; ip: string; comment: string; mark: number }[] {
  const out: { map: string; key: string; ip: string; comment: string; mark: number }[] = [];
  for (const p of plans) {
    const comment = `${commentTag(p.tag)} ${p.comment.replace(/^tscni /, '')}`;
    const mark = attachmentMark(p.tag);
    for (const x of p.ips) {
      out.push({ map: MASQ[x.family], key: x.ip, ip: x.ip, comment, mark });
      for (const e of p.excluded) if (e.family === x.family) out.push({ map: KEEP[x.family], key: `${x.ip} . ${e.cidr}`, ip: x.ip, comment, mark });
    }
  }
  return out;
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

const elementLine = (e: { map: string; key: string; comment: string; mark: number }): string =>
  `add element ${T} ${e.map} { ${e.key} comment "${e.comment}" : ${hex(e.mark)} }`;

/** The fast path: element adds only. */
export function elementsScript(plans: AttachmentPlan[]): string {
  return planElements(plans)
    .map((e) => elementLine(e) + '\n')
    .join('');
}

/** Table, maps and the base chain (flushed and refilled), then `deleteFirst`, then the elements. */
export function fullScript(plans: AttachmentPlan[], deleteFirst: NftElement[] = []): string {
  const l: string[] = [`add table ${T} { comment "tscni masquerade: map elements are tagged tscni:<network hash>-<attachment hash>"; }`];
  for (const f of [4, 6] as Family[]) {
    l.push(`add map ${T} ${MASQ[f]} { type ${ADDR[f]} : mark; comment "pod addresses to masquerade"; }`);
    l.push(`add map ${T} ${KEEP[f]} { type ${ADDR[f]} . ${ADDR[f]} : mark; flags interval; comment "pod address . destination not masqueraded"; }`);
  }
  l.push(`add chain ${T} ${BASE_CHAIN} { type nat hook postrouting priority srcnat; policy accept; }`, `flush chain ${T} ${BASE_CHAIN}`);
  for (const k of BASE_RULE_KEYS) l.push(`add rule ${T} ${BASE_CHAIN} ${k.replace(/ masquerade$/, ' counter masquerade')}`);
  l.push(...deleteFirst.map(deleteLine));
  return l.join('\n') + '\n' + elementsScript(plans);
}

const deleteLine = (e: NftElement): string => `delete element ${T} ${e.map} { ${e.key} }`;

// ---- reading `nft -j list table inet tscni` ----

export interface NftElement {
  map: string;
  /** key as nft syntax: `10.1.0.5` or `10.1.0.5 . 10.1.0.0/16` */
  key: string;
  /** the pod address (first part of the key) */
  ip: string;
  comment?: string;
}

export interface NftState {
  exists: boolean;
  maps: Set<string>;
  baseHooked: boolean;
  /** base chain rule keys (see ruleKey) */
  baseRules: string[];
  elements: NftElement[];
}

type J = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Address, prefix or range in nft JSON as nft syntax; a prefix of full length prints as the address. */
function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  const o = v as J | undefined;
  if (o?.prefix && typeof o.prefix.addr === 'string') return `${o.prefix.addr}/${o.prefix.len}`;
  if (Array.isArray(o?.range)) return `${valueText(o!.range[0])}-${valueText(o!.range[1])}`;
  if (Array.isArray(o?.concat)) return o!.concat.map(valueText).join(' . ');
  return JSON.stringify(v);
}

function exprText(v: J): string {
  if (v?.payload) return `${v.payload.protocol} ${v.payload.field}`;
  if (Array.isArray(v?.concat)) return v.concat.map(exprText).join(' . ');
  return valueText(v);
}

/** A rule read over netlink as the same short text. */
export function termsKey(terms: RuleTerm[]): string {
  return terms
    .map((t) =>
      'match' in t ? `${t.match} ${t.op === '!=' ? '!= ' : ''}${t.right}` : 'verdict' in t ? t.verdict : 'masquerade' in t ? 'masquerade' : JSON.stringify(t),
    )
    .join(' ');
}

/** A rule's expressions as the short text we generate; counters and comments are ignored, the unknown kept verbatim. */
export function ruleKey(expr: J[]): string {
  const parts: string[] = [];
  for (const e of expr) {
    if ('counter' in e) continue;
    if (e.match) {
      const neg = e.match.op === '!=' ? '!= ' : '';
      parts.push(`${exprText(e.match.left)} ${neg}${exprText(e.match.right)}`);
    } else if ('return' in e) parts.push('return');
    else if ('masquerade' in e) parts.push('masquerade');
    else parts.push(JSON.stringify(e));
  }
  return parts.join(' ');
}

export function parseTable(json: string): NftState {
  const st: NftState = { exists: false, maps: new Set(), baseHooked: false, baseRules: [], elements: [] };
  if (!json.trim()) return st;
  const items = (JSON.parse(json) as { nftables?: J[] }).nftables ?? [];
  for (const it of items) {
    if (it.table) st.exists = true;
    else if (it.chain?.name === BASE_CHAIN) st.baseHooked = it.chain.hook === 'postrouting' && it.chain.type === 'nat';
    else if (it.rule?.chain === BASE_CHAIN) st.baseRules.push(ruleKey(it.rule.expr ?? []));
    else if (it.map) {
      st.maps.add(it.map.name);
      for (const pair of (it.map.elem ?? []) as J[]) {
        const k = Array.isArray(pair) ? pair[0] : pair;
        const val = k?.elem ? k.elem.val : k;
        const key = valueText(val);
        st.elements.push({ map: it.map.name, key, ip: key.split(' . ')[0], comment: k?.elem?.comment });
      }
    }
  }
  return st;
}

/** Transaction removing the elements whose tag is selected; '' when there are none. */
export function deleteScript(st: NftState, select: (tag: string) => boolean): string {
  return selectTagged(st.elements, select)
    .map((e) => deleteLine(e) + '\n')
    .join('');
}

/** Problems of the attachments' rules in a listed table; [] when all is in place. */
export function checkState(st: NftState, plans: AttachmentPlan[]): string[] {
  if (!st.exists) return [`nftables table ${T} is missing`];
  const problems: string[] = [];
  if (!st.baseHooked || st.baseRules.join('\n') !== BASE_RULE_KEYS.join('\n')) {
    problems.push(`nftables chain ${T} ${BASE_CHAIN} is missing or changed: [${st.baseRules.join('; ')}], expected [${BASE_RULE_KEYS.join('; ')}]`);
  }
  const want = planElements(plans);
  for (const w of want) {
    const e = st.elements.find((x) => x.map === w.map && x.key === w.key);
    const what = `nftables map ${w.map} element ${w.key}`;
    if (!e) problems.push(`${what} is missing (${w.comment})`);
    else if (e.comment !== w.comment) problems.push(`${what} belongs to "${e.comment ?? ''}", expected "${w.comment}"`);
  }
  const mine = new Set(plans.map((p) => p.tag));
  const ips = new Set(want.map((w) => `${w.map}|${w.ip}`));
  for (const e of st.elements) {
    const t = tagOf(e.comment);
    const expected = want.some((w) => w.map === e.map && w.key === e.key);
    if (expected) continue;
    if (t && mine.has(t)) problems.push(`nftables map ${e.map} has an unexpected element ${e.key} (${e.comment})`);
    else if (ips.has(`${e.map}|${e.ip}`))
      problems.push(`nftables map ${e.map} element ${e.key} of another attachment (${e.comment ?? 'untagged'}) applies to ${e.ip}`);
  }
  return problems;
}

// ---- talking to nft ----

export interface NftIO {
  nft: string;
  netns?: string;
}

/** The table as netlink reads it: chain, rules and every map's elements. */
function readTable(io: NftIO): NftState {
  const c = readChain('inet', TABLE, BASE_CHAIN, io.netns);
  const st: NftState = {
    exists: c.table,
    maps: new Set(),
    baseHooked: c.chain?.hook === 'postrouting' && c.chain.type === 'nat',
    baseRules: c.rules.map(termsKey),
    elements: [],
  };
  if (!c.table) return st;
  for (const spec of Object.values(MAPS)) {
    try {
      for (const e of listElements(spec, io.netns)) st.elements.push({ map: spec.name, key: e.key, ip: e.key.split(' . ')[0], comment: e.comment });
      st.maps.add(spec.name);
    } catch (e) {
      if (!(e instanceof NetlinkError && e.code === 'ENOENT')) throw e;
    }
  }
  return st;
}

export async function listTable(io: NftIO): Promise<NftState> {
  if (netlinkUsable()) {
    try {
      return readTable(io);
    } catch (e) {
      throw new CniError(ErrCode.KernelOperation, `nftables table ${T}: ${(e as Error).message}`);
    }
  }
  const r = await run(io.nft, ['-j', 'list', 'table', 'inet', TABLE], { netns: io.netns, allowFailure: true });
  if (r.exitCode !== 0) {
    if (/No such file or directory|does not exist/i.test(r.stderr)) return parseTable('');
    throw new CniError(ErrCode.KernelOperation, `nft list table ${T}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  }
  return parseTable(r.stdout);
}

export async function apply(io: NftIO, script: string): Promise<{ ok: boolean; stderr: string }> {
  const r = await run(io.nft, ['-f', '-'], { input: script, netns: io.netns, allowFailure: true });
  return { ok: r.exitCode === 0, stderr: r.stderr.trim() || `exit ${r.exitCode}` };
}

/** Element adds and deletes in one netlink transaction, answered as nft would: ok, or nft's words for the refusal. */
function applyOverNetlink(io: NftIO, ops: ElementOp[]): { ok: boolean; stderr: string } {
  try {
    applyElements(ops, io.netns);
    return { ok: true, stderr: '' };
  } catch (e) {
    return { ok: false, stderr: (e as Error).message };
  }
}

const addOps = (plans: AttachmentPlan[]): ElementOp[] =>
  planElements(plans).map((e) => ({ op: 'add', set: MAPS[e.map], key: e.key, comment: e.comment, mark: e.mark }));

export async function setup(io: NftIO, plans: AttachmentPlan[]): Promise<void> {
  let r = netlinkUsable() ? applyOverNetlink(io, addOps(plans)) : await apply(io, elementsScript(plans));
  if (!r.ok && /No such file or directory/i.test(r.stderr)) r = await apply(io, fullScript(plans));
  if (!r.ok && /File exists/i.test(r.stderr)) {
    const st = await listTable(io);
    const mine = new Set(plans.map((p) => p.tag));
    const ours = new Set(plans.flatMap((p) => p.ips.map((x) => x.ip)));
    const stale = st.elements.filter((e) => ours.has(e.ip) && !mine.has(tagOf(e.comment) ?? ''));
    r = await apply(io, fullScript(plans, stale));
  }
  if (!r.ok) throw new CniError(ErrCode.KernelOperation, `ipMasq: nft setup failed: ${r.stderr.split('\n')[0]}`);
}

/**
 * Removal of elements we can name (the addresses come from prevResult) without listing: each is added with
 * our own mark, then deleted, in one transaction. The add makes the delete of an absent element harmless (DEL
 * twice), and clashes with an element of another attachment, aborting the transaction before it deletes
 * anything. Returns false when that path does not apply (another owner, no table): the caller lists instead.
 */
export async function removeKnown(io: NftIO, plans: AttachmentPlan[]): Promise<boolean> {
  const els = planElements(plans);
  if (!els.length) return true;
  if (netlinkUsable())
    return applyOverNetlink(
      io,
      addOps(plans).flatMap((a) => [a, { ...a, op: 'del' as const }]),
    ).ok;
  const script = els.map((e) => `${elementLine(e)}\n${deleteLine(e)}\n`).join('');
  return (await apply(io, script)).ok;
}

export async function removeTagged(io: NftIO, select: (tag: string) => boolean): Promise<void> {
  const st = await listTable(io);
  const doomed = selectTagged(st.elements, select);
  if (!doomed.length) return;
  const r = netlinkUsable()
    ? applyOverNetlink(
        io,
        doomed.map((e) => ({ op: 'del', set: MAPS[e.map], key: e.key })),
      )
    : await apply(io, deleteScript(st, select));
  if (!r.ok) throw new CniError(ErrCode.KernelOperation, `ipMasq: nft delete failed: ${r.stderr.split('\n')[0]}`);
}
