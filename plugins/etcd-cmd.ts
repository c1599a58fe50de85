// `tscni etcd run --conf <agent.json>`: cluster mode without Kubernetes. The node agent leases a subnet of the
// cluster CIDR in etcd (a key created only if absent, bound to a lease it keeps alive), registers its node IP
// there, renders this node's conflist from a template and the peers file from every other node's record, and
// reconciles the fabric; it watches the prefix and does it again within a second of a change. The plugins read
// only the local files, so etcd being down never breaks a pod. Only this command loads the etcd3 client.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import { decodeRecord, encodeRecord, peersOf, subnetKey, subnetsPrefix, type NodeRecord } from '../pkg/cluster/records';
import { candidates, subnetPlan, type SubnetPlan } from '../pkg/cluster/subnets';
import { syncFabric } from '../pkg/fabric';
import { coalesced } from '../pkg/coalesce';
import { makeDirs } from '../pkg/files';
import { peersFileText } from '../pkg/fabric/k8s';
import { writeFileAtomic } from '../pkg/rundir';
import { readLinks } from '../pkg/ip/ops';
import { defaultRouteInterface } from '../pkg/ip/sysfs';
import { sha256 } from '../pkg/sha256';
import { fabricConfOf } from './fabric-cmd';
import { render } from './k8s-cmd';

const USAGE = 'usage: tscni etcd run --conf <agent config, JSON>';

export interface AgentConf {
  endpoints: string[];
  prefix: string;
  tls?: { ca: string; cert?: string; key?: string };
  clusterCIDR: string;
  subnetLen: number;
  /** seconds; the lease's time to live: a node gone this long loses its subnet and its peers' routes */
  leaseTTL: number;
  nodeName: string;
  nodeIP?: string;
  /** conflist template: {{podCIDR}}, {{nodeIP}}, {{nodeName}}, {{clusterCIDR}}, {{peersFile}} in its strings */
  template: string;
  conflist: string;
  peersFile: string;
  /** the subnet this node held, kept across restarts (flannel's subnet.env) */
  stateFile: string;
  /** how long the first contact with etcd may take before the agent gives up, seconds */
  waitSeconds: number;
  /** a full re-list and reconcile at least this often, seconds */
  resyncSeconds: number;
}

function log(line: string): void {
  process.stderr.write(`tscni etcd: ${line}\n`);
}

