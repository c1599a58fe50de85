// A throwaway world of network namespaces for real-kernel tests: nodes, pods, veth underlays, an "outside".
// Nothing here touches the root namespace: every link, address, route and sysctl is made inside a namespace
// this world created, and cleanup() deletes them all.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { run, type RunOptions, type RunResult } from '../../pkg/exec';
import { formatIP, networkOf, parseCIDR } from '../../pkg/ipnet';

export const NS_PREFIX = 'tscni-t-';
export const NETNS_DIR = '/var/run/netns';
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** PATH given to everything run with a clean environment: system tools only, on purpose no node. */
export const CLEAN_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
/** Where the reference Go plugins live (Debian's containernetworking-plugins). */
export const REFERENCE_BIN_DIR = '/usr/lib/cni';
/** Marker files that tie a world's namespaces to the live process that owns them (read by sweepStale). */
const OWNER_DIR = path.join(os.tmpdir(), 'tscni-t-owners');

export function defaultBinDir(): string {
  return process.env.TSCNI_BIN_DIR || path.join(REPO_ROOT, 'build', 'bin');
}

/** A network namespace this world made. */
export class Netns {
  readonly path: string;
  constructor(readonly name: string) {
    this.path = path.join(NETNS_DIR, name);
  }
  /** Run argv inside this namespace (`ip netns exec`, which also gives it this namespace's /sys). */
  exec(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.name, ...argv], opts);
  }
  /** `ip -n <ns> <args>` */
  ip(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run('ip', ['-n', this.name, ...args], opts);
  }
  /** Parsed `ip -json <args>` in this namespace. */
  ipJson<T = any>(args: readonly string[]): Promise<T> {
    return ipJson(this, args);
  }
  /** Read one sysctl inside the namespace, e.g. sysctl('net.ipv4.ip_forward') -> '0'. */
  async sysctl(key: string): Promise<string> {
    return (await this.exec(['sysctl', '-n', key])).stdout.trim();
  }
  toString(): string {
    return this.name;
  }
}

export interface NodeOptions {
  /** default false: a plugin that forgets to enable forwarding must fail here */
  forwarding?: boolean;
  /** rp_filter for all/default; when unset the kernel's inherited value stays */
  rpFilter?: 0 | 1 | 2;
}

export interface PodOptions {
  /** bring lo up (a runtime's loopback plugin would); default false: the namespace stays empty */
  lo?: boolean;
}

export interface LinkOptions {
  /** IPv4 subnet of the link, e.g. '192.168.50.0/24': a takes .1, b takes .2 (or aIp/bIp) */
  subnet?: string;
  aIp?: string;
  bIp?: string;
  /** IPv6 subnet, e.g. 'fd50::/64': a takes ::1, b takes ::2 */
  subnet6?: string;
  aIp6?: string;
  bIp6?: string;
  /** interface names; default 'to-<other name>' cut to 15 characters */
  aIf?: string;
  bIf?: string;
  mtu?: number;
}

export interface Link {
  a: Netns;
  b: Netns;
  aIf: string;
  bIf: string;
  /** addresses without prefix length, undefined when the family was not asked for */
  aIp?: string;
  bIp?: string;
  aIp6?: string;
  bIp6?: string;
}

export interface OutsideOptions {
  /** default '203.0.113.0/24' (TEST-NET-3): node gets .1, outside .2 */
  subnet?: string;
  subnet6?: string;
  name?: string;
  mtu?: number;
}

export interface Outside {
  ns: Netns;
  link: Link;
  /** the outside host's address, what a pod pings to leave the node */
  ip: string;
  ip6?: string;
  /** the node's address on that link: what masquerade should make the outside see */
  nodeIp: string;
  nodeIp6?: string;
}

