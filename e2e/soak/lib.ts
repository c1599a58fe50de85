// Shared by the soak files (`make soak`): counting what a node holds, reading the IPAM store as the reference
// would, a seeded random source, and the report each file writes to build/soak/.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';
import { parseIPFileName, parseOwner } from '../../ipam/host-local/disk';
import { CLEAN_PATH, REPO_ROOT, cniCommand, cniResult, type CniOptions, type CniResult, type Netns } from '../lib/world';

/** How many trials, cycles and calls: SOAK_SCALE=0.1 for a quick look, 1 (the default) for the release check. */
export function scaled(n: number): number {
  const s = Number(process.env.SOAK_SCALE ?? '1');
  return Math.max(1, Math.round(n * (Number.isFinite(s) && s > 0 ? s : 1)));
}

/** mulberry32: a small seeded PRNG, so a failing soak run can be replayed with SOAK_SEED. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function soakSeed(): number {
  return Number(process.env.SOAK_SEED ?? Date.now() % 1_000_000);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
}

/** A call killed with SIGKILL after `afterMs`, as a runtime's kill -9 would; the answer when it ended first. */
export async function killedCall(node: Netns, o: CniOptions, afterMs: number): Promise<CniResult | 'killed'> {
  const c = cniCommand(node, o);
  try {
    return cniResult(
      await run(c.file, c.args, {
        input: c.input,
        allowFailure: true,
        timeout: Math.max(1, Math.round(afterMs)),
        killSignal: 'SIGKILL',
        env: { PATH: CLEAN_PATH },
      }),
    );
  } catch (e) {
    if (/timed out/.test((e as Error).message)) return 'killed';
    throw e;
  }
}

/** A call's wall time and answer. */
export async function timedCall(call: () => Promise<CniResult>): Promise<{ ms: number; r: CniResult }> {
  const t0 = process.hrtime.bigint();
  const r = await call();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, r };
}

export interface NodeState {
  /** veth links other than the node's underlay (`uplink`, `to-*`) */
  podVeths: string[];
  links: number;
  routes: number;
  nftRules: number;
  /** elements of every nftables set: per-pod masquerade and macspoofchk entries */
  nftElements: number;
  /** reservation files (one per allocated address) */
  reservations: number;
  /** every file under the dataDir, index included */
  storeFiles: number;
  indexFiles: number;
}

interface NftItem {
  rule?: unknown;
  set?: { elem?: unknown[] };
}

export async function nodeState(node: Netns, dataDir: string): Promise<NodeState> {
  const links = (await node.ipJson<Array<{ ifname: string; link_type?: string; linkinfo?: { info_kind?: string } }>>(['-d', 'link', 'show'])) ?? [];
  const veths = links.filter((l) => l.linkinfo?.info_kind === 'veth').map((l) => l.ifname);
  const routes = [
    ...(await node.ipJson<unknown[]>(['-4', 'route', 'show', 'table', 'all'])),
    ...(await node.ipJson<unknown[]>(['-6', 'route', 'show', 'table', 'all'])),
  ];
  const nft = await node.exec(['nft', '-j', 'list', 'ruleset'], { env: { PATH: CLEAN_PATH }, allowFailure: true });
  const items: NftItem[] = nft.exitCode === 0 && nft.stdout.trim() ? (JSON.parse(nft.stdout).nftables as NftItem[]) : [];
  const files = allFiles(dataDir);
  return {
    podVeths: veths.filter((n) => n !== 'uplink' && !n.startsWith('to-')),
    links: links.length,
    routes: routes.length,
    nftRules: items.filter((i) => i.rule).length,
    nftElements: items.reduce((n, i) => n + (i.set?.elem?.length ?? 0), 0),
    reservations: files.filter((f) => parseIPFileName(path.basename(f))).length,
    storeFiles: files.length,
    indexFiles: files.filter((f) => /\/\.tscni\.[^/]+\.index\//.test(f)).length,
  };
}

function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/**
 * What is wrong with a store as the reference would read it: a reservation file that does not hold
 * "<id>\r\n<ifname>", a last_reserved_ip that is not an address, and what a call leaves only while it runs
 * (a lock, its owner record, a half-written index).
 */
export function storeProblems(dataDir: string, net: string): string[] {
  const problems: string[] = [];
  const netDir = path.join(dataDir, net);
  for (const f of fs.existsSync(netDir) ? fs.readdirSync(netDir) : []) {
    const p = path.join(netDir, f);
    if (parseIPFileName(f)) {
      const o = parseOwner(fs.readFileSync(p, 'utf8'));
      if (!o || !o.id || !o.ifname) problems.push(`${f}: not "<id>\\r\\n<ifname>": ${JSON.stringify(fs.readFileSync(p, 'utf8'))}`);
    } else if (f.startsWith('last_reserved_ip.')) {
      if (!parseIPFileName(fs.readFileSync(p, 'utf8').trim())) problems.push(`${f}: not an address`);
    } else if (f !== 'lock') {
      problems.push(`${f}: unexpected in the network directory`);
    }
  }
  for (const f of fs.existsSync(dataDir) ? fs.readdirSync(dataDir) : []) {
    if (/\.(lock|owner|break|new|old)$/.test(f) || f.includes('.owner.') || f.startsWith('.tscni-probe-')) problems.push(`${f}: left behind in ${dataDir}`);
  }
  return problems;
}

/** Write a soak file's figures to build/soak/<name>.json and say them on the test log. */
export function report(name: string, figures: Record<string, unknown>): void {
  const dir = path.join(REPO_ROOT, 'build', 'soak');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(figures, null, 2) + '\n');
  console.log(`soak ${name}: ${JSON.stringify(figures)}`);
}

/** A plugin's config from a shipped example conflist (conf/), as its first plugin with the list's name and version. */
export function exampleConf(file: string): Record<string, any> {
  const list = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'conf', file), 'utf8'));
  return { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
}