/** The agent's config file, checked; every problem names its key. */
export function parseAgentConf(text: string, file: string): AgentConf {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: not JSON: ${(e as Error).message}`);
  }
  const bad = (k: string, why: string) => new Error(`${file}: ${k}: ${why}`);
  const str = (k: string, def?: string): string => {
    const v = o[k] ?? def;
    if (typeof v !== 'string' || !v) throw bad(k, 'must be a non-empty string');
    return v;
  };
  const abs = (k: string, def?: string): string => {
    const v = str(k, def);
    if (!path.isAbsolute(v)) throw bad(k, `${v} is not an absolute path`);
    return v;
  };
  const num = (k: string, def: number): number => {
    const v = o[k] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw bad(k, 'must be a positive number');
    return v;
  };
  const endpoints = o.endpoints;
  if (!Array.isArray(endpoints) || !endpoints.length || !endpoints.every((e) => typeof e === 'string' && /^https?:\/\//.test(e))) {
    throw bad('endpoints', 'must be a list of http(s)://host:port');
  }
  let tls: AgentConf['tls'];
  if (o.tls !== undefined) {
    const t = o.tls as Record<string, unknown>;
    if (!t || typeof t !== 'object' || typeof t.ca !== 'string') throw bad('tls', 'must be {"ca": file, "cert": file, "key": file}');
    tls = { ca: t.ca, cert: typeof t.cert === 'string' ? t.cert : undefined, key: typeof t.key === 'string' ? t.key : undefined };
    if (!!tls.cert !== !!tls.key) throw bad('tls', 'cert and key go together');
  }
  const conf: AgentConf = {
    endpoints: endpoints as string[],
    prefix: str('prefix', '/tscni'),
    tls,
    clusterCIDR: str('clusterCIDR'),
    subnetLen: num('subnetLen', 24),
    leaseTTL: num('leaseTTL', 60),
    nodeName: str('nodeName', os.hostname()),
    nodeIP: o.nodeIP === undefined ? undefined : str('nodeIP'),
    template: abs('template'),
    conflist: abs('conflist'),
    peersFile: abs('peersFile'),
    stateFile: abs('stateFile', '/var/lib/tscni/etcd-subnet'),
    waitSeconds: num('waitSeconds', 60),
    resyncSeconds: num('resyncSeconds', 60),
  };
  try {
    subnetPlan(conf.clusterCIDR, conf.subnetLen);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return conf;
}

/** Read a TLS file, naming it when it is missing. */
function tlsFile(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`tls.${what}: ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function connect(conf: AgentConf): Etcd3 {
  const { Etcd3: Client } = require('etcd3') as typeof import('etcd3');
  const credentials = conf.tls
    ? {
        rootCertificate: tlsFile(conf.tls.ca, 'ca'),
        ...(conf.tls.cert ? { certChain: tlsFile(conf.tls.cert, 'cert'), privateKey: tlsFile(conf.tls.key!, 'key') } : {}),
      }
    : undefined;
  return new Client({ hosts: conf.endpoints, credentials, dialTimeout: 3000 });
}

/** This node's IP: the config's, else the first global address of the default-route interface. */
async function nodeIPOf(conf: AgentConf): Promise<string> {
  if (conf.nodeIP) return conf.nodeIP;
  const dev = defaultRouteInterface();
  const addr = dev ? (await readLinks(dev))[0]?.addr_info?.find((a) => a.scope === 'global') : undefined;
  if (!addr) throw new Error(`nodeIP: not set, and ${dev ? `${dev} has no global address` : 'this node has no default route'}`);
  return addr.local;
}

async function listRecords(client: Etcd3, conf: AgentConf, skipped: Set<string>): Promise<NodeRecord[]> {
  const all = await client.getAll().prefix(subnetsPrefix(conf.prefix)).strings();
  const out: NodeRecord[] = [];
  for (const [key, value] of Object.entries(all)) {
    const r = decodeRecord(conf.prefix, key, value);
    if ('skip' in r) {
      if (!skipped.has(r.skip)) log(`skipped a record: ${r.skip}`);
      skipped.add(r.skip);
    } else {
      out.push(r);
    }
  }
  return out;
}

/**
 * Lease a subnet: the one this node held (its key absent, or still ours), else a free one, each by a transaction
 * that creates the key only if it is absent. Exhaustion is an error.
 */
async function lease(
  client: Etcd3,
  conf: AgentConf,
  plan: SubnetPlan,
  me: { node: string; nodeIP: string },
  previous?: string,
): Promise<{ subnet: string; lease: Lease }> {
  const l = client.lease(conf.leaseTTL, { autoKeepAlive: true });
  await l.grant();
  const taken = new Set((await listRecords(client, conf, new Set())).map((r) => r.podCIDR));
  const seed = sha256(me.node).readUInt32BE(0);
  for (const subnet of candidates(plan, taken, seed, previous)) {
    const key = subnetKey(conf.prefix, subnet);
    const value = encodeRecord({ ...me, podCIDR: subnet });
    const created = await client.if(key, 'Create', '==', 0).then(l.put(key).value(value)).commit();
    if (created.succeeded) return { subnet, lease: l };
    // still ours from before a restart: take it over with the new lease
    const held = await client.get(key).string();
    const rec = held ? decodeRecord(conf.prefix, key, held) : undefined;
    if (rec && !('skip' in rec) && rec.node === me.node) {
      const mine = await client.if(key, 'Value', '==', held!).then(l.put(key).value(value)).commit();
      if (mine.succeeded) return { subnet, lease: l };
    }
  }
  await l.revoke().catch(() => undefined);
  throw new Error(`clusterCIDR ${conf.clusterCIDR} has no free /${conf.subnetLen} left`);
}

/**
 * Retry `f` with a growing pause until it succeeds or `seconds` pass; the last error then. An attempt still
 * running when the time is up is given up (the client's own retries can outlast it).
 */
async function withRetry<T>(what: string, seconds: number, f: () => Promise<T>): Promise<T> {
  const end = Date.now() + seconds * 1000;
  for (let pause = 250; ; pause = Math.min(pause * 2, 5000)) {
    let timer: NodeJS.Timeout | undefined;
    const outOfTime = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${seconds} s`)), Math.max(end - Date.now(), 0));
    });
    try {
      return await Promise.race([f(), outOfTime]);
    } catch (e) {
      if (Date.now() + pause > end) throw new Error(`${what}: ${(e as Error).message}`);
      log(`${what}: ${(e as Error).message}; again in ${pause} ms`);
      await new Promise((r) => setTimeout(r, pause));
    } finally {
      clearTimeout(timer);
    }
  }
}

function readState(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

async function run(conf: AgentConf): Promise<number> {
  const plan = subnetPlan(conf.clusterCIDR, conf.subnetLen);
  const template = JSON.parse(fs.readFileSync(conf.template, 'utf8')) as unknown;
  const nodeIP = await nodeIPOf(conf);
  const me = { node: conf.nodeName, nodeIP };
  const client = connect(conf);
  const skipped = new Set<string>();
  let held: { subnet: string; lease: Lease };
  try {
    held = await withRetry('joining', conf.waitSeconds, () => lease(client, conf, plan, me, readState(conf.stateFile)));
  } catch (e) {
    // nothing of ours is left running: the process ends with the reason
    client.close();
    throw e;
  }
  // the directories of what the agent writes, made as the plugins make theirs (by component, errors in words)
  for (const [f, key] of [
    [conf.stateFile, 'stateFile'],
    [conf.peersFile, 'peersFile'],
    [conf.conflist, 'conflist'],
  ])
    makeDirs(path.dirname(f), key);
  writeFileAtomic(conf.stateFile, `${held.subnet}\n`, 0o600);
  log(`${me.node} (${nodeIP}) holds ${held.subnet}`);

  const renderConflist = () => {
    const vars = { podCIDR: held.subnet, nodeIP, nodeName: me.node, clusterCIDR: conf.clusterCIDR, peersFile: conf.peersFile };
    return render(template, vars, conf.template) as Record<string, unknown>;
  };
  let conflist = renderConflist();
  let lastPeers = '';
  const resync = coalesced(async () => {
    try {
      const peers = peersOf(await listRecords(client, conf, skipped), me.node);
      const text = peersFileText(peers);
      if (text !== lastPeers) {
        writeFileAtomic(conf.peersFile, text);
        log(`${peers.length} peer(s): ${peers.map((p) => `${p.name} ${p.podCIDR} via ${p.nodeIP}`).join(', ') || 'none'}`);
        lastPeers = text;
      }
      // the peers file first, the conflist last: its appearance tells the runtime the network is ready
      const { report } = await syncFabric(fabricConfOf(conflist, conf.conflist));
      if (!fs.existsSync(conf.conflist) || fs.readFileSync(conf.conflist, 'utf8') !== `${JSON.stringify(conflist, null, 1)}\n`) {
        writeFileAtomic(conf.conflist, `${JSON.stringify(conflist, null, 1)}\n`);
      }
      if (report.changed) log(`fabric: ${report.changed} change(s)`);
    } catch (e) {
      log(`resync: ${(e as Error).message}`);
    }
  });
  let timer: NodeJS.Timeout | undefined;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void resync(), 100);
  };

  // a lost lease (etcd unreachable past its TTL) is taken again, with the same subnet when it is still free
  const relearn = async () => {
    try {
      held = await withRetry('leasing again', 3600, () => lease(client, conf, plan, me, held.subnet));
      held.lease.on('lost', () => void relearn());
      log(`leased again: ${held.subnet}`);
      writeFileAtomic(conf.stateFile, `${held.subnet}\n`, 0o600);
      conflist = renderConflist();
      soon();
    } catch (e) {
      log((e as Error).message);
    }
  };
  held.lease.on('lost', (e: Error) => {
    log(`lease lost (${e.message}): leasing again`);
    void relearn();
  });

  // The watcher reconnects by itself from the revision it saw; every (re)connection and every change schedules
  // a re-list and reconcile. When etcd cancels it (its revision was compacted away), a new one starts from now,
  // after a re-list: nothing missed stays missed.
  let watcher: Watcher | undefined;
  let stopped = false;
  const watch = () => {
    const w = client.watch().prefix(subnetsPrefix(conf.prefix)).watcher();
    watcher = w;
    w.on('connected', () => {
      log(`watching ${subnetsPrefix(conf.prefix)}`);
      soon();
    });
    w.on('data', soon);
    w.on('disconnected', (e: Error) => log(`watch disconnected: ${e.message}`));
    w.on('error', (e: Error) => {
      log(`watch: ${e.message}; watching again from now`);
      if (!stopped && watcher === w) setTimeout(watch, 1000);
    });
  };
  watch();
  await resync();
  const periodic = setInterval(soon, conf.resyncSeconds * 1000);

  return new Promise((resolve) => {
    const stop = () => {
      clearInterval(periodic);
      clearTimeout(timer);
      // the lease is left to expire, not revoked: a restart within its TTL keeps the subnet and the peers' routes
      held.lease.release();
      stopped = true;
      void watcher?.cancel().catch(() => undefined);
      client.close();
      resolve(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

export async function etcdMain(argv: string[]): Promise<number> {
  const [verb, flag, file] = argv;
  if (verb !== 'run' || flag !== '--conf' || !file || argv.length !== 3) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  try {
    return await run(parseAgentConf(fs.readFileSync(file, 'utf8'), file));
  } catch (e) {
    log((e as Error).message);
    return 1;
  }
}