export interface CniOptions {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS' | string;
  containerId?: string;
  /** default 'eth0' for ADD/DEL/CHECK */
  ifName?: string;
  /** a Netns or a path; '' for a DEL whose netns is gone */
  netns?: Netns | string;
  /** the config; an object is serialised, a string is passed as is (for malformed-input tests) */
  config: Record<string, unknown> | string;
  /** CNI_ARGS, as a string or as key/value pairs */
  cniArgs?: string | Record<string, string>;
  /** directory of the executables; default TSCNI_BIN_DIR or build/bin */
  binDir?: string;
  /** executable to run; default config.type */
  plugin?: string;
  /** append /usr/lib/cni to CNI_PATH (reference plugins, e.g. a portmap chain) */
  withReference?: boolean;
  /** CNI_PATH exactly, overriding binDir(+reference) */
  cniPath?: string;
  /** more environment for the plugin process (still no inherited env) */
  env?: Record<string, string>;
  /** leave a variable out of the environment entirely (e.g. test a missing CNI_CONTAINERID) */
  omitEnv?: string[];
  timeout?: number;
}

export interface CniResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON */
  json?: any;
}

function shortRand(): string {
  return crypto.randomBytes(3).toString('hex');
}

function nsName(ns: Netns | string): string {
  return typeof ns === 'string' ? ns : ns.name;
}

/** Parsed `ip -json` output inside a namespace (by name or Netns). */
export async function ipJson<T = any>(ns: Netns | string, args: readonly string[]): Promise<T> {
  const r = await run('ip', ['-n', nsName(ns), '-json', ...args]);
  const out = r.stdout.trim();
  return (out ? JSON.parse(out) : []) as T;
}

/** iputils `ping` (Debian iputils-ping), else busybox's (busybox-static), which takes the same flags we use. */
function pingCommand(): string[] {
  if (['/usr/bin/ping', '/bin/ping'].some((f) => fs.existsSync(f))) return ['ping'];
  return ['busybox', 'ping'];
}

/** One ICMP echo round (or `count`) from inside a namespace; true when any reply came back. */
export async function ping(from: Netns | string, ip: string, opts: { count?: number; timeoutSec?: number } = {}): Promise<boolean> {
  const count = opts.count ?? 1;
  const timeoutSec = opts.timeoutSec ?? 2;
  const r = await run(
    'ip',
    ['netns', 'exec', nsName(from), ...pingCommand(), '-n', '-q', '-c', String(count), '-W', String(timeoutSec), ...(count > 1 ? ['-i', '0.2'] : []), ip],
    { allowFailure: true, timeout: (timeoutSec * count + 5) * 1000, env: { PATH: CLEAN_PATH } },
  );
  return r.exitCode === 0;
}

// The TCP probe: a one-shot server that writes back the peer address it saw, and a client that retries
// until the server listens. Node is used (the test runner's own binary) so no extra package is needed.
const TCP_SERVER = `
const net = require('net');
const [port, secs] = [Number(process.argv[1]), Number(process.argv[2])];
const srv = net.createServer((s) => {
  // a connection the client gave up on (its connect timed out, it retries) may still arrive, then reset: the
  // server stays for the next one and closes only once an answer went out whole
  s.on('error', () => undefined);
  s.end(String(s.remoteAddress).replace(/^::ffff:/, '') + '\\n', () => srv.close());
});
const t = setTimeout(() => process.exit(3), secs * 1000);
srv.on('close', () => clearTimeout(t));
srv.on('error', (e) => {
  if (e.code === 'EAFNOSUPPORT' || e.code === 'EADDRNOTAVAIL') srv.listen(port, '0.0.0.0');
  else { console.error(e.message); process.exit(2); }
});
srv.listen({ port, host: '::', ipv6Only: false });
`;
const TCP_CLIENT = `
const net = require('net');
const [host, port, secs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const deadline = Date.now() + secs * 1000;
// A connect in progress is never abandoned: the kernel retransmits a lost SYN, and a connection given up on while
// the one-shot server accepts it would take the server's only answer. Refused (server not listening yet): again.
function attempt() {
  let data = '';
  const s = net.connect({ host, port });
  s.on('data', (d) => (data += d));
  s.on('end', () => { process.stdout.write(data); process.exit(data ? 0 : 4); });
  s.on('error', (e) => { if (e.code !== 'ECONNREFUSED') console.error(e.message); retry(); });
}
function retry() {
  if (Date.now() > deadline) { console.error('no connection to ' + host + ':' + port); process.exit(1); }
  setTimeout(attempt, 50);
}
setTimeout(() => { console.error('no answer from ' + host + ':' + port + ' within ' + secs + ' s'); process.exit(1); }, secs * 1000).unref();
attempt();
`;

