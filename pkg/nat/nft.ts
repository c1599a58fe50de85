// nftables backend. Layout (one `inet` table, IPv4 and IPv6 together):
//
//   table inet tscni
//     map masq4 { ipv4_addr : verdict }   pod address -> goto masq-<tag>
//     map masq6 { ipv6_addr : verdict }
//     chain postrouting (nat, srcnat): ip saddr vmap @masq4; ip6 saddr vmap @masq6
//     chain masq-<net8>-<att12> (one per attachment, commented with network/container/ifname):
//       ip daddr <excluded> return ...; ip daddr 224.0.0.0/4 return; ip6 daddr ff00::/8 return
//       counter masquerade
//
// Why this shape: setup is one transaction that `add`s (a no-op when present) the table, maps and
// chains, then *flushes and refills* the constant base chain and the attachment's own chain, and adds
// the map elements (adding an identical element is a no-op). Repeating it yields the same ruleset,
// without reading state first. The vmap lookup is O(1) per packet however many pods the node runs.
// Teardown needs no address: the chain name is derived from the attachment, and the elements that
// point at it are found in one listing of our (small) table.
import { run } from '../exec';
import { CniError, ErrCode } from '../cni/errors';
import { MULTICAST, type AttachmentPlan } from './model';
import type { Family } from '../ipnet';

export const TABLE = 'tscni';
export const BASE_CHAIN = 'postrouting';
export const MAPS: Record<Family, string> = { 4: 'masq4', 6: 'masq6' };
const PROTO: Record<Family, string> = { 4: 'ip', 6: 'ip6' };

export const chainName = (tag: string): string => `masq-${tag}`;

/** The rule keys of an attachment chain, in order; the same text `ruleKey` derives from `nft -j` output. */
export function expectedRuleKeys(p: AttachmentPlan): string[] {
  const fams = [...new Set(p.ips.map((x) => x.family))].sort();
  return [
    ...p.excluded.map((x) => `${PROTO[x.family]} daddr ${x.cidr} return`),
    ...fams.map((f) => `${PROTO[f]} daddr ${MULTICAST[f]} return`),
    'masquerade',
  ];
}

/** The whole setup transaction for `nft -f -`. */
export function setupScript(plans: AttachmentPlan[], deleteFirst: NftElement[] = []): string {
  const t = `inet ${TABLE}`;
  const l: string[] = [
    `add table ${t} { comment "tscni masquerade (per-attachment chains masq-<network hash>-<attachment hash>)"; }`,
    `add chain ${t} ${BASE_CHAIN} { type nat hook postrouting priority srcnat; policy accept; }`,
    `add map ${t} ${MAPS[4]} { type ipv4_addr : verdict; }`,
    `add map ${t} ${MAPS[6]} { type ipv6_addr : verdict; }`,
    `flush chain ${t} ${BASE_CHAIN}`,
    `add rule ${t} ${BASE_CHAIN} ip saddr vmap @${MAPS[4]}`,
    `add rule ${t} ${BASE_CHAIN} ip6 saddr vmap @${MAPS[6]}`,
  ];
  for (const e of deleteFirst) l.push(`delete element ${t} ${e.map} { ${e.ip} }`);
  for (const p of plans) {
    const c = chainName(p.tag);
    l.push(`add chain ${t} ${c} { comment "${p.comment}"; }`, `flush chain ${t} ${c}`);
    for (const k of expectedRuleKeys(p)) {
      l.push(k === 'masquerade' ? `add rule ${t} ${c} counter masquerade comment "${p.comment}"` : `add rule ${t} ${c} ${k}`);
    }
    for (const x of p.ips) l.push(`add element ${t} ${MAPS[x.family]} { ${x.ip} comment "${p.comment}" : goto ${c} }`);
  }
  return l.join('\n') + '\n';
}

// ---- reading `nft -j list table inet tscni` ----

export interface NftElement {
  map: string;
  ip: string;
  /** the chain the element jumps/goes to */
  target: string;
}

export interface NftState {
  exists: boolean;
  /** chain name -> rule keys (see ruleKey) */
  chains: Map<string, string[]>;
  baseHooked: boolean;
  elements: NftElement[];
}

type J = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function addrText(v: unknown): string {
  if (typeof v === 'string') return v.includes(':') ? `${v}/128` : `${v}/32`;
  const p = (v as J | undefined)?.prefix;
  if (p && typeof p.addr === 'string') return `${p.addr}/${p.len}`;
  return JSON.stringify(v);
}

/** A rule's expressions as the short text we generate; counters and comments are ignored, the unknown kept verbatim. */
export function ruleKey(expr: J[]): string {
  const parts: string[] = [];
  for (const e of expr) {
    if ('counter' in e) continue;
    if (e.match && e.match.left?.payload) {
      const { protocol, field } = e.match.left.payload;
      const neg = e.match.op === '!=' ? '!= ' : '';
      parts.push(`${protocol} ${field} ${neg}${addrText(e.match.right)}`);
    } else if ('return' in e) parts.push('return');
    else if ('masquerade' in e) parts.push('masquerade');
    else if (e.vmap) parts.push(`${e.vmap.key?.payload?.protocol} ${e.vmap.key?.payload?.field} vmap ${e.vmap.data}`);
    else parts.push(JSON.stringify(e));
  }
  return parts.join(' ');
}

