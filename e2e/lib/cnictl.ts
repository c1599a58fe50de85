// Drive CNI plugins through libcni, as containerd/podman/cnitool do: our cnictl (e2e/cnictl/main.go) built once
// into build/cnictl and run inside a node namespace with a clean environment.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';
import { CLEAN_PATH, REFERENCE_BIN_DIR, REPO_ROOT, defaultBinDir, type CniResult, type Netns, type World } from './world';

export const CNICTL_SRC = path.join(REPO_ROOT, 'e2e', 'cnictl');
export const CNICTL = path.join(REPO_ROOT, 'build', 'cnictl');
/** libcni's default cache dir (results/ under it), used when a test asks for the real location */
export const LIBCNI_CACHE_DIR = '/var/lib/cni';
const GO_DEPS_HINT = 'apt-get install -y golang-go golang-github-appc-cni-dev';

let built: Promise<string> | undefined;

/** Build build/cnictl unless it is newer than its sources; offline, GOPATH mode over Debian's libcni. */
export function buildCnictl(): Promise<string> {
  built ??= doBuild();
  return built;
}

async function doBuild(): Promise<string> {
  const srcs = fs
    .readdirSync(CNICTL_SRC)
    .filter((f) => f.endsWith('.go'))
    .map((f) => path.join(CNICTL_SRC, f));
  const newest = Math.max(...srcs.map((f) => fs.statSync(f).mtimeMs));
  try {
    if (fs.statSync(CNICTL).mtimeMs >= newest) return CNICTL;
  } catch {
    /* not built yet */
  }
  if (!fs.existsSync('/usr/share/gocode/src/github.com/containernetworking/cni/libcni')) {
    throw new Error(`cnictl: libcni sources missing: ${GO_DEPS_HINT}`);
  }
  const scratch = path.join(REPO_ROOT, 'build', '.go');
  fs.mkdirSync(scratch, { recursive: true });
  // build to a private name then rename: another test run may build at the same moment
  const tmp = `${CNICTL}.${process.pid}.tmp`;
  const r = await run('go', ['build', '-o', tmp, ...srcs], {
    allowFailure: true,
    timeout: 120_000,
    env: {
      PATH: `${CLEAN_PATH}:/usr/lib/go/bin`,
      HOME: scratch,
      GO111MODULE: 'off',
      GOPATH: `/usr/share/gocode:${scratch}`,
      GOCACHE: path.join(scratch, 'cache'),
      GOFLAGS: '',
      CGO_ENABLED: '0',
    },
  });
  if (r.exitCode !== 0) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`cnictl: go build failed (${GO_DEPS_HINT}): ${r.stderr.trim()}`);
  }
  fs.renameSync(tmp, CNICTL);
  return CNICTL;
}

export interface CnictlOptions {
  /** CNI_PATH; default: binDir (our build), plus /usr/lib/cni when withReference */
  cniPath?: string;
  binDir?: string;
  withReference?: boolean;
  /** default eth0 */
  ifName?: string;
  cniArgs?: string | Record<string, string>;
  /** CAP_ARGS: becomes runtimeConfig for the capabilities each plugin declares */
  capArgs?: Record<string, unknown>;
  /** default cnitool's rule: cnitool-<20 hex of sha512(netns path)> */
  containerId?: string;
  /** gc only: CNI_VALID_ATTACHMENTS */
  validAttachments?: { containerID: string; ifname: string }[];
  env?: Record<string, string>;
  timeout?: number;
}

export type CnictlCommand = 'add' | 'check' | 'del' | 'gc' | 'status';

/**
 * A libcni client bound to a World: its own NETCONFPATH and result cache (temp dirs of the world, so nothing
 * lands in /var/lib/cni), unless `realCache` asks for libcni's default cache, whose files for the containers
 * this client touched are then deleted at world cleanup.
 */
export class Cnictl {
  readonly netconfDir: string;
  readonly cacheDir: string;
  private readonly touched = new Set<string>();

  private constructor(world: World, opts: { realCache?: boolean }) {
    this.netconfDir = world.tmpDir('netconf');
    this.cacheDir = opts.realCache ? LIBCNI_CACHE_DIR : world.tmpDir('cnicache');
    if (opts.realCache) world.onCleanup(() => this.removeCachedResults());
  }

  static async create(world: World, opts: { realCache?: boolean } = {}): Promise<Cnictl> {
    await buildCnictl();
    return new Cnictl(world, opts);
  }

  /** Write a conflist into this client's NETCONFPATH as <name>.conflist; returns its path. */
  addConflist(conflist: { name: string } & Record<string, unknown>): string {
    const f = path.join(this.netconfDir, `${conflist.name}.conflist`);
    fs.writeFileSync(f, JSON.stringify(conflist, null, 2));
    return f;
  }

  /** The container ID cnitool derives from a netns path. */
  static defaultContainerId(netnsPath: string): string {
    const h = require('crypto').createHash('sha512').update(path.resolve(netnsPath)).digest('hex') as string;
    return `cnitool-${h.slice(0, 20)}`;
  }

  /** The result-cache file libcni keeps for one attachment. */
  cacheFile(netName: string, containerId: string, ifName = 'eth0'): string {
    return path.join(this.cacheDir, 'results', `${netName}-${containerId}-${ifName}`);
  }