/**
 * Open a TCP connection from `from` to ip:port, served by a one-shot server in `to` listening on all
 * addresses on listenPort (default: port; set it when a DNAT maps a host port to another container port).
 * Resolves to the peer address the server saw; rejects when no connection was made within timeoutSec.
 */
export async function tcp(
  from: Netns | string,
  to: Netns | string,
  ip: string,
  port: number,
  opts: { timeoutSec?: number; listenPort?: number } = {},
): Promise<string> {
  const secs = opts.timeoutSec ?? 3;
  const listenPort = opts.listenPort ?? port;
  const env = { PATH: CLEAN_PATH };
  const node = process.execPath;
  const server = run('ip', ['netns', 'exec', nsName(to), node, '-e', TCP_SERVER, String(listenPort), String(secs + 1)], {
    allowFailure: true,
    timeout: (secs + 5) * 1000,
    env,
  });
  const client = await run('ip', ['netns', 'exec', nsName(from), node, '-e', TCP_CLIENT, ip, String(port), String(secs)], {
    allowFailure: true,
    timeout: (secs + 5) * 1000,
    env,
  });
  const srv = await server;
  if (client.exitCode !== 0) {
    throw new Error(`tcp ${nsName(from)} -> ${ip}:${port} failed: ${client.stderr.trim()} (server: exit ${srv.exitCode} ${srv.stderr.trim()})`);
  }
  return client.stdout.trim();
}

/** What cni() runs: `ip netns exec <node> env -i <CNI_* ...> <binDir>/<plugin>`, and its stdin. */
export function cniCommand(node: Netns | string, o: CniOptions): { file: string; args: string[]; input: string } {
  const binDir = o.binDir ?? defaultBinDir();
  const config = typeof o.config === 'string' ? o.config : JSON.stringify(o.config);
  const plugin = o.plugin ?? (typeof o.config === 'object' ? String(o.config.type) : '');
  if (!plugin) throw new Error('cni(): give `plugin` when the config is a string');
  const netns = o.netns === undefined ? '' : typeof o.netns === 'string' ? o.netns : o.netns.path;
  const cniArgs =
    o.cniArgs === undefined
      ? ''
      : typeof o.cniArgs === 'string'
        ? o.cniArgs
        : Object.entries(o.cniArgs)
            .map(([k, v]) => `${k}=${v}`)
            .join(';');
  const vars: Record<string, string> = {
    PATH: CLEAN_PATH,
    CNI_COMMAND: o.command,
    CNI_CONTAINERID: o.containerId ?? '',
    CNI_NETNS: netns,
    CNI_IFNAME: o.ifName ?? 'eth0',
    CNI_ARGS: cniArgs,
    CNI_PATH: o.cniPath ?? (o.withReference ? `${binDir}:${REFERENCE_BIN_DIR}` : binDir),
    ...o.env,
  };
  for (const k of o.omitEnv ?? []) delete vars[k];
  const envArgs = Object.entries(vars).map(([k, v]) => `${k}=${v}`);
  return { file: 'ip', args: ['netns', 'exec', nsName(node), 'env', '-i', ...envArgs, path.join(binDir, plugin)], input: config };
}

