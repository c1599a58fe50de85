// Mutated configs and environments, 1000 calls per plugin, from the shipped examples: keys deleted, values of the
// wrong type, odd paths (procfs, sysfs, a file in the path, an immutable directory, relative, a FIFO, /dev/zero),
// odd CNI_* variables, missing ones, malformed stdin. Every call must answer per spec within its budget (exit 0
// with a result, or exit 1 with an error object carrying an integer code), and every ADD that succeeded must be
// undone by a DEL of the same config. Calls run inside a node namespace; every path given is either in this
// world's temp dirs or one the kernel refuses to write, and CNI_NETNS never names a namespace outside the world.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';
import { defaultBinDir, useWorld, type CniOptions, type CniResult, type Netns } from '../lib/world';
import { exampleConf, nodeState, random, report, scaled, soakSeed, timedCall } from './lib';

const CALLS = scaled(1000);
/** the call budget (pkg/cni/budget.ts) and a little for process start */
const BUDGET_MS = 60_000;
const ALL = ['bridge', 'ptp', 'host-gw', 'vxlan', 'ipip', 'host-local'] as const;
/** SOAK_FUZZ=bridge,ptp to fuzz some plugins only (a replay with SOAK_SEED) */
const PLUGINS = process.env.SOAK_FUZZ ? ALL.filter((p) => process.env.SOAK_FUZZ!.split(',').includes(p)) : ALL;
const VERBS = ['ADD', 'ADD', 'ADD', 'ADD', 'DEL', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];
const ODD_VERBS = ['', 'add', 'BOGUS', 'ADD ', 'DEL\n'];
const VALUES: unknown[] = [
  null,
  0,
  -1,
  1,
  4095,
  65536,
  1e21,
  0.5,
  '',
  'x',
  '0.1.0',
  'eth0',
  'a'.repeat(300),
  '10.0.0.0/33',
  '10.0.0.1',
  'fd00::/129',
  '::',
  '10.22.0.0/16',
  true,
  false,
  [],
  {},
  [[]],
  [{}],
  { subnet: '10.9.0.0/24' },
  'é\u0000x',
  '../x',
];
const VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0', '2.0.0', '', 'x', 1];
const GARBAGE = [
  '',
  '{',
  'null',
  '[]',
  '"x"',
  '{"cniVersion":"1.0.0"}',
  '{"name":"n","type":"bridge"}',
  '\u0000\u0001',
  '{"cniVersion":"1.0.0","name":"n","type":"x","ipam":[]}',
];
const PATH_KEYS = new Set(['dataDir', 'resolvConf', 'peersFile', 'file']);

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
/** a fresh copy of a pool value: a shared [] or {} mutated later would end up inside itself */
const value = (r: Rand): unknown => structuredClone(pick(r, VALUES));

interface Paths {
  /** why the immutable directory is not among them (chattr +i refused), else undefined */
  noImmutable?: string;
  ok: string;
  all: string[];
}

/** Odd paths to put under a path key: every one is in the world's temp dir or refused by the kernel. */
async function oddPaths(tmp: string): Promise<Paths> {
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, 'nameserver 10.0.0.10\n');
  const fifo = path.join(tmp, 'fifo');
  await run('mkfifo', [fifo]);
  const immutable = path.join(tmp, 'immutable');
  fs.mkdirSync(immutable);
  // an immutable directory stands in for a read-only one (a mount would need a mount namespace per call)
  const chattr = await run('chattr', ['+i', immutable], { allowFailure: true });
  const ok = path.join(tmp, 'ok');
  return {
    ok,
    noImmutable: chattr.exitCode === 0 ? undefined : `chattr +i: ${chattr.stderr.trim() || `exit ${chattr.exitCode}`}`,
    all: [
      '/proc/tscni-fuzz',
      '/proc/sys/net',
      '/sys/tscni-fuzz',
      '/sys/class/net',
      file,
      path.join(file, 'sub'),
      ...(chattr.exitCode === 0 ? [path.join(immutable, 'data')] : []),
      'relative/dir',
      '0.1.0',
      fifo,
      '/dev/zero',
      '/dev/null',
      ok,
      path.join(tmp, 'deep', 'a', 'b'),
    ],
  };
}

/** Every key path of a JSON value: ['ipam'], ['ipam', 'ranges', 0, 0, 'subnet'], ... */
function keyPaths(v: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  if (v === null || typeof v !== 'object') return [];
  const entries: Array<[string | number, unknown]> = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  return entries.flatMap(([k, x]) => [[...prefix, k], ...keyPaths(x, [...prefix, k])]);
}

function parentOf(root: any, p: Array<string | number>): any {
  return p.slice(0, -1).reduce((o, k) => (o === null || typeof o !== 'object' ? undefined : o[k]), root);
}

