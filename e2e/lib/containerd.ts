// A private containerd 1.6 for `ctr run --cni` tests, living entirely inside a test node.
//
// `ctr run --cni` runs the CNI plugins itself, from the ctr process (go-cni, fixed dirs: the first conflist of
// /etc/cni/net.d, plugins from /opt/cni/bin then /usr/lib/cni, libcni's result cache in /var/lib/cni), so both
// ctr and the daemon run inside a "holder": a `sleep` in the node's network namespace and a private mount
// namespace where temp dirs are mounted over those paths. The host's /etc/cni/net.d, /opt and /var/lib/cni are
// never written, the bridge/veths/nft rules land in the node namespace, and /run is a tmpfs there because
// containerd 1.6 puts shim sockets in /run/containerd/s whatever its `state` says.
import * as fs from 'fs';
import * as path from 'path';
import { run, type RunOptions, type RunResult } from '../../pkg/exec';
import { CLEAN_PATH, type Netns, type World } from './world';

const BINARIES = ['/usr/bin/containerd', '/usr/bin/ctr', '/usr/bin/containerd-shim-runc-v2'];
const CGROUP_ROOT = '/sys/fs/cgroup';

/** Why no private containerd can run here, or undefined. */
export function containerdMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const b of BINARIES) if (!fs.existsSync(b)) return `${b} not found (apt-get install containerd runc)`;
  if (!['/usr/sbin/runc', '/usr/bin/runc'].some((f) => fs.existsSync(f))) return 'runc not found (apt-get install runc)';
  return undefined;
}

export interface ContainerdOptions {
  node: Netns;
  /** directory mounted on /opt/cni/bin: our executables */
  binDir: string;
  /** names the containerd namespace (`<world prefix>-<label>`) and the temp dir; one per daemon of a world */
  label?: string;
}

