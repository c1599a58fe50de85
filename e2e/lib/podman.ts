// podman 4.3 with its CNI backend, run from a node namespace a test made, with storage, config, network
// configs and temp files of its own: nothing of the machine's podman or CNI state is used, and the bridge,
// veths and NAT rules podman's plugins make land in the node namespace.
import * as fs from 'fs';
import * as path from 'path';
import { setTimeout as delay } from 'timers/promises';
import { run, type RunResult } from '../../pkg/exec';
import { CLEAN_PATH, NETNS_DIR, REPO_ROOT, type Netns, type World } from './world';

/** libcni's cache dir: podman 4.3 has no setting to move it, so the holder mounts a temp dir over it. */
export const LIBCNI_CACHE_DIR = '/var/lib/cni';
const HOLDER = path.join(REPO_ROOT, 'e2e', 'fixtures', 'podman-node-holder.sh');
/** the holder's own end, should a test run die before its cleanup */
const HOLDER_SECS = 900;

/** Why podman cannot run here, or undefined. */
export function podmanMissing(): string | undefined {
  for (const bin of ['podman', 'runc', 'conmon']) {
    if (!CLEAN_PATH.split(':').some((d) => fs.existsSync(path.join(d, bin)))) {
      return `${bin} not found (apt-get install --no-install-recommends podman runc conmon)`;
    }
  }
  if (process.getuid?.() !== 0) return 'podman e2e needs root (rootful CNI networking in a namespace)';
  return undefined;
}

/** One plugin call podman made, as recorded by the wrapper plugin dir (record mode). */
export interface PluginCall {
  plugin: string;
  command: string;
  env: Record<string, string>;
  stdin: string;
}

export interface PodmanRunOptions {
  allowFailure?: boolean;
  timeout?: number;
  /** use the recording plugin dir: every plugin call's environment and stdin is kept (see calls()) */
  record?: boolean;
}

/** The cgroup mounts of this machine, as <fstype> <options> <dir> triples (see the holder script). */
function cgroupMounts(): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || !/^\/sys\/fs\/cgroup(\/|$)/.test(f[4])) continue;
    out.push(f[sep + 1], f[sep + 3], f[4]);
  }
  return out;
}

/** Mount points of network namespace files in a process's mount namespace. */
function netnsMounts(pid: number | 'self'): Set<string> {
  const out = new Set<string>();
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
      const f = line.split(' ');
      if (f[4]?.startsWith(NETNS_DIR + '/') || f[4]?.startsWith('/run/netns/')) out.add(path.basename(f[4]));
    }
  } catch {
    /* process gone */
  }
  return out;
}

export class Podman {
  readonly root: string;
  readonly runroot: string;
  /** network_config_dir: the conflists podman sees */
  readonly netDir: string;
  /** where record mode keeps the plugin calls */
  readonly recordDir: string;
  /** temp dir mounted on /var/lib/cni for podman and its plugins: libcni's results/, host-local's default dataDir */
  readonly cniStateDir: string;
  private readonly tmp: string;
  private readonly conf: string;
  private readonly recordConf: string;
  private readonly storageConf: string;
  /** every container's cgroups (and conmon's) go under this, removed at cleanup, never libpod_parent */
  private readonly cgroupParent: string;
  private holderPid = 0;
  private holder?: Promise<RunResult>;

  private constructor(
    world: World,
    readonly node: Netns,
    /** cni_plugin_dirs: our executables */
    readonly pluginDir: string,
    private readonly dir: string,
  ) {
    this.root = path.join(dir, 'root');
    this.runroot = path.join(dir, 'runroot');
    this.netDir = path.join(dir, 'net.d');
    this.recordDir = path.join(dir, 'calls');
    this.cniStateDir = path.join(dir, 'cni-cache');
    this.tmp = path.join(dir, 'tmp');
    this.conf = path.join(dir, 'containers.conf');
    this.recordConf = path.join(dir, 'containers-record.conf');
    this.storageConf = path.join(dir, 'storage.conf');
    this.cgroupParent = `/${world.prefix}-podman`;
  }

  /** A podman whose every call runs in `node`, with our executables in `pluginDir` as its only plugin dir. */
  static async create(world: World, node: Netns, pluginDir: string): Promise<Podman> {
    const p = new Podman(world, node, pluginDir, world.tmpDir('podman'));
    world.onCleanup(() => p.cleanup());
    p.writeConfig();
    await p.startHolder();
    return p;
  }