/** 1 to 3 mutations of a config: delete a key, replace a value, add an unknown key, an odd path, an odd version. */
function mutate(r: Rand, base: Record<string, unknown>, paths: Paths): Record<string, unknown> | string {
  if (r() < 0.05) return pick(r, GARBAGE);
  const c = JSON.parse(JSON.stringify(base));
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const all = keyPaths(c);
    const p = pick(r, all);
    const parent = p && parentOf(c, p);
    const key = p?.[p.length - 1];
    const op = r();
    if (!parent || key === undefined) continue;
    if (op < 0.25) {
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
    } else if (op < 0.6) parent[key] = value(r);
    else if (op < 0.7) {
      if (typeof parent === 'object' && !Array.isArray(parent)) parent[`unknown${i}`] = value(r);
    } else if (op < 0.9) {
      const pathKeys = all.filter((x) => PATH_KEYS.has(String(x[x.length - 1])));
      const target = pathKeys.length && r() < 0.7 ? pick(r, pathKeys) : (['ipam', 'dataDir'] as Array<string | number>);
      const tp = parentOf(c, target);
      if (tp && typeof tp === 'object') tp[target[target.length - 1]] = pick(r, paths.all);
      else if (r() < 0.5) c.log = { file: pick(r, paths.all) };
    } else c.cniVersion = pick(r, VERSIONS);
  }
  // a missing or empty dataDir means the machine's own /var/lib/cni/networks: never that
  if (c.ipam && typeof c.ipam === 'object' && !Array.isArray(c.ipam) && (c.ipam.dataDir === undefined || c.ipam.dataDir === '' || c.ipam.dataDir === null))
    c.ipam.dataDir = paths.ok;
  return c;
}