/** Run a CNI plugin executable the way a runtime on `node` would: inside the node namespace, clean env. */
export async function cni(node: Netns | string, o: CniOptions): Promise<CniResult> {
  const c = cniCommand(node, o);
  const r = await run(c.file, c.args, { input: c.input, allowFailure: true, timeout: o.timeout ?? 30_000, env: { PATH: CLEAN_PATH } });
  return cniResult(r);
}

/** A plugin's answer: exit code, output, and stdout parsed when it is JSON. */
export function cniResult(r: RunResult): CniResult {
  let json: any;
  const out = r.stdout.trim();
  if (out) {
    try {
      json = JSON.parse(out);
    } catch {
      json = undefined;
    }
  }
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, json };
}

/**
 * Delete `tscni-t-*` namespaces left by earlier runs: those of a World whose owning process is dead, and any
 * other `tscni-t-*` namespace older than maxAgeSec (it may be another engineer's run making it right now).
 */
export async function sweepStale(opts: { maxAgeSec?: number } = {}): Promise<string[]> {
  const maxAge = opts.maxAgeSec ?? 600;
  let names: string[] = [];
  try {
    names = fs.readdirSync(NETNS_DIR).filter((n) => n.startsWith(NS_PREFIX));
  } catch {
    return [];
  }
  const live = new Set<string>();
  const dead = new Set<string>();
  try {
    for (const f of fs.readdirSync(OWNER_DIR)) {
      const pid = Number(fs.readFileSync(path.join(OWNER_DIR, f), 'utf8'));
      if (pidAlive(pid)) live.add(f);
      else dead.add(f);
    }
  } catch {
    /* no owner dir yet */
  }
  const removed: string[] = [];
  for (const n of names) {
    const prefix = /^(tscni-t-[0-9a-f]{6})-/.exec(n)?.[1];
    if (prefix && live.has(prefix)) continue;
    if (!(prefix && dead.has(prefix))) {
      let ageSec: number;
      try {
        ageSec = (Date.now() - fs.statSync(path.join(NETNS_DIR, n)).mtimeMs) / 1000;
      } catch {
        continue;
      }
      if (ageSec < maxAge) continue;
    }
    const r = await run('ip', ['netns', 'del', n], { allowFailure: true });
    if (r.exitCode === 0) removed.push(n);
  }
  for (const f of dead) fs.rmSync(path.join(OWNER_DIR, f), { force: true });
  for (const d of staleTmpDirs(maxAge, live)) fs.rmSync(d, { recursive: true, force: true });
  return removed;
}

