// bridge `macspoofchk`: frames entering a bridge from a pod's node veth must carry the pod's MAC, and its IPv4
// (IP and ARP sender) and IPv6 source addresses must be the pod's own. One nftables `bridge` table:
//
//   table bridge tscni-macspoof
//     set ports  { type ifname }                       node veths under check
//     set macs   { type ifname . ether_addr }          port . pod MAC
//     set ports4 { type ifname }; set addrs4 { type ifname . ipv4_addr }           ports with IPv4 checked
//     set ports6 { type ifname }; set addrs6 { type ifname . ipv6_addr; interval }  ... IPv6 (+ fe80::/10, ::)
//     chain prerouting (filter, bridge prerouting, priority -300, as the reference's):
//       iifname @ports  iifname . ether saddr != @macs drop
//       iifname @ports4 arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @addrs4 drop
//       iifname @ports4 iifname . ip saddr != @addrs4 drop
//       iifname @ports6 iifname . ip6 saddr != @addrs6 drop
//
// As for masquerade (nft.ts), the rules never change: an ADD is one transaction of element adds, each element
// tagged with the attachment's tag in its comment, which is how DEL (also with the netns gone) and GC find
// their own. The reference instead makes two chains per pod and two transactions per ADD.
import { run } from '../exec';
import { CniError, ErrCode } from '../cni/errors';
import { netlinkUsable } from '../netlink/native';
import { applyElements, listElements, readChain, type KeyField, type RuleTerm, type SetSpec } from '../netlink/nftables';
import { formatIP, parseIP } from '../ipnet';
import { attachmentComment, attachmentTag, networkTag, type MasqAttachment } from './model';
import { commentTag, selectTagged } from './nft';
import { findTool } from './tools';
import type { NatOptions } from './index';

export const SPOOF_TABLE = 'tscni-macspoof';
const T = `bridge ${SPOOF_TABLE}`;
const CHAIN = 'prerouting';
const SETS: Record<string, string> = {
  ports: 'ifname',
  macs: 'ifname . ether_addr',
  ports4: 'ifname',
  addrs4: 'ifname . ipv4_addr',
  ports6: 'ifname',
  addrs6: 'ifname . ipv6_addr; flags interval',
};
/** the sets as netlink sees them */
const SPECS: Record<string, SetSpec> = Object.fromEntries(
  Object.entries(SETS).map(([name, type]) => {
    const fields = type.split(';')[0].split(' . ') as KeyField[];
    return [name, { family: 'bridge', table: SPOOF_TABLE, name, fields, interval: type.includes('interval') }];
  }),
);
const RULES = [
  'iifname @ports iifname . ether saddr != @macs counter drop',
  'iifname @ports4 arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @addrs4 counter drop',
  'iifname @ports4 iifname . ip saddr != @addrs4 counter drop',
  'iifname @ports6 iifname . ip6 saddr != @addrs6 counter drop',
];
/** What each rule reads as in `rulesKey` (the sets it looks up, then its verdict). */
const RULE_KEYS = ['@ports @macs drop', '@ports4 0.0.0.0 @addrs4 drop', '@ports4 @addrs4 drop', '@ports6 @addrs6 drop'];
/** IPv6 sources a pod uses before or besides its own addresses: DAD (::) and its link-local. */
const V6_ALWAYS = ['fe80::/10', '::'];

/** One pod port under check. */
export interface SpoofPort {
  att: MasqAttachment;
  /** the node end of the pod's veth (the bridge port) */
  port: string;
  /** the pod interface's MAC */
  mac: string;
  /** the pod's addresses, with or without prefix length */
  ips: string[];
}

export interface SpoofElement {
  set: string;
  /** nft syntax: `"veth1" . 0a:58:0a:16:00:05` */
  key: string;
  comment?: string;
}

const q = (ifname: string): string => `"${ifname}"`;

/** The elements a port owns, with its comment. */
export function portElements(p: SpoofPort): SpoofElement[] {
  const comment = `${commentTag(attachmentTag(p.att))} ${attachmentComment(p.att).replace(/^tscni /, '')}`;
  const out: SpoofElement[] = [
    { set: 'ports', key: q(p.port), comment },
    { set: 'macs', key: `${q(p.port)} . ${p.mac.toLowerCase()}`, comment },
  ];
  const ips = p.ips.map((s) => {
    const a = parseIP(s.split('/')[0]);
    if (!a) throw new CniError(ErrCode.InvalidConfig, `macspoofchk: invalid pod address ${JSON.stringify(s)}`);
    return { family: a.family, ip: formatIP(a.family, a.ip) };
  });
  for (const f of [4, 6] as const) {
    const mine = ips.filter((x) => x.family === f).map((x) => x.ip);
    if (!mine.length) continue;
    out.push({ set: `ports${f}`, key: q(p.port), comment });
    for (const ip of [...(f === 6 ? V6_ALWAYS : []), ...mine]) out.push({ set: `addrs${f}`, key: `${q(p.port)} . ${ip}`, comment });
  }
  return out;
}