export function parseTable(json: string): NftState {
  const st: NftState = { exists: false, chains: new Map(), baseHooked: false, elements: [] };
  if (!json.trim()) return st;
  const items = (JSON.parse(json) as { nftables?: J[] }).nftables ?? [];
  for (const it of items) {
    if (it.table) st.exists = true;
    else if (it.chain) {
      if (!st.chains.has(it.chain.name)) st.chains.set(it.chain.name, []);
      if (it.chain.name === BASE_CHAIN && it.chain.hook === 'postrouting' && it.chain.type === 'nat') st.baseHooked = true;
    } else if (it.rule) {
      const list = st.chains.get(it.rule.chain) ?? [];
      list.push(ruleKey(it.rule.expr ?? []));
      st.chains.set(it.rule.chain, list);
    } else if (it.map && Array.isArray(it.map.elem)) {
      for (const pair of it.map.elem as J[]) {
        if (!Array.isArray(pair) || pair.length !== 2) continue;
        const [k, v] = pair;
        const ip = typeof k === 'string' ? k : k?.elem?.val;
        const target = v?.goto?.target ?? v?.jump?.target;
        if (typeof ip === 'string' && typeof target === 'string') st.elements.push({ map: it.map.name, ip, target });
      }
    }
  }
  return st;
}

/** Transaction removing the chains named and every element pointing at them; '' when nothing is there. */
export function deleteScript(st: NftState, chains: Set<string>): string {
  const t = `inet ${TABLE}`;
  const l: string[] = [];
  for (const e of st.elements) if (chains.has(e.target)) l.push(`delete element ${t} ${e.map} { ${e.ip} }`);
  for (const c of chains) if (st.chains.has(c)) l.push(`flush chain ${t} ${c}`, `delete chain ${t} ${c}`);
  return l.length ? l.join('\n') + '\n' : '';
}

/** Problems of the attachments' rules in a listed table; [] when all is in place. */
export function checkState(st: NftState, plans: AttachmentPlan[]): string[] {
  if (!st.exists) return [`nftables table inet ${TABLE} is missing`];
  const problems: string[] = [];
  const base = st.chains.get(BASE_CHAIN);
  const wantBase = [`ip saddr vmap @${MAPS[4]}`, `ip6 saddr vmap @${MAPS[6]}`];
  if (!st.baseHooked || !base || wantBase.some((k) => !base.includes(k))) {
    problems.push(`nftables chain inet ${TABLE} ${BASE_CHAIN} is missing or does not look up the masquerade maps`);
  }
  for (const p of plans) {
    const c = chainName(p.tag);
    const have = st.chains.get(c);
    const want = expectedRuleKeys(p);
    if (!have) problems.push(`nftables chain ${c} (${p.comment}) is missing`);
    else if (have.join('\n') !== want.join('\n')) {
      problems.push(`nftables chain ${c} (${p.comment}) has rules [${have.join('; ')}], expected [${want.join('; ')}]`);
    }
    for (const x of p.ips) {
      const e = st.elements.find((el) => el.map === MAPS[x.family] && el.ip === x.ip);
      if (!e) problems.push(`nftables map ${MAPS[x.family]} has no element for ${x.ip} (${p.comment})`);
      else if (e.target !== c) problems.push(`nftables map ${MAPS[x.family]} sends ${x.ip} to ${e.target}, expected ${c}`);
    }
  }
  return problems;
}

// ---- talking to nft ----

export interface NftIO {
  nft: string;
  netns?: string;
}

export async function listTable(io: NftIO): Promise<NftState> {
  const r = await run(io.nft, ['-j', 'list', 'table', 'inet', TABLE], { netns: io.netns, allowFailure: true });
  if (r.exitCode !== 0) {
    if (/No such file or directory|does not exist/i.test(r.stderr)) return parseTable('');
    throw new CniError(ErrCode.KernelOperation, `nft list table inet ${TABLE}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  }
  return parseTable(r.stdout);
}

export async function apply(io: NftIO, script: string): Promise<{ ok: boolean; stderr: string }> {
  const r = await run(io.nft, ['-f', '-'], { input: script, netns: io.netns, allowFailure: true });
  return { ok: r.exitCode === 0, stderr: r.stderr.trim() || `exit ${r.exitCode}` };
}

export async function setup(io: NftIO, plans: AttachmentPlan[]): Promise<void> {
  let r = await apply(io, setupScript(plans));
  if (!r.ok && /File exists/i.test(r.stderr)) {
    // An element for one of our addresses points at another chain: a stale attachment whose DEL never
    // came (the address was since reused). Only then read the table and replace those elements.
    const st = await listTable(io);
    const stale = plans.flatMap((p) =>
      p.ips.flatMap((x) => st.elements.filter((e) => e.map === MAPS[x.family] && e.ip === x.ip && e.target !== chainName(p.tag))),
    );
    r = await apply(io, setupScript(plans, stale));
  }
  if (!r.ok) throw new CniError(ErrCode.KernelOperation, `ipMasq: nft setup failed: ${r.stderr}`);
}

export async function removeChains(io: NftIO, select: (chain: string) => boolean): Promise<void> {
  const st = await listTable(io);
  const chains = new Set([...st.chains.keys(), ...st.elements.map((e) => e.target)].filter((c) => c !== BASE_CHAIN && select(c)));
  const script = deleteScript(st, chains);
  if (!script) return;
  const r = await apply(io, script);
  if (!r.ok) throw new CniError(ErrCode.KernelOperation, `ipMasq: nft delete failed: ${r.stderr}`);
}