/** A pidfile-started background process (start-stop-daemon). */
async function startDaemon(prefix: string[], exe: string, args: string[], pidFile: string, logFile?: string): Promise<number> {
  const ssd = ['start-stop-daemon', '--start', '--background', '--make-pidfile', '--pidfile', pidFile, ...(logFile ? ['--output', logFile] : [])];
  await run(prefix[0], [...prefix.slice(1), ...ssd, '--exec', exe, '--', ...args], { env: { PATH: CLEAN_PATH } });
  // --make-pidfile writes before exec, in the forked child: wait for it
  for (let i = 0; i < 100; i++) {
    const pid = Number(fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8') : '');
    if (pid > 0) return pid;
    await sleep(20);
  }
  throw new Error(`${exe} wrote no pid to ${pidFile}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function kill(pid: number, graceMs: number): Promise<void> {
  signal(pid, 'SIGTERM');
  for (let t = 0; t < graceMs && alive(pid); t += 50) await sleep(50);
  if (alive(pid)) signal(pid, 'SIGKILL');
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

export class Containerd {
  /** containerd namespace (`<world prefix>-<label>`), also the cgroup parent of its containers */
  readonly namespace: string;
  readonly socket: string;
  /** host path of the dir mounted on /etc/cni/net.d inside */
  readonly netDir: string;
  /** host path of the dir mounted on /var/lib/cni inside (libcni's cached results) */
  readonly cacheDir: string;
  readonly logFile: string;
  private holderPid = 0;
  private daemonPid = 0;

  private constructor(
    readonly dir: string,
    readonly node: Netns,
    namespace: string,
  ) {
    this.namespace = namespace;
    this.socket = path.join(dir, 'containerd.sock');
    this.netDir = path.join(dir, 'net.d');
    this.cacheDir = path.join(dir, 'cni-cache');
    this.logFile = path.join(dir, 'containerd.log');
  }

  /** Start holder and daemon for `node`; the world's cleanup stops them (register before anything can fail). */
  static async start(world: World, o: ContainerdOptions): Promise<Containerd> {
    const label = o.label ?? 'ctrd';
    const c = new Containerd(world.tmpDir(`ctrd-${label}`), o.node, `${world.prefix}-${label}`);
    world.onCleanup(() => c.stop());
    await c.boot(o.binDir);
    return c;
  }

  private async boot(binDir: string): Promise<void> {
    const d = this.dir;
    for (const s of ['net.d', 'cni-cache', 'cgroup-stage', 'root', 'state', 'opt']) fs.mkdirSync(path.join(d, s));
    fs.writeFileSync(
      path.join(d, 'config.toml'),
      [
        'version = 2',
        `root = "${d}/root"`,
        `state = "${d}/state"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${this.socket}"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${d}/opt"`,
        '',
      ].join('\n'),
    );
    this.holderPid = await startDaemon(
      ['unshare', '--mount', '--propagation', 'private', '--', 'nsenter', `--net=${this.node.path}`, '--'],
      '/usr/bin/sleep',
      ['infinity'],
      path.join(d, 'holder.pid'),
    );
    // inside the holder's mount namespace (private: nothing propagates to the host)
    const stage = path.join(d, 'cgroup-stage');
    const steps: string[][] = [
      // a sysfs of the node's own network namespace (plugins read /sys/class/net), keeping the cgroup tree runc needs
      ['mount', '--rbind', CGROUP_ROOT, stage],
      ['mount', '-t', 'sysfs', 'sysfs', '/sys'],
      ['mount', '--move', stage, CGROUP_ROOT],
      ['mount', '-t', 'tmpfs', 'tmpfs', '/run'],
      ['mount', '--bind', this.netDir, '/etc/cni/net.d'],
      ['mount', '-t', 'tmpfs', 'tmpfs', '/opt'],
      ['mkdir', '-p', '/opt/cni/bin'],
      ['mount', '--bind', binDir, '/opt/cni/bin'],
      // no fallback to the reference plugins: a missing executable of ours must fail the ADD
      ['mount', '-t', 'tmpfs', 'tmpfs', '/usr/lib/cni'],
      ['mount', '--bind', this.cacheDir, '/var/lib/cni'],
    ];
    for (const s of steps) await this.inside(s);
    this.daemonPid = await startDaemon(
      this.enter(),
      '/usr/bin/containerd',
      ['--config', path.join(d, 'config.toml')],
      path.join(d, 'containerd.pid'),
      this.logFile,
    );
    for (let i = 0; i < 100; i++) {
      const v = await this.ctr(['version'], { allowFailure: true });
      if (v.exitCode === 0) return;
      if (!alive(this.daemonPid)) break;
      await sleep(50);
    }
    throw new Error(`containerd did not start: ${this.logTail()}`);
  }

  /** nsenter prefix into the holder's mount and network namespaces */
  private enter(): string[] {
    return ['nsenter', '-t', String(this.holderPid), '-m', '-n', '--'];
  }

  /** Run argv in the holder's namespaces, with a clean environment (as a runtime would have). */
  inside(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const [file, ...rest] = [...this.enter(), ...argv];
    return run(file, rest, { env: { PATH: CLEAN_PATH }, ...opts });
  }

  /** `ctr -a <socket> -n <namespace> <args>` inside the node. */
  ctr(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.inside(['ctr', '-a', this.socket, '-n', this.namespace, ...args], opts);
  }

  /** The CNI_CONTAINERID ctr gives a container: `<namespace>-<id>`. */
  cniContainerId(id: string): string {
    return `${this.namespace}-${id}`;
  }

  /** Write a conflist into /etc/cni/net.d as seen inside. */
  writeConflist(file: string, conflist: unknown): void {
    fs.writeFileSync(path.join(this.netDir, file), JSON.stringify(conflist, null, 2));
  }

  async importImage(archive: string): Promise<void> {
    await this.ctr(['images', 'import', archive]);
  }

  logTail(lines = 20): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no containerd log)';
    }
  }

  /** Tasks and containers removed, daemon and holder ended, leftover container processes killed, cgroups removed. */
  async stop(): Promise<void> {
    if (this.daemonPid && alive(this.daemonPid)) {
      const tasks = (await this.ctr(['tasks', 'ls', '-q'], { allowFailure: true, timeout: 5000 })).stdout.split('\n').filter(Boolean);
      for (const t of tasks) await this.ctr(['tasks', 'rm', '-f', t], { allowFailure: true, timeout: 10_000 });
      const ctrs = (await this.ctr(['containers', 'ls', '-q'], { allowFailure: true, timeout: 5000 })).stdout.split('\n').filter(Boolean);
      for (const c of ctrs) await this.ctr(['containers', 'rm', c], { allowFailure: true, timeout: 10_000 });
    }
    if (this.daemonPid) await kill(this.daemonPid, 3000);
    // what a dead or hung daemon left: container processes (by cgroup), then shims (started with `-address <our socket>`)
    const cgroups = this.cgroupDirs();
    for (const leaf of cgroups.leaves) for (const pid of readPids(leaf)) signal(pid, 'SIGKILL');
    for (const pid of this.processesMatching(this.socket)) signal(pid, 'SIGKILL');
    for (const d of [...cgroups.leaves, ...cgroups.parents]) await retryRmdir(d);
    if (this.holderPid) await kill(this.holderPid, 1000);
  }

  /** pids whose command line contains `needle` (our unique temp paths only). */
  private processesMatching(needle: string): number[] {
    const out: number[] = [];
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
      try {
        if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle)) out.push(Number(e));
      } catch {
        /* gone */
      }
    }
    return out;
  }

  /** Our containers' cgroups (`<controller>/<namespace>/<id>`; cgroup v1 has one tree per controller). */
  private cgroupDirs(): { leaves: string[]; parents: string[] } {
    const parents: string[] = [path.join(CGROUP_ROOT, this.namespace)]; // v2
    try {
      for (const c of fs.readdirSync(CGROUP_ROOT)) parents.push(path.join(CGROUP_ROOT, c, this.namespace));
    } catch {
      /* no cgroup fs */
    }
    const existing = parents.filter((d) => fs.existsSync(d) && fs.statSync(d).isDirectory());
    const leaves = existing.flatMap((d) =>
      fs
        .readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => path.join(d, e.name)),
    );
    return { leaves, parents: existing };
  }
}

function readPids(cgroup: string): number[] {
  try {
    return fs.readFileSync(path.join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function retryRmdir(dir: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      await sleep(50);
    }
  }
  process.stderr.write(`containerd cleanup: could not remove cgroup ${dir}\n`);
}
