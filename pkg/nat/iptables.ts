// iptables fallback, per family (iptables / ip6tables), table nat:
//   :TSCNI-<net8>-<att12>
//   -A TSCNI-<tag> -d <excluded> -m comment --comment "tscni net=.. id=.. if=.." -j RETURN
//   -A TSCNI-<tag> ! -d 224.0.0.0/4 -m comment --comment "..." -j MASQUERADE
//   -A POSTROUTING -s <ip>/32 -m comment --comment "..." -j TSCNI-<tag>
// Each call reads the nat table once (`iptables-save -t nat`) and writes once
// (`iptables-restore -w --noflush`): re-declaring a user chain in --noflush mode flushes it, so the
// chain is refilled idempotently, and the POSTROUTING jumps are diffed against what was read.
// Teardown finds the jumps by their target chain, so it needs no address.
import { run } from '../exec';
import { CniError, ErrCode } from '../cni/errors';
import { MULTICAST, type AttachmentPlan } from './model';
import type { Family } from '../ipnet';

export const CHAIN_PREFIX = 'TSCNI-';
export const chainName = (tag: string): string => `${CHAIN_PREFIX}${tag}`;
const HOST: Record<Family, number> = { 4: 32, 6: 128 };

export interface SavedRule {
  chain: string;
  /** the rule as saved, after `-A <chain> ` */
  spec: string;
}

export interface NatTable {
  chains: Set<string>;
  rules: SavedRule[];
}

export function parseSave(text: string): NatTable {
  const t: NatTable = { chains: new Set(), rules: [] };
  let inNat = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) inNat = line === '*nat';
    else if (!inNat) continue;
    else if (line.startsWith(':')) t.chains.add(line.slice(1).split(' ')[0]);
    else if (line.startsWith('-A ')) {
      const m = /^-A (\S+) (.*)$/.exec(line);
      if (m) t.rules.push({ chain: m[1], spec: m[2] });
    }
  }
  return t;
}

const opt = (spec: string, flag: string): string | undefined => new RegExp(`(?:^| )${flag} (\\S+)`).exec(spec)?.[1];
export const jumpTarget = (r: SavedRule): string | undefined => opt(r.spec, '-j');

/** `-d X RETURN` / `! -d X MASQUERADE`: what matters of a chain rule, for CHECK. */
export function ruleKey(spec: string): string {
  const d = /(?:^| )(! )?-d (\S+)/.exec(spec);
  return `${d ? `${d[1] ?? ''}-d ${d[2]} ` : ''}${opt(spec, '-j') ?? '?'}`;
}

export function expectedRuleKeys(p: AttachmentPlan, f: Family): string[] {
  return [...p.excluded.filter((x) => x.family === f).map((x) => `-d ${x.cidr} RETURN`), `! -d ${MULTICAST[f]} MASQUERADE`];
}

const jumpSpec = (ip: string, f: Family, p: AttachmentPlan): string => `-s ${ip}/${HOST[f]} -m comment --comment "${p.comment}" -j ${chainName(p.tag)}`;

/** The restore input that makes the table hold exactly these attachments' chains and jumps (for family f). */
export function setupRestore(t: NatTable, plans: AttachmentPlan[], f: Family): string {
  const l = ['*nat'];
  for (const p of plans) {
    const ips = p.ips.filter((x) => x.family === f).map((x) => `${x.ip}/${HOST[f]}`);
    if (!ips.length) continue;
    const c = chainName(p.tag);
    l.push(`:${c} - [0:0]`);
    for (const x of p.excluded.filter((e) => e.family === f)) l.push(`-A ${c} -d ${x.cidr} -m comment --comment "${p.comment}" -j RETURN`);
    l.push(`-A ${c} ! -d ${MULTICAST[f]} -m comment --comment "${p.comment}" -j MASQUERADE`);
    const present = new Set<string>();
    for (const r of t.rules) {
      if (r.chain !== 'POSTROUTING' || jumpTarget(r) !== c) continue;
      const s = opt(r.spec, '-s');
      if (s && ips.includes(s) && !present.has(s)) present.add(s);
      else l.push(`-D POSTROUTING ${r.spec}`); // stale address or duplicate
    }
    for (const x of p.ips.filter((y) => y.family === f)) {
      if (!present.has(`${x.ip}/${HOST[f]}`)) l.push(`-A POSTROUTING ${jumpSpec(x.ip, f, p)}`);
    }
  }
  l.push('COMMIT');
  return l.length > 2 ? l.join('\n') + '\n' : '';
}

/** The restore input removing the chains selected and every rule jumping to them; '' when none exist. */
export function deleteRestore(t: NatTable, select: (chain: string) => boolean): string {
  const l = ['*nat'];
  for (const r of t.rules) {
    const j = jumpTarget(r);
    if (j && j.startsWith(CHAIN_PREFIX) && select(j) && !(r.chain.startsWith(CHAIN_PREFIX) && select(r.chain))) l.push(`-D ${r.chain} ${r.spec}`);
  }
  for (const c of t.chains) if (c.startsWith(CHAIN_PREFIX) && select(c)) l.push(`-F ${c}`, `-X ${c}`);
  l.push('COMMIT');
  return l.length > 2 ? l.join('\n') + '\n' : '';
}

export function checkTable(t: NatTable, plans: AttachmentPlan[], f: Family): string[] {
  const problems: string[] = [];
  const tool = f === 4 ? 'iptables' : 'ip6tables';
  for (const p of plans) {
    const ips = p.ips.filter((x) => x.family === f);
    if (!ips.length) continue;
    const c = chainName(p.tag);
    if (!t.chains.has(c)) {
      problems.push(`${tool} nat chain ${c} (${p.comment}) is missing`);
    } else {
      const have = t.rules.filter((r) => r.chain === c).map((r) => ruleKey(r.spec));
      const want = expectedRuleKeys(p, f);
      if (have.join('\n') !== want.join('\n')) problems.push(`${tool} nat chain ${c} has rules [${have.join('; ')}], expected [${want.join('; ')}]`);
    }
    for (const x of ips) {
      const src = `${x.ip}/${HOST[f]}`;
      if (!t.rules.some((r) => r.chain === 'POSTROUTING' && jumpTarget(r) === c && opt(r.spec, '-s') === src)) {
        problems.push(`${tool} nat POSTROUTING has no jump from ${src} to ${c}`);
      }
    }
  }
  return problems;
}

// ---- talking to iptables-save / iptables-restore ----

export interface IptIO {
  save: string;
  restore: string;
  netns?: string;
}

export async function save(io: IptIO): Promise<NatTable> {
  const r = await run(io.save, ['-t', 'nat'], { netns: io.netns, allowFailure: true });
  if (r.exitCode !== 0) {
    // no nat table yet (iptables-nft) or the kernel lacks it: nothing of ours can be there
    if (/does not exist|No such file|Table does not exist/i.test(r.stderr)) return { chains: new Set(), rules: [] };
    throw new CniError(ErrCode.KernelOperation, `${io.save} -t nat: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  }
  return parseSave(r.stdout);
}

export async function restore(io: IptIO, input: string): Promise<void> {
  if (!input) return;
  const r = await run(io.restore, ['-w', '--noflush'], { input, netns: io.netns, allowFailure: true });
  if (r.exitCode !== 0) throw new CniError(ErrCode.KernelOperation, `ipMasq: ${io.restore} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
}
