// Peers from the Kubernetes Node API: every node's pod CIDR (spec.podCIDRs) and InternalIP, listed then watched
// with the pod's service-account token over Node's own https. No client library: it would cost start-up and weight
// for the two requests we make (GET /api/v1/nodes and its watch).
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as path from 'path';
import { canonicalIP, formatCIDR, networkOf, parseCIDR, type Family } from '../ipnet';
import { runDirs } from '../rundir';
import type { Peer } from './types';

export const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** What the fabric needs of a Node object. */
export interface KubeNode {
  name: string;
  /** spec.podCIDRs (or spec.podCIDR), as networks */
  podCIDRs: string[];
  /** status.addresses of type InternalIP */
  internalIPs: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

/** A Node object (as the API returns it) reduced to name, pod CIDRs and InternalIPs; undefined without a name. */
export function parseNode(o: unknown): KubeNode | undefined {
  if (!isObj(o) || !isObj(o.metadata) || typeof o.metadata.name !== 'string') return undefined;
  const spec = isObj(o.spec) ? o.spec : {};
  const status = isObj(o.status) ? o.status : {};
  const raw = Array.isArray(spec.podCIDRs) && spec.podCIDRs.length ? spec.podCIDRs : [spec.podCIDR];
  const podCIDRs = raw.flatMap((c) => {
    const n = typeof c === 'string' ? parseCIDR(c) : undefined;
    return n ? [formatCIDR(networkOf(n))] : [];
  });
  const internalIPs = (Array.isArray(status.addresses) ? status.addresses : []).flatMap((a) => {
    const ip = isObj(a) && a.type === 'InternalIP' && typeof a.address === 'string' ? canonicalIP(a.address) : undefined;
    return ip ? [ip] : [];
  });
  return { name: o.metadata.name, podCIDRs, internalIPs };
}

const familyOf = (s: string): Family => (s.includes(':') ? 6 : 4);

/** The node's pod CIDR and InternalIP of the wanted families, or why it has none. */
export function nodeAddressing(n: KubeNode, podFamily: Family, ipFamily: Family): { podCIDR: string; nodeIP: string } | { why: string } {
  const podCIDR = n.podCIDRs.find((c) => familyOf(c) === podFamily);
  if (!podCIDR) return { why: n.podCIDRs.length ? `has no IPv${podFamily} podCIDR (${n.podCIDRs.join(', ')})` : 'has no podCIDR yet' };
  const nodeIP = n.internalIPs.find((ip) => familyOf(ip) === ipFamily);
  if (!nodeIP) return { why: `has no IPv${ipFamily} InternalIP${n.internalIPs.length ? ` (${n.internalIPs.join(', ')})` : ''}` };
  return { podCIDR, nodeIP };
}

/**
 * How this node's own entry differs from the conf rendered for it: `rerender` when it now has another pod CIDR
 * or InternalIP (a Node deleted and registered again gets a new CIDR from the controller manager, while the
 * DaemonSet pod may live on), `warning` for what a new render could not fix (not listed, no podCIDR yet).
 */
export function selfDrift(
  nodes: Map<string, KubeNode>,
  self: string,
  conf: { podCIDR: string; podCIDRs?: string[]; nodeIP?: string },
): { rerender?: string; warning?: string } {
  const me = nodes.get(self);
  const ipFamily = conf.nodeIP ? familyOf(conf.nodeIP) : familyOf(conf.podCIDR);
  // each pod family the conf was rendered with (dual stack: both)
  for (const cidr of conf.podCIDRs ?? [conf.podCIDR]) {
    const mine = me ? nodeAddressing(me, familyOf(cidr), ipFamily) : { why: 'is not in the node list' };
    if ('why' in mine) return { warning: `node ${self} ${mine.why}` };
    if (mine.podCIDR !== cidr) return { rerender: `node ${self} has podCIDR ${mine.podCIDR} but the conf says ${cidr}` };
    if (conf.nodeIP && mine.nodeIP !== conf.nodeIP) return { rerender: `node ${self} has InternalIP ${mine.nodeIP} but the conf says ${conf.nodeIP}` };
  }
  return {};
}

export interface NodePeers {
  peers: Peer[];
  /** one line per node left out, for the log */
  skipped: string[];
}

/**
 * The peer set: every node but `self` (recognised by name) with a pod CIDR of the pod family and an InternalIP of
 * the underlay family; sorted by name so the same cluster always gives the same set.
 */
export function nodesToPeers(nodes: Iterable<KubeNode>, self: string, podFamily: Family, ipFamily: Family): NodePeers {
  const out: NodePeers = { peers: [], skipped: [] };
  for (const n of [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (n.name === self) continue;
    const a = nodeAddressing(n, podFamily, ipFamily);
    if ('why' in a) out.skipped.push(`node ${n.name} ${a.why}: skipped`);
    else out.peers.push({ nodeIP: a.nodeIP, podCIDR: a.podCIDR, key: `node ${n.name}` });
  }
  return out;
}

/**
 * The peer set of a conf with one pod CIDR per family: a peer entry per node and pod family. Its address is of
 * the underlay's family (a tunnel carries every pod family), or of the pod family when the mode routes via the
 * peer itself (host-gw: no IPv6 route takes an IPv4 next hop).
 */
export function clusterPeers(
  nodes: Map<string, KubeNode>,
  self: string,
  conf: { podCIDR: string; podCIDRs?: string[]; nodeIP?: string; mode: { nextHopInPodFamily?: boolean } },
): NodePeers {
  const underlay = conf.nodeIP ? familyOf(conf.nodeIP) : familyOf(conf.podCIDR);
  const out: NodePeers = { peers: [], skipped: [] };
  for (const cidr of conf.podCIDRs ?? [conf.podCIDR]) {
    const pod = familyOf(cidr);
    const r = nodesToPeers(nodes.values(), self, pod, conf.mode.nextHopInPodFamily ? pod : underlay);
    out.peers.push(...r.peers);
    out.skipped.push(...r.skipped);
  }
  return out;
}

/** The peers file the plugin re-reads on every ADD (config.ts parsePeersFile reads it back). */
export function peersFileText(peers: Peer[]): string {
  return JSON.stringify({ peers: peers.map((p) => ({ node: p.key.replace(/^node /, ''), nodeIP: p.nodeIP, podCIDR: p.podCIDR })) }, null, 1) + '\n';
}

export { writeFileAtomic } from '../rundir';

/** Touched by the agent after each good list or watch event; `tscni k8s probe live` reads its age. */
export function aliveFile(): string {
  return path.join(runDirs()[0], 'k8s-alive');
}

// ---- the API client ----

export interface ApiConfig {
  /** https://host:port (http:// only for tests against a local fake) */
  server: string;
  /** read on every request: projected service-account tokens are rotated by the kubelet */
  token?: () => string | undefined;
  ca?: Buffer;
}

/**
 * The in-cluster config: KUBERNETES_SERVICE_HOST/PORT, the service account's token and CA. TSCNI_SERVICEACCOUNT_DIR
 * points at another token and ca.crt (an agent run outside a pod, as the netns e2e does).
 */
export function inClusterConfig(env: NodeJS.ProcessEnv = process.env, dir = env.TSCNI_SERVICEACCOUNT_DIR || SA_DIR): ApiConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new Error('KUBERNETES_SERVICE_HOST is not set: not running in a Kubernetes pod');
  let ca: Buffer;
  try {
    ca = fs.readFileSync(path.join(dir, 'ca.crt'));
  } catch (e) {
    throw new Error(`cannot read the service account's CA ${path.join(dir, 'ca.crt')}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  const tokenFile = path.join(dir, 'token');
  const token = () => {
    try {
      return fs.readFileSync(tokenFile, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, token, ca };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    msg: string,
  ) {
    super(msg);
  }
}

interface Send {
  method: 'PATCH';
  contentType: string;
  body: string;
}

/** One request (a GET unless `send`); resolves with the response once its status is 200, else rejects with the API's Status message. */
function request(cfg: ApiConfig, p: string, signal?: AbortSignal, idleMs?: number, send?: Send): Promise<http.IncomingMessage> {
  const url = new URL(p, cfg.server);
  const token = cfg.token?.();
  const mod = url.protocol === 'http:' ? http : https;
  const headers: http.OutgoingHttpHeaders = { Accept: 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  if (send) Object.assign(headers, { 'Content-Type': send.contentType, 'Content-Length': Buffer.byteLength(send.body) });
  const method = send?.method ?? 'GET';
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method, ca: cfg.ca, headers, signal }, (res) => {
      if (res.statusCode === 200) return resolve(res);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c.length < 4096 ? c : ''));
      res.on('end', () => {
        let msg = body.trim();
        try {
          msg = (JSON.parse(body) as { message?: string }).message ?? msg;
        } catch {
          // not a Status object: keep the text
        }
        reject(new ApiError(res.statusCode ?? 0, `${method} ${url.pathname}${url.search}: ${res.statusCode} ${msg}`.trim()));
      });
    });
    // a watch on a dead connection never ends by itself: give up after this much silence
    if (idleMs) req.setTimeout(idleMs, () => req.destroy(new Error(`${method} ${url.pathname}: no data for ${idleMs / 1000}s`)));
    req.on('error', reject);
    req.end(send?.body);
  });
}

/** How long a non-watch request may take, answer and body included: a half-open connection ends no request. */
export const REQUEST_TIMEOUT_MS = 30_000;

export async function getJSON(cfg: ApiConfig, p: string, signal?: AbortSignal, timeoutMs = REQUEST_TIMEOUT_MS, send?: Send): Promise<unknown> {
  const deadline = AbortSignal.timeout(timeoutMs);
  try {
    const res = await request(cfg, p, signal ? AbortSignal.any([signal, deadline]) : deadline, undefined, send);
    let body = '';
    res.setEncoding('utf8');
    for await (const chunk of res) body += chunk;
    return JSON.parse(body);
  } catch (e) {
    if (deadline.aborted && !signal?.aborted) throw new Error(`${send?.method ?? 'GET'} ${p}: no answer within ${timeoutMs / 1000} s`);
    throw e;
  }
}

export async function getNode(cfg: ApiConfig, name: string, signal?: AbortSignal): Promise<KubeNode> {
  const n = parseNode(await getJSON(cfg, `/api/v1/nodes/${encodeURIComponent(name)}`, signal));
  if (!n) throw new Error(`GET /api/v1/nodes/${name}: not a Node object`);
  return n;
}

/**
 * The condition the agent sets once the node's fabric is programmed: clouds (and some installers) start nodes
 * with NetworkUnavailable=True, a taint nothing else removes.
 */
export function networkAvailablePatch(now: Date): string {
  const t = now.toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = {
    type: 'NetworkUnavailable',
    status: 'False',
    reason: 'TscniIsUp',
    message: 'tscni programmed the pod network of this node',
    lastTransitionTime: t,
    lastHeartbeatTime: t,
  };
  return JSON.stringify({ status: { conditions: [condition] } });
}

/** PATCH nodes/<name>/status with NetworkUnavailable=False (a strategic merge: other conditions stay). */
export async function markNetworkAvailable(cfg: ApiConfig, node: string, now = new Date()): Promise<void> {
  const p = `/api/v1/nodes/${encodeURIComponent(node)}/status`;
  await getJSON(cfg, p, undefined, REQUEST_TIMEOUT_MS, {
    method: 'PATCH',
    contentType: 'application/strategic-merge-patch+json',
    body: networkAvailablePatch(now),
  });
}

/**
 * GET /api/v1/nodes: the nodes and the list's resourceVersion to watch from. resourceVersion=0 lets the API
 * server answer from its watch cache instead of a quorum read of etcd: every node's agent lists after a restart.
 */
export async function listNodes(cfg: ApiConfig, signal?: AbortSignal): Promise<{ nodes: Map<string, KubeNode>; resourceVersion: string }> {
  const list = (await getJSON(cfg, '/api/v1/nodes?resourceVersion=0', signal)) as Obj;
  const nodes = new Map<string, KubeNode>();
  for (const item of Array.isArray(list.items) ? list.items : []) {
    const n = parseNode(item);
    if (n) nodes.set(n.name, n);
  }
  const rv = isObj(list.metadata) ? list.metadata.resourceVersion : undefined;
  if (typeof rv !== 'string') throw new Error('GET /api/v1/nodes: the list has no metadata.resourceVersion');
  return { nodes, resourceVersion: rv };
}

/**
 * Apply one watch event to the node map. Returns the event's resourceVersion, 'gone' for a 410 (history compacted:
 * list again), or throws for another ERROR event.
 */
export function applyWatchEvent(nodes: Map<string, KubeNode>, ev: unknown): { rv?: string; changed: boolean } | 'gone' {
  if (!isObj(ev) || typeof ev.type !== 'string') throw new Error(`watch: malformed event ${JSON.stringify(ev).slice(0, 200)}`);
  const obj = isObj(ev.object) ? ev.object : {};
  if (ev.type === 'ERROR') {
    if (obj.code === 410) return 'gone';
    throw new ApiError(typeof obj.code === 'number' ? obj.code : 0, `watch: ERROR ${obj.code ?? ''} ${obj.message ?? JSON.stringify(obj).slice(0, 200)}`);
  }
  const rv = isObj(obj.metadata) && typeof obj.metadata.resourceVersion === 'string' ? obj.metadata.resourceVersion : undefined;
  if (ev.type === 'BOOKMARK') return { rv, changed: false };
  const n = parseNode(obj);
  if (!n) throw new Error(`watch: ${ev.type} event without a node name`);
  if (ev.type === 'DELETED') nodes.delete(n.name);
  else if (ev.type === 'ADDED' || ev.type === 'MODIFIED') nodes.set(n.name, n);
  else return { rv, changed: false };
  return { rv, changed: true };
}

export interface NodeWatchOptions {
  signal: AbortSignal;
  log: (line: string) => void;
  /** the watch asks the server to end it after this long (then it is resumed from the last resourceVersion) */
  watchSeconds?: number;
  /** backoff after a failed list or a dropped watch, doubling from min to max */
  backoffMs?: { min: number; max: number };
  /** called after each good list, watch event or normal end of a watch: what the liveness probe reads */
  onAlive?: () => void;
  /** in [0, 1): the jitter of each backoff wait (default Math.random) */
  random?: () => number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });

/**
 * List, then watch from the list's resourceVersion; call onNodes with the whole node map after the list and after
 * every change. A watch the server ends normally is resumed from the last resourceVersion; 410 Gone lists again
 * at once; a failed request or a dropped connection lists again after a backoff. The backoff doubles, with jitter
 * (every node's agent fails at once when the API server restarts), and starts over only after a productive watch:
 * a list that succeeds before a watch that fails at once keeps backing off. Returns when signal aborts.
 */
export async function watchNodes(cfg: ApiConfig, onNodes: (nodes: Map<string, KubeNode>) => void, o: NodeWatchOptions): Promise<void> {
  const { min, max } = o.backoffMs ?? { min: 1000, max: 30000 };
  const watchSeconds = o.watchSeconds ?? 300;
  const random = o.random ?? Math.random;
  const alive = o.onAlive ?? (() => undefined);
  let delay = min;
  let relist = true;
  let nodes = new Map<string, KubeNode>();
  let rv = '';
  while (!o.signal.aborted) {
    try {
      if (relist) {
        ({ nodes, resourceVersion: rv } = await listNodes(cfg, o.signal));
        relist = false;
        alive();
        onNodes(nodes);
      }
      const q = `/api/v1/nodes?watch=1&allowWatchBookmarks=true&timeoutSeconds=${watchSeconds}&resourceVersion=${encodeURIComponent(rv)}`;
      const started = Date.now();
      const res = await request(cfg, q, o.signal, (watchSeconds + 30) * 1000);
      let buf = '';
      res.setEncoding('utf8');
      for await (const chunk of res as AsyncIterable<string>) {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const r = applyWatchEvent(nodes, JSON.parse(line));
          delay = min;
          alive();
          if (r === 'gone') {
            o.log('node watch: resourceVersion too old (410 Gone): listing again');
            relist = true;
            res.destroy();
            break;
          }
          if (r.rv) rv = r.rv;
          if (r.changed) onNodes(nodes);
        }
        if (relist) break;
      }
      // ended by the server (timeoutSeconds): resume from rv, but never spin on a server that ends watches at once
      if (!relist && Date.now() - started < 1000) await sleep(min, o.signal);
      else if (!relist) {
        delay = min;
        alive();
      }
    } catch (e) {
      if (o.signal.aborted) break;
      // half the delay, plus up to as much again at random
      const wait = Math.round(delay / 2 + (random() * delay) / 2);
      o.log(`node ${relist ? 'list' : 'watch'} failed: ${(e as Error).message}; listing again in ${wait / 1000}s`);
      relist = true;
      await sleep(wait, o.signal);
      delay = Math.min(delay * 2, max);
    }
  }
}
