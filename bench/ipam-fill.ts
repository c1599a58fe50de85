// host-local ADD/DEL latency in an empty and in a 99%-full /16, ours against the reference Go host-local.
// Run: npx esbuild bench/ipam-fill.ts --bundle --platform=node --outfile=/tmp/hl/bench.js && node /tmp/hl/bench.js
// Env: TSCNI_BUNDLE (default: built here into /tmp/hl/tscni.js), REF_HOST_LOCAL (default /usr/lib/cni/host-local),
// ROUNDS (default 20).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { run } from '../pkg/exec';

const ROUNDS = Number(process.env.ROUNDS ?? 20);
const REF = process.env.REF_HOST_LOCAL ?? '/usr/lib/cni/host-local';
const NET = 'bench';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** 10.128.0.0/16 minus network, gateway .0.1 and broadcast: 65,533 usable. Fill 99% with free holes spread out. */
function fill(dataDir: string, fraction: number): number {
  const dir = path.join(dataDir, NET);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  let n = 0;
  for (let i = 2; i < 65535; i++) {
    // every 100th address stays free, so allocation has to find holes among taken runs
    if (fraction === 0 || i % 100 === 0) continue;
    const ip = `10.128.${i >> 8}.${i & 255}`;
    fs.writeFileSync(path.join(dir, ip), `fill-${i}\r\neth0`, { mode: 0o600 });
    n++;
  }
  // the cursor sits right after a long taken run
  if (fraction) fs.writeFileSync(path.join(dir, 'last_reserved_ip.0'), '10.128.128.1', { mode: 0o600 });
  return n;
}

async function call(cmd: string[], command: string, id: string, conf: string): Promise<number> {
  const env = { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
  const t0 = process.hrtime.bigint();
  const r = await run(cmd[0], cmd.slice(1), { input: conf, env, allowFailure: true });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} ${command} ${id}: ${r.stdout}${r.stderr}`);
  return ms;
}

type Pool = { name: string; dataDir: string; conf: string; files: number; fillMs: number };

async function spawnRounds(cmd: string[], pools: Pool[], tag: string): Promise<Record<string, { add: number; del: number }>> {
  const t: Record<string, { add: number[]; del: number[] }> = {};
  for (const p of pools) t[p.name] = { add: [], del: [] };
  // interleave the pools round by round, so machine noise hits both alike
  for (let i = 0; i < ROUNDS; i++) {
    for (const p of pools) {
      const id = `bench-${tag}-${i}`;
      t[p.name].add.push(await call(cmd, 'ADD', id, p.conf));
      t[p.name].del.push(await call(cmd, 'DEL', id, p.conf));
    }
  }
  const out: Record<string, { add: number; del: number }> = {};
  for (const p of pools) out[p.name] = { add: median(t[p.name].add), del: median(t[p.name].del) };
  return out;
}

/** The plugin called in this process: what the store costs, without process start-up. */
async function inProcessRounds(pools: Pool[], rounds: number): Promise<Record<string, { add: number; del: number }>> {
  const { plugin } = require('../ipam/host-local/plugin') as typeof import('../ipam/host-local/plugin');
  const { parseNetConf } = require('../pkg/cni/skel') as typeof import('../pkg/cni/skel');
  const t: Record<string, { add: number[]; del: number[] }> = {};
  for (const p of pools) t[p.name] = { add: [], del: [] };
  for (let i = 0; i < rounds; i++) {
    for (const p of pools) {
      const a = {
        command: 'ADD' as const,
        containerId: `inproc-${i}`,
        netns: '/x',
        ifName: 'eth0',
        args: {},
        path: [],
        stdin: Buffer.from(p.conf),
        conf: parseNetConf(Buffer.from(p.conf)),
      };
      let t0 = process.hrtime.bigint();
      await plugin.add(a);
      t[p.name].add.push(Number(process.hrtime.bigint() - t0) / 1e6);
      t0 = process.hrtime.bigint();
      await plugin.del(a);
      t[p.name].del.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  const out: Record<string, { add: number; del: number }> = {};
  for (const p of pools) out[p.name] = { add: median(t[p.name].add), del: median(t[p.name].del) };
  return out;
}

async function main(): Promise<void> {
  let bundle = process.env.TSCNI_BUNDLE;
  if (!bundle) {
    bundle = '/tmp/hl/tscni.js';
    fs.mkdirSync(path.dirname(bundle), { recursive: true });
    await run('npx', ['esbuild', 'plugins/main.ts', '--bundle', '--platform=node', `--outfile=${bundle}`]);
  }
  const ours = [process.execPath, bundle, 'host-local'];
  const pools: Pool[] = [];
  try {
    for (const [name, fraction] of [
      ['empty', 0],
      ['99%-full', 0.99],
    ] as const) {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-bench-'));
      const t0 = Date.now();
      const files = fill(dataDir, fraction);
      const conf = JSON.stringify({
        cniVersion: '1.0.0',
        name: NET,
        type: 'host-local',
        ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.128.0.0/16' }]] },
      });
      pools.push({ name, dataDir, conf, files, fillMs: Date.now() - t0 });
    }
    const notes: string[] = [];
    // first call after files appeared behind the index's back: a full rebuild
    for (const p of pools)
      notes.push(
        `${p.name}: ${p.files} files (written in ${p.fillMs} ms); ours, first call (index rebuild): ${(await call(ours, 'DEL', 'warmup', p.conf)).toFixed(1)} ms`,
      );
    const o = await spawnRounds(ours, pools, 'ours');
    const inproc = await inProcessRounds(pools, 50);
    const r = await spawnRounds([REF], pools, 'ref');
    for (const p of pools)
      notes.push(`${p.name}: ours, first call after the reference wrote (rebuild): ${(await call(ours, 'DEL', 'warmup', p.conf)).toFixed(1)} ms`);

    const line = (k: string, v: { add: number; del: number }) => `${k.padEnd(34)} ${v.add.toFixed(1).padStart(7)}   ${v.del.toFixed(1).padStart(7)}`;
    console.log(`host-local in a /16, median ms; ${ROUNDS} ADD+DEL rounds per pool as fresh processes (clean env), 50 in-process`);
    console.log(`${'case'.padEnd(34)}     ADD       DEL`);
    for (const p of pools) console.log(line(`ours ${p.name} (process)`, o[p.name]));
    for (const p of pools) console.log(line(`ours ${p.name} (in-process)`, inproc[p.name]));
    for (const p of pools) console.log(line(`reference ${p.name} (process)`, r[p.name]));
    const d = (x: Record<string, { add: number; del: number }>, k: 'add' | 'del') => {
      const v = x['99%-full'][k] - x.empty[k];
      return `${v >= 0 ? '+' : ''}${v.toFixed(1)}`;
    };
    console.log(
      `ours, 99%-full minus empty: process ADD ${d(o, 'add')} DEL ${d(o, 'del')}; in-process ADD ${d(inproc, 'add')} DEL ${d(inproc, 'del')} ms (target: within +5 ms)`,
    );
    console.log(`reference, 99%-full minus empty: ADD ${d(r, 'add')} DEL ${d(r, 'del')} ms`);
    for (const n of notes) console.log(n);
  } finally {
    for (const p of pools) fs.rmSync(p.dataDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
