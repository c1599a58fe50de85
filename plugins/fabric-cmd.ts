// `tscni fabric sync --conf <file>`: reconcile this node's fabric now.
// `tscni fabric watch --conf <file> [--interval <sec>]`: re-sync when the peers file changes, and every interval.
// `tscni fabric watch --conf <file> --kubernetes`: peers from the Kubernetes Node API, written to the conf's
// peersFile (which the plugin re-reads on every ADD) and synced on every change of the peer set.
import * as fs from 'fs';
import * as path from 'path';
import { CniError } from '../pkg/cni/errors';
import { coalesced } from '../pkg/coalesce';
import { parseFabricConf, syncFabric, type FabricConf } from '../pkg/fabric';
import { FABRIC_MODES, fabricModeOf } from './fabric-modes';
import { watchFiles } from './watch-files';

const MODES = Object.keys(FABRIC_MODES);
const USAGE = 'usage: tscni fabric sync|watch --conf <conflist or conf file> [--interval <seconds>] [--kubernetes (watch only)]';

/** The fabric plugin's config from a .conf or a .conflist (its first host-gw/vxlan/ipip plugin). */
export function loadFabricConf(file: string): FabricConf {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return fabricConfOf(raw, file);
}

/** The same from an already parsed .conf or .conflist; `file` names it in errors. */
export function fabricConfOf(raw: Record<string, unknown>, file: string): FabricConf {
  if (Array.isArray(raw.plugins)) {
    const p = (raw.plugins as Record<string, unknown>[]).find((x) => fabricModeOf(x?.type));
    if (!p) throw new Error(`${file}: no ${MODES.join('/')} plugin in its plugins list`);
    raw = p;
  }
  const mode = fabricModeOf(raw.type);
  if (!mode) throw new Error(`${file}: type ${JSON.stringify(raw.type)} is not one of ${MODES.join(', ')}`);
  return parseFabricConf(raw, mode);
}

/** A warning per peer left out, said again only when that set changed: agents sync every interval. */
export function leftOutWarner(log: (line: string) => void): (lines: string[]) => void {
  let said: string | undefined;
  return (lines) => {
    const key = lines.join('\n');
    if (key === said) return;
    said = key;
    for (const l of lines) log(`warning: ${l}`);
  };
}

/** One reconcile, with a line of what it did; peers left out are named on stderr (by `warn`, in a watcher). */
async function syncOnce(file: string, warn = leftOutWarner(log)): Promise<void> {
  const t0 = process.hrtime.bigint();
  const conf = loadFabricConf(file);
  const { desired, report } = await syncFabric(conf);
  const direct = desired.paths.filter((p) => p.via === 'direct').length;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(
    `fabric ${desired.mode}: ${desired.paths.length} peer(s) (${direct} direct, ${desired.paths.length - direct} tunnelled), mtu ${desired.mtu}, ` +
      `${report.changed ? `${report.changed} change(s)` : 'unchanged'}${report.leftOut.length ? `, ${report.leftOut.length} left out` : ''} in ${ms.toFixed(0)} ms\n`,
  );
  warn(report.leftOut);
}

function fail(e: unknown): void {
  const msg = e instanceof CniError || e instanceof Error ? e.message : String(e);
  process.stderr.write(`tscni fabric: ${msg}\n`);
}

