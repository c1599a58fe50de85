// `tscni k8s install`: what the DaemonSet's init container does on each node, in TypeScript rather than
// shell+curl+jq (the image then needs nothing but this executable and iproute2):
//   1. copy this executable to the host's CNI bin dir, with a link per plugin name;
//   2. read this node (NODE_NAME) from the API until the controller manager has given it a podCIDR;
//   3. write the peers file from the node list, then the fabric conf the watcher reads, then the conflist,
//      last, because its appearance is what makes the runtime report the network ready.
// `tscni k8s run`: the main container: steps 2-3 again (so a restart renders what the Node says now), then
// `tscni fabric watch --kubernetes`, which exits when this node's own podCIDR or InternalIP changes (a Node
// deleted and registered again), so the container restarts and renders the new one.
import * as fs from 'fs';
import * as path from 'path';
import { formatIP, lastOf, networkOf, parseCIDR } from '../pkg/ipnet';
import type { ApiConfig, KubeNode } from '../pkg/fabric/k8s';

const k8s = () => require('../pkg/fabric/k8s') as typeof import('../pkg/fabric/k8s');

/** The names the kubelet's runtime calls us by: every plugin of plugins/main.ts. */
export const PLUGIN_LINKS = ['bridge', 'ptp', 'host-local', 'host-gw', 'vxlan', 'ipip'];

export interface InstallOptions {
  mode: string;
  /** the ConfigMap: <mode>.conflist, and optionally <mode>-fabric.conf when the pods' plugin is not a fabric one */
  templates: string;
  /** the host's /opt/cni/bin as mounted in the container; '' skips the copy */
  binDir: string;
  /** the host's /etc/cni/net.d/<name>.conflist */
  conflist: string;
  /** what `tscni fabric watch --conf` reads */
  fabricConf: string;
  node: string;
  exe: string;
  waitSeconds: number;
  /** between reads of a node still without podCIDR; default 2 s */
  pollMs?: number;
  log: (line: string) => void;
}

const USAGE =
  'usage: tscni k8s install|run --mode <host-gw|vxlan|ptp> [--templates /etc/tscni] [--bin-dir /host/opt/cni/bin (install; run: none)] ' +
  '[--conflist /etc/cni/net.d/10-tscni.conflist] [--fabric-conf /etc/cni/tscni-fabric.json] [--node $NODE_NAME] [--wait <seconds>]';

/** Template variables of a node: `{{podCIDR}}` etc. in any JSON string of the template. */
export function templateVars(node: KubeNode): Record<string, string> {
  const podCIDR = node.podCIDRs[0];
  const n = networkOf(parseCIDR(podCIDR)!);
  const fam = n.family;
  const nodeIP = node.internalIPs.find((ip) => ip.includes(':') === (fam === 6)) ?? node.internalIPs[0];
  if (!nodeIP) throw new Error(`node ${node.name} has no InternalIP`);
  return {
    nodeName: node.name,
    nodeIP,
    podCIDR,
    // the node's pod CIDR as a host-local range, for a range inside a larger subnet (ptp: subnet = clusterCIDR)
    podRangeStart: formatIP(fam, n.ip + 1n),
    podRangeEnd: formatIP(fam, fam === 4 ? lastOf(n) - 1n : lastOf(n)),
  };
}

/** Replace `{{name}}` in every string of a parsed JSON template; an unknown name is an error naming it. */
export function render(v: unknown, vars: Record<string, string>, where: string): unknown {
  if (typeof v === 'string') {
    return v.replace(/\{\{\s*(\w+)\s*\}\}/g, (_m, k: string) => {
      if (!(k in vars)) throw new Error(`${where}: unknown template variable {{${k}}} (known: ${Object.keys(vars).join(', ')})`);
      return vars[k];
    });
  }
  if (Array.isArray(v)) return v.map((x) => render(x, vars, where));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, render(x, vars, where)]));
  return v;
}

function readTemplate(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`template ${file}: ${(e as Error).message}`);
  }
}

/** Copy the executable (temp + rename: a running copy is never written into) and point the plugin links at it. */
export function installBinaries(exe: string, binDir: string): void {
  fs.mkdirSync(binDir, { recursive: true });
  const dest = path.join(binDir, 'tscni');
  const tmp = path.join(binDir, `.tscni.${process.pid}.tmp`);
  fs.copyFileSync(exe, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, dest);
  for (const name of PLUGIN_LINKS) {
    const link = path.join(binDir, `.${name}.${process.pid}.tmp`);
    fs.rmSync(link, { force: true });
    fs.symlinkSync('tscni', link);
    fs.renameSync(link, path.join(binDir, name));
  }
}

