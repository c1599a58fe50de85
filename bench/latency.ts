// ADD/DEL latency of tscni against the reference Go plugins: same config, same run, calls interleaved so
// machine noise hits both alike; plus VERSION start-up and the spawns per verb of ours. With --floor, the
// bridge rows also time bench/floor.ts (a Node executable that only drives iproute2): the least any plugin
// built like ours can take on this machine, to tell our own cost from the platform's.
//
// Each implementation and plugin gets its own throwaway node namespace (uplink veth with a default route) and
// a fresh pod namespace per pod; nothing touches the root namespace. A call is timed by a small helper
// process started with `ip netns exec <node>` (so the plugin sees the node's /sys) that spawns once to warm
// up and then times the plugin alone: neither `ip netns exec` nor Node's first spawn is in the figures.
// DEL gets the ADD result as prevResult, as libcni (containerd, podman, cnitool) sends it.
//
// usage (root): node latency.js --ours <bin dir> --ref <bin dir> [--floor <dir>] [--pods 20] [--warmup 3] [--plugins bridge,ptp]
// env BENCH_PREFIX: namespace name prefix (bench/run.sh passes one so its trap can clean up)
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { run } from '../pkg/exec';
import { makeNode } from './node';

const SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Call {
  bin: string;
  env: Record<string, string>;
  input: string;
  /** measure CPU instead of wall time: run the plugin under bash, whose `times` reports its children's */
  cpu?: boolean;
}