/** Temp dirs of dead worlds (or old unowned ones). */
function staleTmpDirs(maxAge: number, live: Set<string>): string[] {
  const tmp = os.tmpdir();
  const out: string[] = [];
  try {
    for (const f of fs.readdirSync(tmp)) {
      const prefix = /^(tscni-t-[0-9a-f]{6})-/.exec(f)?.[1];
      if (!prefix || live.has(prefix)) continue;
      const st = fs.statSync(path.join(tmp, f));
      if (st.isDirectory() && (Date.now() - st.mtimeMs) / 1000 > Math.min(maxAge, 60)) out.push(path.join(tmp, f));
    }
  } catch {
    /* unreadable tmp: nothing to sweep */
  }
  return out;
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class World {
  /** tscni-t-<6 hex>; every namespace is <prefix>-<name> */
  readonly prefix: string;
  private readonly namespaces: Netns[] = [];
  private readonly tmpDirs: string[] = [];
  private readonly byName = new Map<string, Netns>();
  private cleaned = false;
  private readonly cleanups: (() => unknown)[] = [];
  private outsideCount = 0;

  constructor() {
    this.prefix = NS_PREFIX + shortRand();
    fs.mkdirSync(OWNER_DIR, { recursive: true });
    // written before any namespace exists, so a concurrent sweepStale never takes ours for stale
    fs.writeFileSync(path.join(OWNER_DIR, this.prefix), String(process.pid));
  }

  /** The namespace name this world gives `name`. */
  nsName(name: string): string {
    return `${this.prefix}-${name}`;
  }

  private async addNs(name: string): Promise<Netns> {
    if (this.cleaned) throw new Error('world already cleaned up');
    if (this.byName.has(name)) throw new Error(`namespace ${name} already exists in this world`);
    const ns = new Netns(this.nsName(name));
    await run('ip', ['netns', 'add', ns.name]);
    this.namespaces.push(ns);
    this.byName.set(name, ns);
    return ns;
  }

  /** A simulated node: a namespace with lo up and forwarding off unless asked (sysctls set inside it). */
  async node(name: string, opts: NodeOptions = {}): Promise<Netns> {
    const ns = await this.addNs(name);
    await ns.ip(['link', 'set', 'lo', 'up']);
    const fwd = opts.forwarding ? '1' : '0';
    const sysctls = [
      `net.ipv4.ip_forward=${fwd}`,
      `net.ipv4.conf.all.forwarding=${fwd}`,
      `net.ipv4.conf.default.forwarding=${fwd}`,
      `net.ipv6.conf.all.forwarding=${fwd}`,
      `net.ipv6.conf.default.forwarding=${fwd}`,
    ];
    if (opts.rpFilter !== undefined) {
      sysctls.push(`net.ipv4.conf.all.rp_filter=${opts.rpFilter}`, `net.ipv4.conf.default.rp_filter=${opts.rpFilter}`);
    }
    await ns.exec(['sysctl', '-q', '-w', ...sysctls], { env: { PATH: CLEAN_PATH } });
    return ns;
  }

  /** An empty pod namespace (lo down unless {lo: true}), to hand to a plugin as CNI_NETNS. */
  async pod(name: string, opts: PodOptions = {}): Promise<Netns> {
    const ns = await this.addNs(name);
    if (opts.lo) await ns.ip(['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** A namespace of this world by the short name it was made with. */
  get(name: string): Netns {
    const ns = this.byName.get(name);
    if (!ns) throw new Error(`no namespace ${name} in this world`);
    return ns;
  }

  /** A veth underlay between two namespaces, with addresses, up. Made inside `a`, never in the root namespace. */
  async link(a: Netns, b: Netns, o: LinkOptions = {}): Promise<Link> {
    const short = (ns: Netns) => ns.name.slice(this.prefix.length + 1);
    const aIf = o.aIf ?? `to-${short(b)}`.slice(0, 15);
    const bIf = o.bIf ?? `to-${short(a)}`.slice(0, 15);
    const [aCidr, bCidr] = o.subnet ? hostPair(o.subnet, o.aIp, o.bIp) : [undefined, undefined];
    const [aCidr6, bCidr6] = o.subnet6 ? hostPair(o.subnet6, o.aIp6, o.bIp6) : [undefined, undefined];
    const mtu = o.mtu ? ['mtu', String(o.mtu)] : [];
    await a.ip(['link', 'add', aIf, ...mtu, 'type', 'veth', 'peer', 'name', bIf, ...mtu, 'netns', b.name]);
    const side = async (ns: Netns, dev: string, v4?: string, v6?: string) => {
      const batch: string[] = [];
      if (v4) batch.push(`address add ${v4} dev ${dev}`);
      if (v6) batch.push(`address add ${v6} dev ${dev} nodad`);
      batch.push(`link set ${dev} up`);
      await ns.ip(['-batch', '-'], { input: batch.join('\n') + '\n' });
    };
    await Promise.all([side(a, aIf, aCidr, aCidr6), side(b, bIf, bCidr, bCidr6)]);
    const addr = (c?: string) => c?.split('/')[0];
    return { a, b, aIf, bIf, aIp: addr(aCidr), bIp: addr(bCidr), aIp6: addr(aCidr6), bIp6: addr(bCidr6) };
  }

  /**
   * An "outside" host reachable from `node` over a veth; the node gets a default route to it, the outside
   * gets none back (so replies to pod addresses only come back when the node masquerades).
   */
  async outside(node: Netns, o: OutsideOptions = {}): Promise<Outside> {
    const name = o.name ?? (this.outsideCount++ === 0 ? 'outside' : `outside${this.outsideCount}`);
    const ns = await this.addNs(name);
    await ns.ip(['link', 'set', 'lo', 'up']);
    const link = await this.link(node, ns, { subnet: o.subnet ?? '203.0.113.0/24', subnet6: o.subnet6, aIf: 'uplink', bIf: 'eth0', mtu: o.mtu });
    // the family comes from the gateway address: `-6` is an option of ip, not a batch command
    const routes = [`route add default via ${link.bIp} dev uplink`];
    if (link.bIp6) routes.push(`route add ::/0 via ${link.bIp6} dev uplink`);
    await node.ip(['-batch', '-'], { input: routes.join('\n') + '\n' });
    return { ns, link, ip: link.bIp!, ip6: link.bIp6, nodeIp: link.aIp!, nodeIp6: link.aIp6 };
  }

  /** A temp dir removed by cleanup(): use one for every IPAM dataDir. */
  tmpDir(label = 'tmp'): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), `${this.prefix}-${label}-`));
    this.tmpDirs.push(d);
    return d;
  }

  /** A unique container ID for this world. */
  containerId(label = 'c'): string {
    return `${this.prefix}-${label}-${shortRand()}`;
  }

  private runDirPath?: string;

  /**
   * The executables' private run directory for this world's calls (TSCNI_RUN_DIR): the code cache and the
   * fabric stamps, which are keyed by netns inode; inodes of namespaces another world deleted come back.
   */
  get runDir(): string {
    this.runDirPath ??= this.tmpDir('run');
    return this.runDirPath;
  }

  /** cni() from this world, with the world's run directory. */
  cni(node: Netns | string, o: CniOptions): Promise<CniResult> {
    return cni(node, { ...o, env: { TSCNI_RUN_DIR: this.runDir, ...o.env } });
  }

  ping = ping;
  tcp = tcp;
  ipJson = ipJson;

  /** Namespaces of this world still present in /var/run/netns. */
  existing(): string[] {
    try {
      return fs.readdirSync(NETNS_DIR).filter((n) => n.startsWith(this.prefix + '-'));
    } catch {
      return [];
    }
  }

  /** Run fn at cleanup, before the namespaces go (last registered first), e.g. a helper's own state. */
  onCleanup(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  /** Delete every namespace and temp dir this world made; safe to call twice. */
  async cleanup(): Promise<void> {
    this.cleaned = true;
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`world cleanup: ${(e as Error).message}\n`);
      }
    }
    const names = new Set([...this.namespaces.map((n) => n.name), ...this.existing()]);
    await Promise.all([...names].map((n) => run('ip', ['netns', 'del', n], { allowFailure: true })));
    this.namespaces.length = 0;
    for (const d of this.tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
    fs.rmSync(path.join(OWNER_DIR, this.prefix), { force: true });
  }
}

/**
 * Make a world for one test file and register its cleanup in afterAll.
 * Call at the top level of a describe or file: `const world = useWorld();`
 */
export function useWorld(): World {
  const w = new World();
  // its own limit, not the file's hook timeout (5 s unless set): deleting many namespaces on a busy machine takes longer
  afterAll(() => w.cleanup(), 120_000);
  return w;
}

/** CIDRs for the two ends of a link: the subnet's first two hosts unless given. */
function hostPair(subnet: string, a?: string, b?: string): [string, string] {
  const net = parseCIDR(subnet);
  if (!net) throw new Error(`bad subnet ${subnet}`);
  const base = networkOf(net);
  const pick = (ip: string | undefined, n: bigint) => `${ip ?? formatIP(net.family, base.ip + n)}/${net.prefix}`;
  return [pick(a, 1n), pick(b, 2n)];
}
