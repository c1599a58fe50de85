// `tscni k8s install`: what the DaemonSet's init container does on each node, in TypeScript rather than
// shell+curl+jq (the image then needs nothing but this executable):
//   1. copy this executable to the host's CNI bin dir, with a `tscni-` link per plugin name (the reference
//      plugins' own names stay theirs: other networks on the node use them);
//   2. read this node (NODE_NAME) from the API until the controller manager has given it a podCIDR;
//   3. when the files in place were rendered for another podCIDR, give the old one back (k8s-node.ts);
//   4. write the peers file from the node list, then the fabric conf the watcher reads, then the conflist,
//      last, because its appearance is what makes the runtime report the network ready.
// `tscni k8s run`: the main container: steps 2-4 again (so a restart renders what the Node says now), then
// `tscni fabric watch --kubernetes`, which exits when this node's own podCIDR or InternalIP changes (a Node
// deleted and registered again), so the container restarts and renders the new one; with BGP routing
// (host-gw-bgp) also `tscni bgp run` in the same process.
// `tscni k8s probe live|ready`: the main container's probes. `tscni k8s uninstall`: tscni off the node.
import * as fs from 'fs';
import * as path from 'path';
import { NAME_PREFIX } from '../pkg/cni/names';
import { makeDirs } from '../pkg/files';
import { formatCIDR, formatIP, lastOf, networkOf, parseCIDR, type IPNet } from '../pkg/ipnet';
import type { ApiConfig, KubeNode } from '../pkg/fabric/k8s';

const k8s = () => require('../pkg/fabric/k8s') as typeof import('../pkg/fabric/k8s');
const node = () => require('./k8s-node') as typeof import('./k8s-node');

/** The names the kubelet's runtime calls us by: every plugin of plugins/main.ts, under our prefix. */
export const PLUGIN_LINKS = ['bridge', 'ptp', 'host-local', 'host-gw', 'vxlan', 'ipip'].map((n) => `${NAME_PREFIX}${n}`);

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
  /** the ConfigMap's clusterCIDR, for {{clusterCIDR}} */
  clusterCIDR?: string;
  /** the ConfigMap's bgpASN, for {{bgpASN}} (host-gw-bgp) */
  bgpASN?: number;
  exe: string;
  waitSeconds: number;
  /** between reads of a node still without podCIDR; default 2 s */
  pollMs?: number;
  log: (line: string) => void;
}

const USAGE =
  'usage: tscni k8s install|run --mode <host-gw|vxlan|ptp> [--templates /etc/tscni] [--bin-dir /host/opt/cni/bin (install; run: none)] ' +
  '[--conflist /etc/cni/net.d/10-tscni.conflist] [--fabric-conf /etc/cni/tscni-fabric.json] [--node $NODE_NAME] ' +
  '[--cluster-cidr $TSCNI_CLUSTER_CIDR] [--bgp-asn $TSCNI_BGP_ASN] [--wait <seconds>]\n' +
  '       tscni k8s probe live [--max-age <seconds, 600>] | probe ready [--conflist ...]\n' +
  '       tscni k8s uninstall [--bin-dir /host/opt/cni/bin] [--conflist ...] [--fabric-conf ...]';

/** Strings go anywhere in a template string; other values (lists, numbers) only as a whole string of their own. */
export type TemplateVars = Record<string, unknown>;

/**
 * Template variables of a node: `{{podCIDR}}` etc. in any JSON string of the template. The list ones stand for a
 * whole JSON value (`"podCIDR": "{{podCIDRs}}"`): every pod CIDR of the Node (dual stack: one per family), the
 * cluster CIDRs of those families (`clusterCIDR`: the ConfigMap's, comma-separated), and host-local range sets
 * of the node's pod CIDRs inside the cluster's (ptp).
 */