interface CallResult {
  ms: number;
  /** user+sys of the plugin process (with --cpu) */
  cpuMs?: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** bash's `times` second line: the children's user and system time, e.g. `0m0.041s 0m0.012s` */
function childrenCpuMs(timesOut: string): number {
  const lines = timesOut.trim().split('\n');
  const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(lines[lines.length - 1]);
  if (!m) throw new Error(`cannot read bash times: ${timesOut}`);
  return (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000;
}

/** --call mode: inside the node namespace, warm up the spawn path, then time one plugin call. */
async function callMode(spec: string): Promise<void> {
  const c = JSON.parse(spec) as Call;
  if (c.cpu) {
    // the plugin's stderr is dropped: the last line there is the report of `times`
    const r = await run('bash', ['-c', '"$0" 2>/dev/null; rc=$?; times >&2; exit $rc', c.bin], { env: c.env, input: c.input, allowFailure: true });
    process.stdout.write(JSON.stringify({ ms: NaN, cpuMs: childrenCpuMs(r.stderr), exitCode: r.exitCode, stdout: r.stdout, stderr: '' } satisfies CallResult));
    return;
  }
  await run('true', [], { env: {}, allowFailure: true });
  await run('true', [], { env: {}, allowFailure: true });
  const t0 = process.hrtime.bigint();
  const r = await run(c.bin, [], { env: c.env, input: c.input, allowFailure: true });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(JSON.stringify({ ms, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr } satisfies CallResult));
}

/** --burst mode: inside the node namespace, start every call at once; the wall time until the last one ends. */
async function burstMode(spec: string): Promise<void> {
  const calls = JSON.parse(spec) as Call[];
  await run('true', [], { env: {}, allowFailure: true });
  const t0 = process.hrtime.bigint();
  const rs = await Promise.all(calls.map((c) => run(c.bin, [], { env: c.env, input: c.input, allowFailure: true })));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const failed = rs.filter((r) => r.exitCode !== 0);
  process.stdout.write(JSON.stringify({ ms, failed: failed.length, first: failed[0]?.stdout ?? '' }));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) throw new Error(`missing --${name}`);
  return v;
}

const ip = (args: string[]) => run('ip', args);

interface Impl {
  name: 'tscni' | 'reference' | 'floor';
  dir: string;
}

interface Node {
  impl: Impl;
  plugin: string;
  ns: string;
  dataDir: string;
  conf: string;
}

const SUBNET: Record<string, string> = { bridge: '10.44.0.0/16', ptp: '10.45.0.0/16' };

function pluginConf(plugin: string, dataDir: string): string {
  const ipam = { type: 'host-local', dataDir, ranges: [[{ subnet: SUBNET[plugin] }]] };
  const c: Record<string, unknown> =
    plugin === 'bridge'
      ? { cniVersion: '1.0.0', name: 'bench', type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, ipam }
      : { cniVersion: '1.0.0', name: 'bench', type: 'ptp', ipMasq: true, ipam };
  return JSON.stringify(c);
}

async function cleanup(prefix: string, dirs: string[]): Promise<void> {
  const r = await run('ip', ['netns', 'list'], { allowFailure: true });
  for (const line of r.stdout.split('\n')) {
    const name = line.split(' ')[0];
    if (name.startsWith(prefix)) await run('ip', ['netns', 'del', name], { allowFailure: true });
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}

/** The DEL config as libcni sends it: the network config plus the cached ADD result as prevResult. */
function withPrev(conf: string, addOut: string): string {
  return JSON.stringify({ ...JSON.parse(conf), prevResult: JSON.parse(addOut) });
}

function callSpec(node: Node, verb: string, id: string, podNs: string, extraEnv: Record<string, string>, input: string, cpu: boolean): Call {
  return {
    cpu,
    bin: path.join(node.impl.dir, node.plugin),
    env: {
      CNI_COMMAND: verb,
      CNI_CONTAINERID: id,
      CNI_NETNS: `/var/run/netns/${podNs}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: node.impl.dir,
      PATH: SBIN_PATH,
      ...extraEnv,
    },
    input,
  };
}

async function call(
  node: Node,
  verb: string,
  id: string,
  podNs: string,
  extraEnv: Record<string, string> = {},
  input = node.conf,
  cpu = false,
): Promise<CallResult> {
  const spec = callSpec(node, verb, id, podNs, extraEnv, input, cpu);
  const r = await run('ip', ['netns', 'exec', node.ns, process.execPath, __filename, '--call', JSON.stringify(spec)], {
    env: { PATH: SBIN_PATH },
  });
  const res = JSON.parse(r.stdout) as CallResult;
  if (res.exitCode !== 0) {
    throw new Error(`${node.impl.name} ${node.plugin} ${verb} ${id}: exit ${res.exitCode}: ${res.stdout}${res.stderr}`);
  }
  return res;
}

/** All pods' calls of one verb at once inside the node; wall ms until the last ends. */
async function burst(node: Node, verb: string, pods: string[], inputs: string[]): Promise<number> {
  const specs = pods.map((pod, i) => callSpec(node, verb, `burst${i}`, pod, {}, inputs[i], false));
  const r = await run('ip', ['netns', 'exec', node.ns, process.execPath, __filename, '--burst', JSON.stringify(specs)], {
    env: { PATH: SBIN_PATH },
  });
  const res = JSON.parse(r.stdout) as { ms: number; failed: number; first: string };
  if (res.failed) throw new Error(`${node.impl.name} ${node.plugin} burst ${verb}: ${res.failed} failed, e.g. ${res.first}`);
  return res.ms;
}

/** Spawns of one traced call of ours, per program (nsenter counted by what it runs). */
function spawnsOf(stderr: string): { total: number; per: string } {
  const per = new Map<string, number>();
  let total = 0;
  for (const line of stderr.split('\n')) {
    const m = /^tscni-trace \S+ \S+ spawn (\S+)(.*)$/.exec(line);
    if (!m) continue;
    total++;
    let prog = path.basename(m[1]);
    if (prog === 'nsenter') prog = `nsenter ${path.basename(/ -- (\S+)/.exec(m[2])?.[1] ?? '?')}`;
    per.set(prog, (per.get(prog) ?? 0) + 1);
  }
  return { total, per: [...per].map(([k, v]) => `${k} ${v}`).join(', ') };
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

async function main(): Promise<void> {
  if (process.argv[2] === '--call') return callMode(process.argv[3]);
  if (process.argv[2] === '--burst') return burstMode(process.argv[3]);
  const ours: Impl = { name: 'tscni', dir: path.resolve(arg('ours')) };
  const ref: Impl = { name: 'reference', dir: path.resolve(arg('ref', '/usr/lib/cni')) };
  const floorDir = arg('floor', '');
  const floor: Impl | undefined = floorDir ? { name: 'floor', dir: path.resolve(floorDir) } : undefined;
  const pods = Number(arg('pods', '20'));
  const warmup = Number(arg('warmup', '3'));
  const plugins = arg('plugins', 'bridge,ptp').split(',');
  const cpuPods = Number(arg('cpu-pods', '10'));
  const burstPods = Number(arg('burst', '50'));
  const prefix = process.env.BENCH_PREFIX ?? `tscni-t-bench${process.pid}`;
  for (const im of [ours, ref]) {
    for (const p of [...plugins, 'host-local']) {
      if (!fs.existsSync(path.join(im.dir, p))) throw new Error(`${im.name}: no ${p} in ${im.dir}`);
    }
  }

  const dirs: string[] = [];
  const onSignal = () => void cleanup(prefix, dirs).finally(() => process.exit(130));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // ---- VERSION start-up, clean environment, interleaved
    const ver: Record<string, number[]> = { tscni: [], reference: [] };
    for (let i = 0; i < 33; i++) {
      for (const im of i % 2 ? [ours, ref] : [ref, ours]) {
        const t0 = process.hrtime.bigint();
        await run(path.join(im.dir, 'bridge'), [], { env: { CNI_COMMAND: 'VERSION' } });
        if (i >= 3) ver[im.name].push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }

    // ---- nodes: one per implementation and plugin
    const nodes: Node[] = [];
    for (const plugin of plugins) {
      // the floor program wires bridge pods only
      for (const im of plugin === 'bridge' && floor ? [ours, ref, floor] : [ours, ref]) {
        const ns = `${prefix}-${im.name[0]}-${plugin}`;
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-bench-'));
        dirs.push(dataDir);
        await makeNode(ns);
        nodes.push({ impl: im, plugin, ns, dataDir, conf: pluginConf(plugin, dataDir) });
      }
    }
    let podSeq = 0;
    const newPod = async (): Promise<string> => {
      const ns = `${prefix}-pod${podSeq++}`;
      await ip(['netns', 'add', ns]);
      return ns;
    };

    // ---- warm-up (not recorded): the bridge, tables and caches exist afterwards, as on a live node
    for (let w = 0; w < warmup; w++) {
      for (const n of nodes) {
        const pod = await newPod();
        const r = await call(n, 'ADD', `warm${w}`, pod);
        await call(n, 'DEL', `warm${w}`, pod, {}, withPrev(n.conf, r.stdout));
        await ip(['netns', 'del', pod]);
      }
    }

    // ---- N pods per node: all ADDs, then all DELs; ours and reference alternate who goes first
    const t: Record<string, { add: number[]; del: number[] }> = {};
    for (const n of nodes) t[`${n.plugin}/${n.impl.name}`] = { add: [], del: [] };
    const podOf = new Map<string, string>();
    const added = new Map<string, string>();
    for (const verb of ['ADD', 'DEL'] as const) {
      for (let i = 0; i < pods; i++) {
        for (const plugin of plugins) {
          const pair = nodes.filter((n) => n.plugin === plugin);
          for (const n of i % 2 ? pair : [...pair].reverse()) {
            const key = `${n.plugin}/${n.impl.name}/${i}`;
            if (verb === 'ADD') podOf.set(key, await newPod());
            const r = await call(n, verb, `pod${i}`, podOf.get(key)!, {}, verb === 'DEL' ? withPrev(n.conf, added.get(key)!) : n.conf);
            if (verb === 'ADD') added.set(key, r.stdout);
            t[`${n.plugin}/${n.impl.name}`][verb === 'ADD' ? 'add' : 'del'].push(r.ms);
            if (verb === 'DEL') await ip(['netns', 'del', podOf.get(key)!]);
          }
        }
      }
    }

    // ---- CPU per call (user+sys of the plugin process), a few more pods per node, and of VERSION
    const cpu: Record<string, { add: number[]; del: number[]; version: number[] }> = {};
    for (const n of nodes.filter((x) => x.impl !== floor)) {
      const c = (cpu[`${n.plugin}/${n.impl.name}`] = { add: [] as number[], del: [] as number[], version: [] as number[] });
      for (let i = 0; i < cpuPods; i++) {
        const pod = await newPod();
        const r = await call(n, 'ADD', `cpu${i}`, pod, {}, n.conf, true);
        c.add.push(r.cpuMs!);
        c.del.push((await call(n, 'DEL', `cpu${i}`, pod, {}, withPrev(n.conf, r.stdout), true)).cpuMs!);
        c.version.push((await call(n, 'VERSION', `cpu${i}`, pod, {}, n.conf, true)).cpuMs!);
        await ip(['netns', 'del', pod]);
      }
    }

    // ---- burst: as many bridge pods as a node starts at once after a reboot, all ADDs then all DELs at once
    const bursts: Record<string, { add: number; del: number }> = {};
    if (burstPods > 0) {
      for (const n of nodes.filter((x) => x.impl !== floor && x.plugin === plugins[0])) {
        const pods: string[] = [];
        for (let i = 0; i < burstPods; i++) pods.push(await newPod());
        const add = await burst(
          n,
          'ADD',
          pods,
          pods.map(() => n.conf),
        );
        const del = await burst(
          n,
          'DEL',
          pods,
          pods.map(() => n.conf),
        );
        bursts[n.impl.name] = { add, del };
        for (const p of pods) await ip(['netns', 'del', p]);
      }
    }

    // ---- one traced ADD and DEL of ours per plugin: spawns per verb
    const spawns: string[] = [];
    for (const n of nodes.filter((x) => x.impl === ours)) {
      const pod = await newPod();
      let addOut = '';
      for (const verb of ['ADD', 'DEL']) {
        const r = await call(n, verb, 'traced', pod, { TSCNI_TRACE: '1' }, verb === 'DEL' ? withPrev(n.conf, addOut) : n.conf);
        addOut = r.stdout;
        const s = spawnsOf(r.stderr);
        spawns.push(`  ${n.plugin.padEnd(7)} ${verb.padEnd(4)} ${String(s.total).padStart(2)} spawns: ${s.per || 'none'}`);
      }
      await ip(['netns', 'del', pod]);
    }

    // ---- report
    const verdict = (ratio: number, target: number) => (ratio <= target ? 'met' : 'MISSED');
    console.log(
      `ADD/DEL latency, median ms over ${pods} pods per node after ${warmup} warm-up pods; ` +
        `calls interleaved tscni/reference; host-local IPAM, ipMasq on, clean env; ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}`,
    );
    const vo = median(ver.tscni);
    const vr = median(ver.reference);
    console.log(
      `${'plugin'.padEnd(16)} ${'verb'.padEnd(4)} ${'tscni'.padStart(8)} ${'reference'.padStart(10)} ${'ratio'.padStart(7)}  target        ` +
        `${'work'.padStart(6)} ${'ref work'.padStart(8)} ${'ratio'.padStart(7)}  ${floor ? 'floor  floor/ref' : ''}`,
    );
    for (const plugin of plugins) {
      for (const verb of ['add', 'del'] as const) {
        const o = median(t[`${plugin}/tscni`][verb]);
        const r = median(t[`${plugin}/reference`][verb]);
        const f = t[`${plugin}/floor`] ? median(t[`${plugin}/floor`][verb]) : NaN;
        const target = verb === 'add' ? 1.5 : 1.0;
        const label = `${plugin}+host-local`;
        const floorCols = Number.isFinite(f) ? `${fmt(f).padStart(6)} ${(f / r).toFixed(2).padStart(8)}x` : '';
        // work: the verb's median minus the same binary's VERSION, what a call adds above starting the process
        const wo = o - vo;
        const wr = r - vr;
        console.log(
          `${label.padEnd(16)} ${verb.toUpperCase().padEnd(4)} ${fmt(o).padStart(8)} ${fmt(r).padStart(10)} ${(o / r).toFixed(2).padStart(6)}x  <=${target.toFixed(1)}x ${verdict(o / r, target).padEnd(6)} ` +
            `${fmt(wo).padStart(6)} ${fmt(wr).padStart(8)} ${(wo / wr).toFixed(2).padStart(6)}x  ${floorCols}`,
        );
      }
    }
    if (floor) {
      console.log(
        "floor: bench/floor.ts, a Node executable like ours that only runs the bridge pod's two `ip -batch` (ADD) or one " +
          '`ip link del` (DEL): no IPAM, no masquerade, no checks. Where floor/ref is above a target, no plugin that is a Node ' +
          'executable driving iproute2 can meet it on this machine.',
      );
    }
    console.log("work: a verb's median minus the same binary's VERSION median (the process start each call pays).");
    console.log(
      `${'VERSION start-up'.padEnd(16)} ${''.padEnd(4)} ${fmt(vo).padStart(8)} ${fmt(vr).padStart(10)} ${(vo / vr).toFixed(2).padStart(6)}x  (30 calls each, from a warm parent)`,
    );
    console.log(`CPU per call, user+sys of the plugin process, median ms over ${cpuPods} pods (bash's times); target: ADD <= own VERSION + 15 ms`);
    console.log(`${'plugin'.padEnd(16)} ${'verb'.padEnd(7)} ${'tscni'.padStart(8)} ${'reference'.padStart(10)}`);
    for (const plugin of plugins) {
      for (const verb of ['add', 'del', 'version'] as const) {
        const o = median(cpu[`${plugin}/tscni`][verb]);
        const r = median(cpu[`${plugin}/reference`][verb]);
        const v = median(cpu[`${plugin}/tscni`].version);
        const target = verb === 'add' ? `  <=${fmt(v + 15)} ${verdict(o, v + 15)}` : '';
        console.log(`${`${plugin}+host-local`.padEnd(16)} ${verb.toUpperCase().padEnd(7)} ${fmt(o).padStart(8)} ${fmt(r).padStart(10)}${target}`);
      }
    }
    if (burstPods > 0) {
      const [o, r] = [bursts.tscni, bursts.reference];
      console.log(
        `${burstPods} ${plugins[0]} pods at once, wall ms: ADD ${fmt(o.add)} vs ${fmt(r.add)} (${(o.add / r.add).toFixed(2)}x, target <=1.5x ${verdict(o.add / r.add, 1.5)}); DEL ${fmt(o.del)} vs ${fmt(r.del)} (${(o.del / r.del).toFixed(2)}x)`,
      );
    }
    console.log('tscni spawns per call (one traced call; the reference uses netlink in-process):');
    for (const s of spawns) console.log(s);
  } finally {
    await cleanup(prefix, dirs);
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${(e as Error)?.message ?? String(e)}`);
  process.exitCode = 1;
});