  /** `cnictl <cmd> <netName> <netns>` inside `node` with a clean environment. */
  async run(node: Netns, cmd: CnictlCommand, netName: string, netns: Netns | string, o: CnictlOptions = {}): Promise<CniResult> {
    const nsPath = typeof netns === 'string' ? netns : netns.path;
    const binDir = o.binDir ?? defaultBinDir();
    const ifName = o.ifName ?? 'eth0';
    const containerId = o.containerId ?? Cnictl.defaultContainerId(nsPath);
    this.touched.add(`${netName}-${containerId}-${ifName}`);
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
      NETCONFPATH: this.netconfDir,
      CNI_PATH: o.cniPath ?? (o.withReference ? `${binDir}:${REFERENCE_BIN_DIR}` : binDir),
      CNI_IFNAME: ifName,
      CNI_CONTAINERID: containerId,
      CNI_CACHE_DIR: this.cacheDir,
      ...(cniArgs ? { CNI_ARGS: cniArgs } : {}),
      ...(o.capArgs ? { CAP_ARGS: JSON.stringify(o.capArgs) } : {}),
      ...(o.validAttachments ? { CNI_VALID_ATTACHMENTS: JSON.stringify(o.validAttachments) } : {}),
      ...o.env,
    };
    const r = await run('ip', ['netns', 'exec', node.name, 'env', '-i', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), CNICTL, cmd, netName, nsPath], {
      allowFailure: true,
      timeout: o.timeout ?? 60_000,
      env: { PATH: CLEAN_PATH },
    });
    let json: any;
    try {
      json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
    } catch {
      json = undefined;
    }
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, json };
  }

  add(node: Netns, netName: string, netns: Netns | string, o?: CnictlOptions): Promise<CniResult> {
    return this.run(node, 'add', netName, netns, o);
  }
  check(node: Netns, netName: string, netns: Netns | string, o?: CnictlOptions): Promise<CniResult> {
    return this.run(node, 'check', netName, netns, o);
  }
  del(node: Netns, netName: string, netns: Netns | string, o?: CnictlOptions): Promise<CniResult> {
    return this.run(node, 'del', netName, netns, o);
  }

  /** Delete libcni's cache files for the attachments this client touched (realCache mode). */
  removeCachedResults(): void {
    for (const f of this.touched) fs.rmSync(path.join(this.cacheDir, 'results', f), { force: true });
  }
}

export interface AttachmentTraces {
  /** host-local's dataDir and the network name under it */
  dataDir: string;
  netName: string;
  containerId: string;
  /** the node end of the pod's veth, when the plugin makes one */
  hostIf?: string;
  /** the pod's addresses, without prefix */
  ips: string[];
}

/**
 * What an attachment still holds on `node`, in words: address files naming its container, its node veth, routes to
 * its addresses, firewall rules (nft: masquerade and macspoof elements; iptables) naming its addresses. [] once a
 * DEL did its job; a test asserts it is non-empty before the DEL, so the probe is known to see things.
 */
export async function attachmentTraces(node: Netns, t: AttachmentTraces): Promise<string[]> {
  const out: string[] = [];
  const dir = path.join(t.dataDir, t.netName);
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    if (text.split(/\r?\n/)[0] === t.containerId) out.push(`address file ${f}`);
  }
  if (t.hostIf && (await node.ip(['link', 'show', 'dev', t.hostIf], { allowFailure: true })).exitCode === 0) out.push(`node link ${t.hostIf}`);
  const [r4, r6, nft, ipt, ip6t] = await Promise.all([
    node.ip(['-o', 'route', 'show']),
    node.ip(['-o', '-6', 'route', 'show']),
    node.exec(['nft', 'list', 'ruleset'], { allowFailure: true }),
    node.exec(['iptables-save'], { allowFailure: true }),
    node.exec(['ip6tables-save'], { allowFailure: true }),
  ]);
  const routes = (r4.stdout + r6.stdout).split('\n');
  const rules = nft.stdout + ipt.stdout + ip6t.stdout;
  for (const ip of t.ips) {
    for (const l of routes) if (l.startsWith(`${ip} `) || l.startsWith(`${ip}/`)) out.push(`route ${l.trim()}`);
    // an address as a whole word: 10.22.0.2 must not match 10.22.0.21
    if (new RegExp(`(^|[^0-9a-f:.])${ip.replace(/[.]/g, '\\.')}([^0-9a-f:.]|$)`, 'm').test(rules)) out.push(`firewall rules naming ${ip}`);
  }
  return out;
}

/**
 * The end of a pod as a runtime sees it after a crash or reboot: its netns is deleted first, then libcni's DEL
 * (with the cached result as prevResult) must succeed, and a second DEL too. Returns both results.
 */
export async function delAfterNetnsGone(ctl: Cnictl, node: Netns, netName: string, pod: Netns, o?: CnictlOptions): Promise<[CniResult, CniResult]> {
  await run('ip', ['netns', 'del', pod.name]);
  const first = await ctl.del(node, netName, pod.path, o);
  const again = await ctl.del(node, netName, pod.path, o);
  return [first, again];
}