  private writeConfig(): void {
    for (const d of [this.root, this.runroot, this.netDir, this.recordDir, this.tmp, this.cniStateDir]) fs.mkdirSync(d, { recursive: true });
    const recordBin = path.join(this.dir, 'record-bin');
    fs.mkdirSync(recordBin);
    // record mode: a wrapper per executable keeps what podman sent, then runs ours on the same input
    for (const name of fs.readdirSync(this.pluginDir)) {
      const real = path.join(this.pluginDir, name);
      fs.writeFileSync(
        path.join(recordBin, name),
        `#!/bin/sh\nf=${this.recordDir}/$(date +%s%N)-$$-${name}\nenv > "$f.env"\ncat > "$f.stdin"\nexec ${real} < "$f.stdin"\n`,
        { mode: 0o755 },
      );
    }
    const conf = (pluginDir: string) => `# tscni e2e: a private podman, CNI backend, no systemd
[containers]
# this sandbox lacks CAP_SYS_RESOURCE: podman's default ulimits would fail every run
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_backend = "cni"
cni_plugin_dirs = ["${pluginDir}"]
network_config_dir = "${this.netDir}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${path.join(this.dir, 'events.log')}"
runtime = "runc"
tmp_dir = "${this.tmp}"
volume_path = "${path.join(this.root, 'volumes')}"
`;
    fs.writeFileSync(this.conf, conf(this.pluginDir));
    fs.writeFileSync(this.recordConf, conf(recordBin));
    // vfs: plain directories, so no overlay mount can outlive the test anywhere
    fs.writeFileSync(this.storageConf, `[storage]\ndriver = "vfs"\ngraphroot = "${this.root}"\nrunroot = "${this.runroot}"\n`);
  }