export function elementsScript(p: SpoofPort): string {
  return portElements(p)
    .map((e) => `add element ${T} ${e.set} { ${e.key} comment "${e.comment}" }\n`)
    .join('');
}

/** Table, sets and chain (flushed and refilled, so a tampered chain is repaired), then the port's elements. */
export function fullScript(p: SpoofPort): string {
  const l = [`add table ${T} { comment "tscni macspoofchk: set elements are tagged tscni:<network hash>-<attachment hash>"; }`];
  for (const [name, type] of Object.entries(SETS)) l.push(`add set ${T} ${name} { type ${type}; }`);
  l.push(`add chain ${T} ${CHAIN} { type filter hook prerouting priority -300; policy accept; }`, `flush chain ${T} ${CHAIN}`);
  for (const r of RULES) l.push(`add rule ${T} ${CHAIN} ${r}`);
  return l.join('\n') + '\n' + elementsScript(p);
}

// ---- reading `nft -j list table bridge tscni-macspoof` ----

export interface SpoofState {
  exists: boolean;
  hooked: boolean;
  /** the chain's rules as rulesKey renders them */
  rules: string[];
  elements: SpoofElement[];
}

type J = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** An element's key in nft syntax: the port name first (quoted), then an address, MAC or prefix. */
function keyText(v: unknown): string {
  const o = v as J;
  const addr = (x: J | string): string => (typeof x === 'string' ? x : x?.prefix ? `${x.prefix.addr}/${x.prefix.len}` : JSON.stringify(x));
  if (typeof v === 'string') return q(v);
  if (Array.isArray(o?.concat)) return [q(String(o.concat[0])), ...o.concat.slice(1).map(addr)].join(' . ');
  return JSON.stringify(v);
}

/** A rule as the set names and constants it matches against, then its verdict: enough to see it changed. */
export function rulesKey(expr: J[]): string {
  const parts: string[] = [];
  for (const e of expr) {
    if (e.match && typeof e.match.right === 'string') parts.push(e.match.right);
    else if ('drop' in e) parts.push('drop');
    else if (!('counter' in e)) parts.push(JSON.stringify(e));
  }
  return parts.join(' ');
}

/** A rule read over netlink, as rulesKey renders it. */
export function termsRulesKey(terms: RuleTerm[]): string {
  return terms.map((t) => ('match' in t ? t.right : 'verdict' in t ? t.verdict : JSON.stringify(t))).join(' ');
}

/** The table as netlink reads it. */
function readSpoofTable(o: NatOptions): SpoofState {
  const c = readChain('bridge', SPOOF_TABLE, CHAIN, o.netns);
  const st: SpoofState = {
    exists: c.table,
    hooked: c.chain?.hook === 'prerouting' && c.chain.priority === -300,
    rules: c.rules.map(termsRulesKey),
    elements: [],
  };
  if (!c.table) return st;
  for (const spec of Object.values(SPECS)) {
    try {
      for (const e of listElements(spec, o.netns)) st.elements.push({ set: spec.name, key: e.key, comment: e.comment });
    } catch {
      // a set that is missing: its elements are reported missing
    }
  }
  return st;
}

export function parseSpoofTable(json: string): SpoofState {
  const st: SpoofState = { exists: false, hooked: false, rules: [], elements: [] };
  if (!json.trim()) return st;
  for (const it of (JSON.parse(json) as { nftables?: J[] }).nftables ?? []) {
    if (it.table) st.exists = true;
    else if (it.chain?.name === CHAIN) st.hooked = it.chain.hook === 'prerouting' && it.chain.prio === -300;
    else if (it.rule?.chain === CHAIN) st.rules.push(rulesKey(it.rule.expr ?? []));
    else if (it.set) {
      for (const x of (it.set.elem ?? []) as J[]) {
        const val = x?.elem ? x.elem.val : x;
        st.elements.push({ set: it.set.name, key: keyText(val), comment: x?.elem?.comment });
      }
    }
  }
  return st;
}

/** Deletes of the elements whose tag is selected; '' when there are none. */
export function deleteScript(st: SpoofState, select: (tag: string) => boolean): string {
  return selectTagged(st.elements, select)
    .map((e) => `delete element ${T} ${e.set} { ${e.key} }\n`)
    .join('');
}

