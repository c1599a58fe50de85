// host-local IPAM: one address per range set from files under <dataDir>/<network>, in the reference layout.
// ADD is idempotent per (containerID, ifname); DEL releases by (containerID, ifname), falling back to legacy
// id-only files; CHECK wants an address in every range set; GC frees what the runtime no longer lists; STATUS
// reports an exhausted range set or an unwritable dataDir with code 50.
import * as path from 'path';
import { setBudget } from '../../pkg/cni/budget';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { checkCniArgs } from '../../pkg/cni/skel';
import type { Attachment, CmdArgs, IPConfig, NetConf, Plugin, Result } from '../../pkg/cni/types';
import { probeDirs } from '../../pkg/files';
import { contains, formatIP, parseCIDR, parseIP } from '../../pkg/ipnet';
import { type HostLocalConfig, type RangeSet, type RequestedIP, parseConfig } from './config';
import { readResolvConf } from './dns';
import { type Entry, type ScanEntry, NetworkDir, TORN_GRACE_MS } from './disk';
import { Store } from './store';

export const KNOWN_CNI_ARGS = ['IP', 'MAC', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID'] as const;

function inSet(set: RangeSet, ip: string): bigint | undefined {
  const a = parseIP(ip);
  return a && set.rangeOf(a.family, a.ip) ? a.ip : undefined;
}

/** Match each requested IP to the one range set holding it; at most one per set. */
function requestsBySet(cfg: HostLocalConfig): Map<number, RequestedIP> {
  const out = new Map<number, RequestedIP>();
  for (const r of cfg.requested) {
    const set = cfg.rangeSets.find((s) => s.rangeOf(r.family, r.ip));
    if (!set) {
      const sets = cfg.rangeSets.map((s) => s.describe()).join('; ');
      throw new CniError(ErrCode.InvalidConfig, `${r.source}: requested IP ${r.text} is not in any range set (${sets})`);
    }
    if (r.ip === set.rangeOf(r.family, r.ip)!.gateway) {
      throw new CniError(ErrCode.InvalidConfig, `${r.source}: requested IP ${r.text} is the gateway of ${set.key}`);
    }
    const prev = out.get(set.index);
    if (prev) {
      throw new CniError(
        ErrCode.InvalidConfig,
        `${r.source}: requested IP ${r.text} and ${prev.text} (${prev.source}) are both in range set ${set.key}: one address per range set`,
      );
    }
    out.set(set.index, r);
  }
  return out;
}

/** The config, and the call's time budget from ipam.timeoutSeconds when set. */
function config(a: CmdArgs, cniArgs: Record<string, string>): HostLocalConfig {
  const cfg = parseConfig(a.conf, cniArgs);
  if (cfg.timeoutSeconds) setBudget(cfg.timeoutSeconds, 'ipam.timeoutSeconds');
  return cfg;
}

function ipConfig(set: RangeSet, addr: bigint): IPConfig {
  const range = set.rangeOf(set.family, addr)!;
  return { address: `${formatIP(set.family, addr)}/${range.subnet.prefix}`, gateway: formatIP(set.family, range.gateway) };
}

async function add(a: CmdArgs): Promise<Result> {
  checkCniArgs(a.args, KNOWN_CNI_ARGS);
  const cfg = config(a, a.args);
  const requested = requestsBySet(cfg);
  const dns = cfg.resolvConf ? readResolvConf(cfg.resolvConf) : undefined;
  const owner = { id: a.containerId, ifname: a.ifName };

  const store = (await Store.open(cfg.dataDir, cfg.name, cfg.rangeSets, { create: true }))!;
  const ips: IPConfig[] = [];
  const taken: Entry[] = [];
  try {
    // a repeated ADD gets what it already holds: runtimes retry ADD after timeouts
    const held = store.lookup(owner.id).filter((e) => e.ifname === owner.ifname);
    for (const set of cfg.rangeSets) {
      const mine = held.find((e) => inSet(set, e.ip) !== undefined);
      const req = requested.get(set.index);
      let addr: bigint;
      if (mine) {
        addr = inSet(set, mine.ip)!;
        if (req && req.ip !== addr) {
          throw new CniError(
            ErrCode.InvalidConfig,
            `${req.source}: requested IP ${req.text}, but ${owner.id}/${owner.ifname} already holds ${mine.ip} in range set ${set.key}`,
          );
        }
      } else if (req) {
        if (!store.reserveRequested(req.family, req.ip, owner, set.index)) {
          throw new CniError(ErrCode.NoAddressAvailable, `${req.source}: requested IP ${req.text} is already allocated`);
        }
        addr = req.ip;
        taken.push({ ip: req.text, ...owner });
      } else {
        const got = store.allocate(set, owner);
        if (got === undefined) throw new CniError(ErrCode.NoAddressAvailable, `no IP addresses available in range set: ${set.describe()}`);
        addr = got;
        taken.push({ ip: formatIP(set.family, got), ...owner });
      }
      ips.push(ipConfig(set, addr));
    }
  } catch (e) {
    // all range sets or none: give back what this call took
    for (const t of taken) store.release(t);
    throw e;
  } finally {
    await store.close();
  }
  const result: Result = { cniVersion: cfg.cniVersion, ips };
  if (cfg.routes.length) result.routes = cfg.routes;
  if (dns) result.dns = dns;
  return result;
}

async function del(a: CmdArgs): Promise<void> {
  // DEL must succeed whenever it can: CNI_ARGS were judged at ADD, requested IPs do not matter here
  const cfg = config(a, {});
  const store = await Store.open(cfg.dataDir, cfg.name, cfg.rangeSets, { create: false });
  if (!store) return;
  try {
    store.releaseOwner(a.containerId, a.ifName);
  } finally {
    await store.close();
  }
}

async function check(a: CmdArgs): Promise<void> {
  checkCniArgs(a.args, KNOWN_CNI_ARGS);
  const cfg = config(a, a.args);
  const who = `container ${a.containerId} ifname ${a.ifName}`;
  const store = await Store.open(cfg.dataDir, cfg.name, cfg.rangeSets, { create: false });
  if (!store) throw new CniError(ErrCode.CheckFailed, `host-local: no address allocated for ${who}: ${path.join(cfg.dataDir, cfg.name)} does not exist`);
  let missing: RangeSet[];
  try {
    const all = store.lookup(a.containerId);
    let held = all.filter((e) => e.ifname === a.ifName);
    if (held.length === 0) held = all.filter((e) => e.ifname === '');
    missing = cfg.rangeSets.filter((s) => !held.some((e) => inSet(s, e.ip) !== undefined));
  } finally {
    await store.close();
  }
  if (missing.length) {
    const sets = missing.map((s) => `${s.key} (${s.describe()})`).join(', ');
    throw new CniError(ErrCode.CheckFailed, `host-local: no address allocated for ${who} in range set ${sets}`);
  }
}

async function gc(a: CmdArgs, valid: Attachment[]): Promise<void> {
  const cfg = config(a, {});
  const store = await Store.open(cfg.dataDir, cfg.name, cfg.rangeSets, { create: false });
  if (!store) return;
  const now = Date.now();
  const keep = (e: ScanEntry): boolean => {
    // a torn file may be a reference ADD between create and write: only a stale one is garbage
    if (!e.owner) return now - e.mtimeMs < TORN_GRACE_MS;
    const o = e.owner;
    return valid.some((v) => v.containerID === o.id && (o.ifname === '' || v.ifname === o.ifname));
  };
  let errors: string[];
  try {
    errors = store.sweep(keep).errors;
  } finally {
    await store.close();
  }
  if (errors.length) throw new CniError(ErrCode.IOFailure, `host-local GC: could not free: ${errors.join('; ')}`);
}

async function status(a: CmdArgs): Promise<void> {
  const cfg = config(a, {});
  // what would make ADD fail on the store makes STATUS say so, in the same words (pkg/files.ts)
  const unavailable = (e: unknown) =>
    e instanceof CniError && e.code !== ErrCode.IOFailure ? e : new CniError(ErrCode.NotAvailable, `host-local: ${(e as Error).message}`);
  let store: Store | undefined;
  try {
    probeDirs(path.join(cfg.dataDir, cfg.name), 'ipam.dataDir');
    store = await Store.open(cfg.dataDir, cfg.name, cfg.rangeSets, { create: false });
  } catch (e) {
    throw unavailable(e);
  }
  if (!store) return;
  let full: RangeSet | undefined;
  try {
    full = cfg.rangeSets.find((s) => store.free(s) === 0);
  } finally {
    await store.close();
  }
  if (full) throw new CniError(ErrCode.NotAvailable, `no IP addresses available in range set: ${full.describe()}`);
}

/** One attachment the store holds: its addresses as ADD returned them (address/prefix, gateway). */
export interface Reservation {
  id: string;
  ifName: string;
  ips: IPConfig[];
}

/**
 * Every attachment of a network's store, in address order, read without the lock (a snapshot for `tscni doctor`):
 * torn files and addresses outside the configured ranges are left out.
 */
export function listReservations(conf: NetConf): Reservation[] {
  const cfg = parseConfig(conf, {});
  const dir = path.join(cfg.dataDir, cfg.name);
  const out = new Map<string, Reservation>();
  let entries: ScanEntry[];
  try {
    // the store's own reader: a file that is not a reservation (a FIFO, a directory) cannot hold the doctor
    entries = new NetworkDir(dir).scan();
  } catch {
    return [];
  }
  for (const { family, addr, owner } of entries.sort((x, y) => (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : 0))) {
    const set = cfg.rangeSets.find((s) => s.rangeOf(family, addr));
    if (!set || !owner) continue;
    const key = `${owner.id}/${owner.ifname}`;
    if (!out.has(key)) out.set(key, { id: owner.id, ifName: owner.ifname, ips: [] });
    out.get(key)!.ips.push(ipConfig(set, addr));
  }
  return [...out.values()];
}

/**
 * Free every reservation of `network` inside `cidr`, under the network's lock: a node whose pod CIDR changed
 * gives its old range back (its pods there cannot route any more). Returns how many were freed.
 */
export async function releaseRange(dataDir: string, network: string, cidr: string): Promise<number> {
  const net = parseCIDR(cidr);
  if (!net) throw new Error(`releaseRange: ${cidr} is not a CIDR`);
  const store = await Store.open(dataDir, network, [], { create: false });
  if (!store) return 0;
  let r: { removed: ScanEntry[]; errors: string[] };
  try {
    r = store.sweep((e) => !contains(net, e.family, e.addr));
  } finally {
    await store.close();
  }
  if (r.errors.length) throw new CniError(ErrCode.IOFailure, `host-local: could not free: ${r.errors.join('; ')}`);
  return r.removed.length;
}

export const plugin: Plugin = { add, del, check, gc, status };