  private async startHolder(): Promise<void> {
    const pidFile = path.join(this.dir, 'holder.pid');
    this.holder = run('ip', ['netns', 'exec', this.node.name, 'sh', HOLDER, pidFile, String(HOLDER_SECS), ...cgroupMounts()], {
      allowFailure: true,
      timeout: (HOLDER_SECS + 60) * 1000,
      env: { PATH: CLEAN_PATH },
    }).catch((e: Error) => ({ stdout: '', stderr: e.message, exitCode: -1 }));
    const deadline = Date.now() + 10_000;
    while (!fs.existsSync(pidFile) || !fs.readFileSync(pidFile, 'utf8').trim()) {
      const early = await Promise.race([this.holder, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20))]);
      if (early) throw new Error(`podman holder ended early: ${early.stderr.trim()}`);
      if (Date.now() > deadline) throw new Error('podman holder did not start');
    }
    this.holderPid = Number(fs.readFileSync(pidFile, 'utf8'));
    // the holder's mounts are slaves of the host's: this one stays inside. A fresh host may not have the
    // directory yet; the empty one made here is what any CNI runtime's first run would make.
    fs.mkdirSync(LIBCNI_CACHE_DIR, { recursive: true, mode: 0o700 });
    await run('nsenter', ['-t', String(this.holderPid), '-m', '--', 'mount', '--bind', this.cniStateDir, LIBCNI_CACHE_DIR], { env: { PATH: CLEAN_PATH } });
  }

  /**
   * `podman <args>` inside the node namespace (and the holder's mount namespace). Throws on failure unless
   * allowed. `run`/`create` get this podman's own --cgroup-parent.
   */
  podman(args: readonly string[], opts: PodmanRunOptions = {}): Promise<RunResult> {
    if (!this.holderPid) throw new Error('podman: no holder (cleaned up?)');
    if (args[0] === 'run' || args[0] === 'create') args = [args[0], '--cgroup-parent', this.cgroupParent, ...args.slice(1)];
    const global = ['--root', this.root, '--runroot', this.runroot, '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
    return run('nsenter', ['-t', String(this.holderPid), '-m', '-n', '--', 'podman', ...global, ...args], {
      allowFailure: opts.allowFailure,
      timeout: opts.timeout ?? 60_000,
      env: {
        PATH: CLEAN_PATH,
        HOME: this.dir,
        TMPDIR: this.tmp,
        XDG_RUNTIME_DIR: '',
        CONTAINERS_CONF: opts.record ? this.recordConf : this.conf,
        CONTAINERS_STORAGE_CONF: this.storageConf,
      },
    });
  }

  /** Parsed JSON output of `podman <args>`. */
  async json<T = any>(args: readonly string[], opts: PodmanRunOptions = {}): Promise<T> {
    return JSON.parse((await this.podman(args, opts)).stdout) as T;
  }

  /** Where libcni keeps the cached result of an attachment, as a host path. */
  cacheFile(net: string, containerId: string, ifName = 'eth0'): string {
    return path.join(this.cniStateDir, 'results', `${net}-${containerId}-${ifName}`);
  }

  /** Write a conflist into the network config dir (file named after the network). */
  addConflist(conf: { name: string } & Record<string, unknown>): string {
    const f = path.join(this.netDir, `${conf.name}.conflist`);
    fs.writeFileSync(f, JSON.stringify(conf, null, 2));
    return f;
  }

  /** `podman import` a rootfs tar as `ref` (e.g. 'localhost/tscni-busybox:test'). */
  async importImage(tar: string, ref: string): Promise<void> {
    await this.podman(['import', '--quiet', '--change', 'CMD ["/bin/sh"]', tar, ref]);
  }

  /** Plugin calls recorded in record mode, oldest first. */
  calls(): PluginCall[] {
    const names = fs
      .readdirSync(this.recordDir)
      .filter((f) => f.endsWith('.env'))
      .sort();
    return names.map((f) => {
      const base = f.slice(0, -'.env'.length);
      const env: Record<string, string> = {};
      for (const line of fs.readFileSync(path.join(this.recordDir, f), 'utf8').split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
      }
      const plugin = base.split('-').slice(2).join('-');
      return { plugin, command: env.CNI_COMMAND ?? '', env, stdin: fs.readFileSync(path.join(this.recordDir, base + '.stdin'), 'utf8') };
    });
  }

  /** Forget what record mode has kept so far. */
  clearCalls(): void {
    for (const f of fs.readdirSync(this.recordDir)) fs.rmSync(path.join(this.recordDir, f));
  }

  /** conmon processes of this podman (each container's monitor), by pid. */
  conmonPids(): number[] {
    const out: number[] = [];
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      let argv: string[];
      try {
        argv = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      } catch {
        continue;
      }
      if (path.basename(argv[0]) === 'conmon' && argv.some((a) => a.startsWith(this.root) || a.startsWith(this.runroot))) out.push(Number(e));
    }
    return out;
  }

  /**
   * conmon processes still alive after up to graceMs: a conmon runs its container's cleanup (podman container
   * cleanup) after podman rm or run --rm has returned, so it ends a moment later, not at once.
   */
  async conmonPidsAfter(graceMs = 10_000): Promise<number[]> {
    const end = Date.now() + graceMs;
    let pids = this.conmonPids();
    while (pids.length > 0 && Date.now() < end) {
      await delay(100);
      pids = this.conmonPids();
    }
    return pids;
  }

  /** Remove every container, then end the holder and whatever podman left running; safe twice. */
  async cleanup(): Promise<void> {
    if (this.holderPid && fs.existsSync(`/proc/${this.holderPid}`)) {
      await this.podman(['rm', '-a', '-f', '-t', '0'], { allowFailure: true, timeout: 30_000 }).catch(() => undefined);
    }
    // netns files podman bound in the holder's mount namespace only (empty files in ours); the holder's list
    // is read first, so a namespace someone adds meanwhile shows up in ours and is left alone
    const held = this.holderPid ? [...netnsMounts(this.holderPid)] : [];
    const ours = netnsMounts('self');
    const leftNetns = held.filter((n) => n.startsWith('netns-') && !ours.has(n));
    for (const pid of this.conmonPids()) {
      for (const child of childrenOf(pid)) kill(child);
      kill(pid);
    }
    if (this.holderPid) kill(this.holderPid);
    this.holderPid = 0;
    await this.holder;
    for (const n of leftNetns) fs.rmSync(path.join(NETNS_DIR, n), { force: true });
    this.removeCgroups();
  }

  /** Our cgroup parent in every hierarchy: its children (conmon, libpod-<id>) first; empty cgroups only. */
  private removeCgroups(): void {
    const dirs = cgroupMounts().filter((_, i) => i % 3 === 2);
    for (const top of dirs) {
      const parent = path.join(top, this.cgroupParent);
      if (!fs.existsSync(parent)) continue;
      for (const e of fs.readdirSync(parent, { withFileTypes: true })) {
        if (e.isDirectory()) rmdir(path.join(parent, e.name));
      }
      rmdir(parent);
    }
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // ppid is the 2nd field after the parenthesised command name
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

function rmdir(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch (e) {
    process.stderr.write(`podman cleanup: ${(e as Error).message}\n`);
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