/** What is wrong with a port's check in a listed table; [] when all is in place. */
export function checkSpoofState(st: SpoofState, p: SpoofPort): string[] {
  if (!st.exists) return [`macspoofchk: nftables table ${T} is missing`];
  const problems: string[] = [];
  if (!st.hooked || st.rules.join('\n') !== RULE_KEYS.join('\n')) {
    problems.push(`macspoofchk: nftables chain ${T} ${CHAIN} is missing or changed: [${st.rules.join('; ')}]`);
  }
  const want = portElements(p);
  for (const w of want) {
    const e = st.elements.find((x) => x.set === w.set && x.key === w.key);
    if (!e) problems.push(`macspoofchk: nftables set ${w.set} has no element ${w.key}`);
    else if (e.comment !== w.comment) problems.push(`macspoofchk: nftables set ${w.set} element ${w.key} belongs to "${e.comment ?? ''}"`);
  }
  // anything else on this port (an old MAC or address) would let the pod send with it
  for (const e of st.elements) {
    if (e.key.startsWith(`${q(p.port)}`) && !want.some((w) => w.set === e.set && w.key === e.key)) {
      problems.push(`macspoofchk: nftables set ${e.set} has an unexpected element ${e.key} (${e.comment ?? 'untagged'})`);
    }
  }
  return problems;
}

// ---- talking to nft ----

function nftBin(required: boolean): string | undefined {
  const bin = findTool('nft');
  if (!bin && required) throw new CniError(ErrCode.KernelOperation, 'macspoofchk: the nft program is not installed');
  return bin;
}

async function nft(args: string[], o: NatOptions, input?: string) {
  return run(nftBin(true)!, args, { input, netns: o.netns, allowFailure: true });
}

export async function listSpoofTable(o: NatOptions = {}): Promise<SpoofState> {
  if (netlinkUsable()) {
    try {
      return readSpoofTable(o);
    } catch (e) {
      throw new CniError(ErrCode.KernelOperation, `macspoofchk: nftables table ${T}: ${(e as Error).message}`);
    }
  }
  const r = await nft(['-j', 'list', 'table', 'bridge', SPOOF_TABLE], o);
  if (r.exitCode === 0) return parseSpoofTable(r.stdout);
  if (/No such file or directory|does not exist/i.test(r.stderr)) return parseSpoofTable('');
  throw new CniError(ErrCode.KernelOperation, `macspoofchk: nft list table ${T}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
}

/** Element ops in one netlink transaction, answered as nft would: exit 0, or nft's words on stderr. */
function overNetlink(ops: Parameters<typeof applyElements>[0], o: NatOptions): { exitCode: number; stderr: string } {
  try {
    applyElements(ops, o.netns);
    return { exitCode: 0, stderr: '' };
  } catch (e) {
    return { exitCode: 1, stderr: (e as Error).message };
  }
}

/** Install the port's check: element adds (over netlink, else one `nft -f`); `nft -f` makes table and chain. */
export async function setupSpoofchk(p: SpoofPort, o: NatOptions = {}): Promise<void> {
  let r = netlinkUsable()
    ? overNetlink(
        portElements(p).map((e) => ({ op: 'add' as const, set: SPECS[e.set], key: e.key, comment: e.comment })),
        o,
      )
    : await nft(['-f', '-'], o, elementsScript(p));
  if (r.exitCode !== 0 && /No such file or directory/i.test(r.stderr)) r = await nft(['-f', '-'], o, fullScript(p));
  if (r.exitCode !== 0) throw new CniError(ErrCode.KernelOperation, `macspoofchk: nft setup failed: ${r.stderr.trim().split('\n')[0]}`);
}

async function removeTagged(o: NatOptions, select: (tag: string) => boolean): Promise<void> {
  if (!nftBin(false)) return; // no nft: nothing of ours can exist
  const st = await listSpoofTable(o);
  const script = deleteScript(st, select);
  if (!script) return;
  const doomed = selectTagged(st.elements, select);
  const r = netlinkUsable()
    ? overNetlink(
        doomed.map((e) => ({ op: 'del' as const, set: SPECS[e.set], key: e.key })),
        o,
      )
    : await nft(['-f', '-'], o, script);
  if (r.exitCode !== 0) throw new CniError(ErrCode.KernelOperation, `macspoofchk: nft delete failed: ${r.stderr.trim().split('\n')[0]}`);
}

/** Remove the attachment's check; needs neither its addresses nor its netns. */
export async function teardownSpoofchk(att: MasqAttachment, o: NatOptions = {}): Promise<void> {
  const tag = attachmentTag(att);
  await removeTagged(o, (t) => t === tag);
}

export async function checkSpoofchk(p: SpoofPort, o: NatOptions = {}): Promise<string[]> {
  return checkSpoofState(await listSpoofTable(o), p);
}

/** Remove the checks of `network` whose attachment is not in `valid` (CNI GC). */
export async function gcSpoofchk(network: string, valid: MasqAttachment[], o: NatOptions = {}): Promise<void> {
  const keep = new Set(valid.map((a) => attachmentTag({ ...a, network })));
  const prefix = `${networkTag(network)}-`;
  await removeTagged(o, (t) => t.startsWith(prefix) && !keep.has(t));
}

/** Delete the table when no network has a check in it any more (uninstall); true when it was deleted. */
export async function dropSpoofTableIfEmpty(o: NatOptions = {}): Promise<boolean> {
  const st = await listSpoofTable(o);
  if (!st.exists || st.elements.length) return false;
  return (await nft(['delete', 'table', 'bridge', SPOOF_TABLE], o)).exitCode === 0;
}