export function templateVars(node: KubeNode, clusterCIDR?: string, bgpASN?: number): TemplateVars {
  const nets = node.podCIDRs.map((c) => networkOf(parseCIDR(c)!));
  const fam = nets[0].family;
  const nodeIP = node.internalIPs.find((ip) => ip.includes(':') === (fam === 6)) ?? node.internalIPs[0];
  if (!nodeIP) throw new Error(`node ${node.name} has no InternalIP`);
  const clusters = (clusterCIDR ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const clusterOf = (f: number) => clusters.find((x) => parseCIDR(x)?.family === f);
  for (const x of clusters) if (!parseCIDR(x)) throw new Error(`clusterCIDR: ${JSON.stringify(x)} is not a CIDR`);
  const start = (n: IPNet) => formatIP(n.family, n.ip + 1n);
  // IPv4 leaves out the broadcast address
  const end = (n: IPNet) => formatIP(n.family, n.family === 4 ? lastOf(n) - 1n : lastOf(n));
  const vars: TemplateVars = {
    nodeName: node.name,
    nodeIP,
    podCIDR: node.podCIDRs[0],
    podCIDRs: node.podCIDRs,
    // the node's pod CIDR as a host-local range, for a range inside a larger subnet (ptp: subnet = clusterCIDR)
    podRangeStart: start(nets[0]),
    podRangeEnd: end(nets[0]),
    podRanges: nets.map((n) => [{ subnet: clusterOf(n.family) ?? formatCIDR(n), rangeStart: start(n), rangeEnd: end(n) }]),
  };
  if (clusters.length) {
    vars.clusterCIDR = clusterOf(fam) ?? clusters[0];
    vars.clusterCIDRs = nets.flatMap((n) => clusterOf(n.family) ?? []);
  }
  if (bgpASN !== undefined) vars.bgpASN = bgpASN;
  return vars;
}

/**
 * Replace `{{name}}` in every string of a parsed JSON template; a string that is just `{{name}}` of a list
 * variable becomes that list. An unknown name, or a list inside a longer string, is an error naming it.
 */
export function render(v: unknown, vars: TemplateVars, where: string): unknown {
  if (typeof v === 'string') {
    const whole = /^\{\{\s*(\w+)\s*\}\}$/.exec(v);
    if (whole && whole[1] in vars && typeof vars[whole[1]] !== 'string') return vars[whole[1]];
    return v.replace(/\{\{\s*(\w+)\s*\}\}/g, (_m, k: string) => {
      if (!(k in vars)) throw new Error(`${where}: unknown template variable {{${k}}} (known: ${Object.keys(vars).join(', ')})`);
      const x = vars[k];
      if (typeof x !== 'string') throw new Error(`${where}: {{${k}}} is not text: give it a whole JSON string of its own ("{{${k}}}")`);
      return x;
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
  makeDirs(binDir, '--bin-dir');
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

export async function install(o: InstallOptions, cfg: ApiConfig): Promise<{ vars: TemplateVars; peers: number }> {
  const { fabricConfOf } = require('./fabric-cmd') as typeof import('./fabric-cmd');
  const listTpl = path.join(o.templates, `${o.mode}.conflist`);
  const fabricTpl = path.join(o.templates, `${o.mode}-fabric.conf`);
  const listRaw = readTemplate(listTpl);
  const fabricRaw = fs.existsSync(fabricTpl) ? readTemplate(fabricTpl) : undefined;

  if (o.binDir) {
    installBinaries(o.exe, o.binDir);
    o.log(`installed ${o.exe} as ${path.join(o.binDir, 'tscni')} with links ${PLUGIN_LINKS.join(', ')}`);
  }
  const self = await nodeWithPodCIDR(cfg, o);
  const vars = templateVars(self, o.clusterCIDR, o.bgpASN);
  if (o.clusterCIDR && (vars.clusterCIDRs as string[]).length < self.podCIDRs.length) {
    throw new Error(
      `node ${self.name} has pod CIDRs ${self.podCIDRs.join(', ')}, but clusterCIDR ${o.clusterCIDR} has none of one of their families: give one per family, comma-separated`,
    );
  }
  const conflist = render(listRaw, vars, listTpl) as Record<string, unknown>;
  const fabric = fabricRaw ? (render(fabricRaw, vars, fabricTpl) as Record<string, unknown>) : conflist;
  // the same checks the plugin makes on ADD, before anything is written
  const conf = fabricConfOf(fabric, fabricRaw ? fabricTpl : listTpl);
  if (!conf.peersFile)
    throw new Error(`${fabricRaw ? fabricTpl : listTpl}: the fabric plugin needs a peersFile: the watcher writes the Node API's peers there`);

  const { nodes } = await k8s().listNodes(cfg);
  const { peers, skipped } = k8s().clusterPeers(nodes, o.node, conf);
  for (const s of skipped) o.log(s);
  const old = renderedNet(o);
  // each pod CIDR the files in place were rendered for that the Node no longer has (per family, dual stack)
  for (const gone of old?.podCIDRs.filter((c) => !conf.podCIDRs.includes(c)) ?? []) {
    const now = conf.podCIDRs.find((c) => c.includes(':') === gone.includes(':'));
    o.log(`node ${self.name}: podCIDR changed from ${gone} to ${now ?? 'none of its family'}: giving the old one back`);
    for (const l of await node().forgetPodCIDR({ ...old!, podCIDR: gone })) o.log(l);
  }
  const write = (file: string, key: string, text: string) => {
    makeDirs(path.dirname(file), key);
    k8s().writeFileAtomic(file, text);
  };
  write(conf.peersFile, 'peersFile', k8s().peersFileText(peers));
  write(o.fabricConf, '--fabric-conf', JSON.stringify(fabric, null, 2) + '\n');
  write(o.conflist, '--conflist', JSON.stringify(conflist, null, 2) + '\n');
  o.log(
    `node ${self.name}: podCIDR ${vars.podCIDR}, nodeIP ${vars.nodeIP}, ${peers.length} peer(s); wrote ${conf.peersFile}, ${o.fabricConf}, ${o.conflist} (${o.mode})`,
  );
  return { vars, peers: peers.length };
}

/** The pod network the files in place were rendered for; undefined when there are none (or they do not parse). */
function renderedNet(
  o: Pick<InstallOptions, 'conflist' | 'fabricConf'>,
): (import('./k8s-node').NodeNet & { podCIDRs: string[]; peersFile?: string; bgp?: import('./k8s-node').RenderedBgp }) | undefined {
  const { loadFabricConf } = require('./fabric-cmd') as typeof import('./fabric-cmd');
  try {
    const fabric = loadFabricConf(o.fabricConf);
    const list = JSON.parse(fs.readFileSync(o.conflist, 'utf8')) as Record<string, unknown>;
    const bgp = fabric.bgp && {
      clusterCIDRs: fabric.clusterCIDRs,
      dir: (require('../pkg/bgp/plan') as typeof import('../pkg/bgp/plan')).birdFiles(fabric).dir,
    };
    return { ...node().nodeNetOf(list, fabric.podCIDR), podCIDRs: fabric.podCIDRs, peersFile: fabric.peersFile, ...(bgp ? { bgp } : {}) };
  } catch {
    return undefined;
  }
}

/** `probe live`: the agent listed or heard from the API within maxAge. `probe ready`: the conflist is in place. */
export function probe(what: string, o: { conflist: string; maxAgeSeconds: number }, now = Date.now()): string | undefined {
  if (what === 'ready') {
    try {
      JSON.parse(fs.readFileSync(o.conflist, 'utf8'));
      return undefined;
    } catch (e) {
      return `${o.conflist}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
  }
  let mtime: number;
  try {
    mtime = fs.statSync(k8s().aliveFile()).mtimeMs;
  } catch {
    return `${k8s().aliveFile()}: the agent has not listed nodes yet`;
  }
  const age = (now - mtime) / 1000;
  return age > o.maxAgeSeconds ? `last good list or watch event ${age.toFixed(0)}s ago (more than ${o.maxAgeSeconds}s)` : undefined;
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
    clusterCIDR: process.env.TSCNI_CLUSTER_CIDR || undefined,
    bgpASN: process.env.TSCNI_BGP_ASN ? Number(process.env.TSCNI_BGP_ASN) : undefined,
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
    '--cluster-cidr': (v) => (o.clusterCIDR = v),
    '--bgp-asn': (v) => (o.bgpASN = Number(v)),
    '--wait': (v) => (o.waitSeconds = Number(v)),
    '--max-age': (v) => (maxAgeSeconds = Number(v)),
  };
  let maxAgeSeconds = 600;
  const probeWhat = verb === 'probe' ? rest.shift() : undefined;
  for (let i = 0; i < rest.length; i++) {
    const set = flags[rest[i]];
    if (!set || i + 1 >= rest.length) {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    set(rest[++i]);
  }
  if (verb === 'probe') {
    if (probeWhat !== 'live' && probeWhat !== 'ready') {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    const bad = probe(probeWhat, { conflist: o.conflist, maxAgeSeconds });
    if (bad) o.log(`probe ${probeWhat}: ${bad}`);
    return bad ? 1 : 0;
  }
  if (verb === 'uninstall') {
    const net = renderedNet(o);
    const files = [o.conflist, o.fabricConf, ...(net?.peersFile ? [net.peersFile] : []), k8s().aliveFile()];
    try {
      for (const l of await node().uninstallNode({ net, files, binDir: o.binDir })) o.log(`removed ${l}`);
    } catch (e) {
      o.log(`uninstall: ${(e as Error).message}`);
      return 1;
    }
    return 0;
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
  const { fabricMain, loadFabricConf } = require('./fabric-cmd') as typeof import('./fabric-cmd');
  // BGP routing: BIRD announces and learns; the watcher keeps the peers file it follows (the full mesh)
  if (loadFabricConf(o.fabricConf).bgp) void (require('./bgp-cmd') as typeof import('./bgp-cmd')).bgpMain(['run', '--conf', o.fabricConf]);
  return fabricMain(['watch', '--kubernetes', '--conf', o.fabricConf]);
}