function mutateEnv(r: Rand, o: CniOptions, pod: Netns, binDir: string): { o: CniOptions; oddEnv: boolean } {
  const odd = r() < 0.3;
  if (!odd) return { o, oddEnv: false };
  const out: CniOptions = { ...o, env: { ...(o.env ?? {}) }, omitEnv: [] };
  switch (Math.floor(r() * 7)) {
    case 0:
      out.command = pick(r, ODD_VERBS);
      break;
    case 1:
      out.omitEnv = [pick(r, ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH', 'PATH'])];
      break;
    case 2:
      out.netns = pick(r, ['', '/var/run/netns/tscni-fuzz-none', '/proc/self/ns/net', '/etc/hostname', '/dev/null', 'relative', `${pod.path}/x`]);
      break;
    case 3:
      out.ifName = pick(r, ['', 'lo', 'x'.repeat(16), 'a/b', 'eth 0', '.', 'eth1', '-']);
      break;
    case 4:
      out.containerId = pick(r, ['', 'a b', 'x'.repeat(300), '../../x', '-x', 'é']);
      break;
    case 5:
      out.cniPath = pick(r, ['', '/nonexistent', `${binDir}:/usr/lib/cni`, '/usr/lib/cni', '/proc']);
      break;
    default:
      out.cniArgs = pick(r, ['IgnoreUnknown=1;K8S_POD_NAME=x', 'IP=10.22.0.50', 'IP=x', 'garbage', 'a=b=c', ';;', 'MAC=zz']);
  }
  return { o: out, oddEnv: true };
}

/** Is this answer what the spec allows? '' when it is, else what is wrong. */
function offSpec(o: CniOptions, r: CniResult): string {
  const verb = String(o.command);
  // no CNI_COMMAND: the about text on stderr and exit 0, as the reference skel does
  if (o.omitEnv?.includes('CNI_COMMAND'))
    return r.exitCode === 0 && r.stdout.trim() === '' ? '' : `no CNI_COMMAND: exit ${r.exitCode} ${r.stdout.slice(0, 200)}`;
  if (r.exitCode === 0) {
    if (verb === 'ADD')
      return r.json && typeof r.json === 'object' && typeof r.json.cniVersion === 'string' ? '' : `ADD exit 0 without a result: ${r.stdout.slice(0, 200)}`;
    if (verb === 'VERSION') return Array.isArray(r.json?.supportedVersions) ? '' : `VERSION without supportedVersions: ${r.stdout.slice(0, 200)}`;
    return r.stdout.trim() === '' ? '' : `${verb} exit 0 with output: ${r.stdout.slice(0, 200)}`;
  }
  const e = r.json;
  if (!e || typeof e !== 'object')
    return `exit ${r.exitCode} without an error object on stdout: ${JSON.stringify(r.stdout.slice(0, 200))} ${r.stderr.slice(0, 200)}`;
  if (!Number.isInteger(e.code) || typeof e.msg !== 'string') return `error object without an integer code and a msg: ${r.stdout.slice(0, 200)}`;
  return '';
}

describe.each(PLUGINS)('fuzz %s', (plugin) => {
  const world = useWorld();
  const seed = soakSeed() + ALL.indexOf(plugin);
  const r = random(seed);
  const binDir = defaultBinDir();
  let node: Netns;
  let base: Record<string, unknown>;
  let paths: Paths;

  beforeAll(async () => {
    node = await world.node('node');
    await world.outside(node);
    const tmp = world.tmpDir('fuzz');
    paths = await oddPaths(tmp);
    world.onCleanup(() => run('chattr', ['-i', path.join(tmp, 'immutable')], { allowFailure: true }));
    const dataDir = path.join(tmp, 'ipam');
    const peer = await world.node('peer');
    const l = await world.link(node, peer, { subnet: '192.168.77.0/24' });
    const peersFile = path.join(tmp, 'peers.json');
    fs.writeFileSync(peersFile, JSON.stringify([{ nodeIP: l.bIp, podCIDR: '10.244.2.0/24' }]));
    const fabric = { nodeIP: l.aIp, peersFile };
    const examples: Record<string, Record<string, any>> = {
      bridge: exampleConf('10-tscni-bridge.conflist'),
      ptp: exampleConf('30-tscni-ptp.conflist'),
      'host-gw': { ...exampleConf('40-tscni-host-gw.conflist'), ...fabric },
      vxlan: { ...exampleConf('50-tscni-vxlan.conflist'), ...fabric },
      ipip: { ...exampleConf('60-tscni-ipip.conflist'), ...fabric },
      'host-local': {
        cniVersion: '1.1.0',
        name: 'fuzz',
        type: 'host-local',
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.30.0.0/24' }]], resolvConf: path.join(tmp, 'a-file') },
      },
    };
    const ex = examples[plugin];
    base = { ...ex, ipam: { ...ex.ipam, dataDir } };
  }, 60_000);

  it(`${CALLS} mutated calls answer per spec within the budget; every ADD that succeeded is undone by its DEL`, async () => {
    const offs: string[] = [];
    const failedDels: string[] = [];
    const codes: Record<string, number> = {};
    const internal = new Map<string, number>();
    let adds = 0;
    let maxMs = 0;
    for (let i = 0; i < CALLS; i++) {
      const pod = await world.pod(`p${i}`);
      const config = mutate(r, base, paths);
      const verb = pick(r, VERBS);
      const { o, oddEnv } = mutateEnv(r, { command: verb, containerId: world.containerId(`f${i}`), netns: pod, config, plugin, binDir }, pod, binDir);
      if (process.env.SOAK_TRACE === String(i))
        console.log(`call ${i}: ${JSON.stringify({ o: { ...o, netns: o.netns === pod ? pod.path : o.netns }, config })}`);
      const t = await timedCall(() => world.cni(node, { ...o, timeout: BUDGET_MS + 10_000 }));
      maxMs = Math.max(maxMs, t.ms);
      const what = `call ${i} ${JSON.stringify({ env: { command: o.command, netns: o.netns === pod ? 'pod' : o.netns, ifName: o.ifName, containerId: o.containerId === undefined ? undefined : '…', cniPath: o.cniPath, cniArgs: o.cniArgs, omit: o.omitEnv }, config })}`;
      const wrong = offSpec(o, t.r);
      if (wrong) offs.push(`${what}: ${wrong}`);
      if (t.ms > BUDGET_MS) offs.push(`${what}: took ${Math.round(t.ms)} ms`);
      const code = t.r.exitCode === 0 ? 'ok' : String(t.r.json?.code);
      codes[code] = (codes[code] ?? 0) + 1;
      if (t.r.json?.code === 999) internal.set(String(t.r.json.msg).slice(0, 120), (internal.get(String(t.r.json.msg).slice(0, 120)) ?? 0) + 1);
      if (o.command === 'ADD' && t.r.exitCode === 0 && !o.omitEnv?.includes('CNI_COMMAND')) {
        adds++;
        const del = await world.cni(node, { ...o, command: 'DEL', timeout: BUDGET_MS + 10_000 });
        if (del.exitCode !== 0) failedDels.push(`${what}: DEL after a successful ADD: ${del.stdout.trim()}${oddEnv ? ' (odd env)' : ''}`);
      }
      await run('ip', ['netns', 'del', pod.name]);
    }
    const state = await nodeState(node, path.join(path.dirname(paths.ok), 'ipam'));
    report(`fuzz-${plugin}`, {
      seed,
      calls: CALLS,
      addsThatSucceeded: adds,
      answers: codes,
      offSpec: offs.length,
      failedDels: failedDels.length,
      maxCallMs: Math.round(maxMs),
      internalErrors: Object.fromEntries(internal),
      leftOnTheNode: { podVeths: state.podVeths, reservations: state.reservations },
      ...(paths.noImmutable ? { notTried: `an immutable directory (${paths.noImmutable})` } : {}),
    });
    expect(offs.slice(0, 10)).toEqual([]);
    expect(failedDels.slice(0, 10)).toEqual([]);
    expect({ podVeths: state.podVeths, reservations: state.reservations }).toEqual({ podVeths: [], reservations: 0 });
  }, 7_200_000);
});