async function nodeWithPodCIDR(cfg: ApiConfig, o: InstallOptions): Promise<KubeNode> {
  const deadline = Date.now() + o.waitSeconds * 1000;
  for (let said = false; ; said = true) {
    let why: string;
    try {
      const n = await k8s().getNode(cfg, o.node);
      if (n.podCIDRs.length) return n;
      why = `node ${o.node} has no podCIDR yet (is the controller manager allocating node CIDRs?)`;
    } catch (e) {
      why = (e as Error).message;
    }
    if (Date.now() >= deadline) throw new Error(`${why}; gave up after ${o.waitSeconds}s`);
    if (!said) o.log(`${why}; waiting`);
    await new Promise((r) => setTimeout(r, o.pollMs ?? 2000));
  }
}

export async function install(o: InstallOptions, cfg: ApiConfig): Promise<{ vars: Record<string, string>; peers: number }> {
  const { fabricConfOf } = require('./fabric-cmd') as typeof import('./fabric-cmd');
  const listTpl = path.join(o.templates, `${o.mode}.conflist`);
  const fabricTpl = path.join(o.templates, `${o.mode}-fabric.conf`);
  const listRaw = readTemplate(listTpl);
  const fabricRaw = fs.existsSync(fabricTpl) ? readTemplate(fabricTpl) : undefined;

  if (o.binDir) {
    installBinaries(o.exe, o.binDir);
    o.log(`installed ${o.exe} as ${path.join(o.binDir, 'tscni')} with links ${PLUGIN_LINKS.join(', ')}`);
  }
  const node = await nodeWithPodCIDR(cfg, o);
  const vars = templateVars(node);
  const conflist = render(listRaw, vars, listTpl) as Record<string, unknown>;
  const fabric = fabricRaw ? (render(fabricRaw, vars, fabricTpl) as Record<string, unknown>) : conflist;
  // the same checks the plugin makes on ADD, before anything is written
  const conf = fabricConfOf(fabric, fabricRaw ? fabricTpl : listTpl);
  if (!conf.peersFile)
    throw new Error(`${fabricRaw ? fabricTpl : listTpl}: the fabric plugin needs a peersFile: the watcher writes the Node API's peers there`);

  const fam = (s: string) => (s.includes(':') ? 6 : 4);
  const { nodes } = await k8s().listNodes(cfg);
  const { peers, skipped } = k8s().nodesToPeers(nodes.values(), o.node, fam(conf.podCIDR), conf.nodeIP ? fam(conf.nodeIP) : fam(conf.podCIDR));
  for (const s of skipped) o.log(s);
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    k8s().writeFileAtomic(file, text);
  };
  write(conf.peersFile, k8s().peersFileText(peers));
  write(o.fabricConf, JSON.stringify(fabric, null, 2) + '\n');
  write(o.conflist, JSON.stringify(conflist, null, 2) + '\n');
  o.log(
    `node ${node.name}: podCIDR ${vars.podCIDR}, nodeIP ${vars.nodeIP}, ${peers.length} peer(s); wrote ${conf.peersFile}, ${o.fabricConf}, ${o.conflist} (${o.mode})`,
  );
  return { vars, peers: peers.length };
}

export async function k8sMain(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const o: InstallOptions = {
    mode: process.env.TSCNI_MODE ?? '',
    templates: '/etc/tscni',
    binDir: '/host/opt/cni/bin',
    conflist: '/etc/cni/net.d/10-tscni.conflist',
    fabricConf: '/etc/cni/tscni-fabric.json',
    node: process.env.NODE_NAME ?? '',
    exe: process.execPath,
    waitSeconds: 300,
    log: (l) => process.stderr.write(`tscni k8s: ${l}\n`),
  };
  const flags: Record<string, (v: string) => void> = {
    '--mode': (v) => (o.mode = v),
    '--templates': (v) => (o.templates = v),
    '--bin-dir': (v) => (o.binDir = v),
    '--conflist': (v) => (o.conflist = v),
    '--fabric-conf': (v) => (o.fabricConf = v),
    '--node': (v) => (o.node = v),
    '--wait': (v) => (o.waitSeconds = Number(v)),
  };
  for (let i = 0; i < rest.length; i++) {
    const set = flags[rest[i]];
    if (!set || i + 1 >= rest.length) {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    set(rest[++i]);
  }
  if (verb === 'run' && !rest.includes('--bin-dir')) o.binDir = '';
  if (!(verb === 'install' || verb === 'run') || !o.mode || !o.node || !(o.waitSeconds >= 0)) {
    process.stderr.write(`${USAGE}\n${!o.node ? 'NODE_NAME is not set and no --node given\n' : ''}`);
    return 2;
  }
  try {
    await install(o, k8s().inClusterConfig());
  } catch (e) {
    o.log((e as Error).message);
    return 1;
  }
  if (verb === 'install') return 0;
  const { fabricMain } = require('./fabric-cmd') as typeof import('./fabric-cmd');
  return fabricMain(['watch', '--kubernetes', '--conf', o.fabricConf]);
}