export async function fabricMain(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  let file: string | undefined;
  let interval = 60;
  let kubernetes = false;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--conf') file = rest[++i];
    else if (rest[i] === '--interval') interval = Number(rest[++i]);
    else if (rest[i] === '--kubernetes' && verb === 'watch') kubernetes = true;
    else {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
  }
  if (!file || !(verb === 'sync' || verb === 'watch') || !(interval > 0)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  if (verb === 'sync') {
    try {
      await syncOnce(file);
      return 0;
    } catch (e) {
      fail(e);
      return 1;
    }
  }
  return watch(file, interval, kubernetes);
}

function log(line: string): void {
  process.stderr.write(`tscni fabric: ${line}\n`);
}

/** `watch --kubernetes` exits with this when this node's own podCIDR or InternalIP changed: re-render, then watch. */
export const EXIT_RERENDER = 3;

/**
 * Peers from the Node API: this node (env NODE_NAME, from the downward API) is skipped by name; every change of
 * the derived peer set rewrites the peers file and syncs. When this node itself no longer matches the conf,
 * `rerender` is called (and nothing synced: the conf is stale). After the first good sync, the Node's
 * NetworkUnavailable condition is set to False (`afterSync` gets that step). Returns a stop function.
 */
function watchKubernetes(conf: FabricConf, peersFile: string, sync: () => void, rerender: () => void, afterSync: Array<() => Promise<void>>): () => void {
  const k8s = require('../pkg/fabric/k8s') as typeof import('../pkg/fabric/k8s');
  const self = process.env.NODE_NAME;
  if (!self) throw new Error('--kubernetes: NODE_NAME is not set (give it from the downward API: fieldRef spec.nodeName)');
  const cfg = k8s.inClusterConfig();
  let last = '';
  let warned = '';
  const ac = new AbortController();
  let marked = false;
  afterSync.push(async () => {
    if (marked) return;
    try {
      await k8s.markNetworkAvailable(cfg, self);
      marked = true;
      log(`node ${self}: NetworkUnavailable set to False`);
    } catch (e) {
      log(`cannot set NetworkUnavailable=False on node ${self} (tried again after the next sync): ${(e as Error).message}`);
    }
  });
  let touched = 0;
  const alive = () => {
    // the liveness probe reads the file's age: a write every few seconds at most
    if (Date.now() - touched < 5000) return;
    touched = Date.now();
    try {
      fs.mkdirSync(path.dirname(k8s.aliveFile()), { recursive: true, mode: 0o700 });
      k8s.writeFileAtomic(k8s.aliveFile(), `${new Date(touched).toISOString()}\n`);
    } catch (e) {
      log(`cannot write ${k8s.aliveFile()}: ${(e as Error).message}`);
    }
  };
  void k8s.watchNodes(
    cfg,
    (nodes) => {
      // this node's own entry should say what the conf says (`tscni k8s` rendered it from there)
      const drift = k8s.selfDrift(nodes, self, conf);
      if (drift.rerender) {
        log(`${drift.rerender}: exiting with ${EXIT_RERENDER} so that \`tscni k8s run\` renders this node's conf again`);
        rerender();
        return;
      }
      const mismatch = drift.warning ?? '';
      if (mismatch && mismatch !== warned) log(`warning: ${mismatch}`);
      warned = mismatch;
      const { peers, skipped } = k8s.clusterPeers(nodes, self, conf);
      const key = JSON.stringify([peers, skipped]);
      if (key === last) return;
      last = key;
      for (const s of skipped) log(s);
      log(`Node API: ${peers.length} peer(s): ${peers.map((p) => `${p.key.slice(5)} ${p.podCIDR} via ${p.nodeIP}`).join(', ') || 'none'}`);
      try {
        k8s.writeFileAtomic(peersFile, k8s.peersFileText(peers));
      } catch (e) {
        log(`cannot write peersFile ${peersFile}: ${(e as Error).message}`);
        return;
      }
      sync();
    },
    { signal: ac.signal, log, onAlive: alive },
  );
  return () => ac.abort();
}

/**
 * Sync now, on every change of the peers file (or the conf file), and every `interval` seconds; stop on SIGTERM/SIGINT.
 * With `kubernetes`, the peers file is ours to write from the Node API instead of a file to follow.
 */
async function watch(file: string, interval: number, kubernetes: boolean): Promise<number> {
  const warn = leftOutWarner(log);
  const afterSync: Array<() => Promise<void>> = [];
  const sync = coalesced(async () => {
    const good = await syncOnce(file, warn).then(
      () => true,
      (e) => (fail(e), false),
    );
    if (good) for (const step of afterSync) await step();
  });
  let peersFile: string | undefined;
  let stopKube: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let early: number | undefined; // a stop asked for before the promise below exists
  let stopWith = (code: number) => void (early = code);
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void sync(), 50);
  };
  try {
    const conf = loadFabricConf(file);
    peersFile = conf.peersFile;
    if (kubernetes) {
      // the plugin re-reads peersFile on every ADD: peers kept only in memory here would be undone by the next pod
      if (!peersFile) throw new Error(`--kubernetes: ${file} has no peersFile: set one; the Node API's peers are written there for the plugin's ADDs`);
      stopKube = watchKubernetes(conf, peersFile, soon, () => stopWith(EXIT_RERENDER), afterSync);
    }
  } catch (e) {
    fail(e);
    return 1;
  }
  const unwatch = watchFiles([file, kubernetes ? undefined : peersFile], soon);
  // with the Node API, the first sync follows the first list (the file may still hold an older set)
  if (!kubernetes) await sync();
  const periodic = setInterval(() => void sync(), interval * 1000);
  return new Promise((resolve) => {
    stopWith = (code) => {
      unwatch();
      stopKube?.();
      clearInterval(periodic);
      clearTimeout(timer);
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve(code);
    };
    const stop = () => stopWith(0);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    if (early !== undefined) stopWith(early);
  });
}
