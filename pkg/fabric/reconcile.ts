// Reconcile: read what the kernel holds (one read of links, routes and the device's neighbours; one of its FDB
// when there is a VTEP), diff it with the plan, write only the difference. An unchanged fabric costs the reads
// and no write.
import { applyOps, OpError, readFdb, readState, type IpLink, type IpNeigh, type IpRoute, type KernelOp, type KernelRead, type RouteSpec } from '../ip/ops';
import { defaultRouteInterface, linkExists } from '../ip/sysfs';
import { readSysctl, setSysctls } from '../ip/sysctl';
import { CniError } from '../cni/errors';
import { leftOutLines } from './plan';
import { FABRIC_ALIAS, RTPROT_TSCNI, type DesiredFabric, type FabricDiff, type FabricState } from './types';

/**
 * Read links with addresses and details, the main table's routes (ours are those with RTPROT_TSCNI), and (when
 * `device` exists) its neighbours and FDB. `families` picks which routes to list (the pod families).
 */
export async function readFabricState(device: string | undefined, families: Array<4 | 6> = [4], fdb = true): Promise<FabricState> {
  const has = device !== undefined && linkExists(device);
  const reads: KernelRead[] = [{ read: 'links' }, ...families.map((family): KernelRead => ({ read: 'routes', family, table: 'main' }))];
  if (has) reads.push({ read: 'neighs', dev: device });
  const [ip, fdbEntries] = await Promise.all([readState(reads), has && fdb ? readFdb(device) : Promise.resolve([])]);
  const routes = families.flatMap((_f, i) => (ip[1 + i] ?? []) as IpRoute[]);
  const ours = (r: IpRoute) => r.protocol === String(RTPROT_TSCNI);
  return {
    links: (ip[0] ?? []) as IpLink[],
    routes: routes.filter(ours),
    otherRoutes: routes.filter((r) => !ours(r)),
    neighs: has ? ((ip[1 + families.length] ?? []) as IpNeigh[]) : [],
    fdb: fdbEntries,
  };
}

export { defaultRouteInterface };

function routeMatches(want: RouteSpec, have: IpRoute): boolean {
  return have.gateway === want.gw && have.dev === want.dev && !!have.flags?.includes('onlink') === !!want.onlink;
}

function describeRoute(r: RouteSpec): string {
  return `${r.dst} via ${r.gw} dev ${r.dev}${r.onlink ? ' onlink' : ''}`;
}

/** What to change so the kernel holds `d`, and the same as human-readable problems (for CHECK). Pure. */
export function diffFabric(d: DesiredFabric, s: FabricState): FabricDiff {
  const diff: FabricDiff = { device: [], fdb: [], ip: [], problems: [], conflicts: [] };
  const dev = d.device;
  let fresh = false;
  // tunnel devices of ours the plan no longer names go first: their VNI or local address may be what the new
  // device needs, and their entries and routes go with them
  const stale = new Set(s.links.filter((l) => l.ifalias === FABRIC_ALIAS && l.ifname !== dev?.name).map((l) => l.ifname));
  for (const name of stale) {
    diff.problems.push(`stale fabric device ${name}`);
    diff.device.push({ op: 'link-del', name });
  }
  if (dev) {
    const link = s.links.find((l) => l.ifname === dev.name);
    const kind = link?.linkinfo?.info_kind;
    const data = link?.linkinfo?.info_data ?? {};
    const wrong = link ? Object.entries(dev.infoData).filter(([k, v]) => data[k] !== v) : [];
    if (!link || kind !== dev.kind || wrong.length) {
      if (!link) diff.problems.push(`${dev.kind} device ${dev.name} is missing`);
      else if (kind !== dev.kind) diff.problems.push(`${dev.name} is a ${kind ?? 'plain'} device, expected ${dev.kind}`);
      else diff.problems.push(...wrong.map(([k, v]) => `${dev.name} has ${k === 'id' ? 'VNI' : k} ${JSON.stringify(data[k])}, expected ${JSON.stringify(v)}`));
      // a device of the wrong kind or parameters cannot be changed in place: recreate it
      if (link) diff.device.push({ op: 'link-del', name: dev.name });
      diff.device.push({ op: 'link-add', name: dev.name, mac: dev.mac, mtu: dev.mtu, link: dev.link }, { op: 'link-set', name: dev.name, alias: FABRIC_ALIAS });
      fresh = true;
    } else {
      // a device made before devices were marked: mark it (not a problem CHECK reports)
      if (link.ifalias !== FABRIC_ALIAS) diff.device.push({ op: 'link-set', name: dev.name, alias: FABRIC_ALIAS });
      if (link.mtu !== dev.mtu) {
        diff.problems.push(`${dev.name} has MTU ${link.mtu}, expected ${dev.mtu}`);
        diff.device.push({ op: 'link-set', name: dev.name, mtu: dev.mtu });
      }
      if (dev.mac && link.address !== dev.mac) {
        diff.problems.push(`${dev.name} has MAC ${link.address}, expected ${dev.mac}`);
        diff.device.push({ op: 'link-set', name: dev.name, mac: dev.mac });
      }
    }
    const held = fresh ? [] : (link?.addr_info ?? []).filter((a) => a.scope !== 'link' && a.scope !== 'host').map((a) => `${a.local}/${a.prefixlen}`);
    for (const a of dev.addresses) {
      if (held.includes(a)) continue;
      if (!fresh) diff.problems.push(`${dev.name} lacks address ${a}`);
      diff.device.push({ op: 'addr-replace', dev: dev.name, cidr: a });
    }
    for (const a of held) {
      if (dev.addresses.includes(a)) continue;
      diff.problems.push(`${dev.name} holds address ${a}, not ours`);
      diff.device.push({ op: 'addr-del', dev: dev.name, cidr: a });
    }
    if (fresh || !link?.flags?.includes('UP')) {
      if (!fresh) diff.problems.push(`${dev.name} is down`);
      diff.device.push({ op: 'link-set', name: dev.name, up: true });
    }
  }

  // FDB: each peer MAC sends to its node. Stale entries go first, so a MAC that moved node is re-added cleanly.
  const fdbHave = fresh ? [] : s.fdb;
  const fdbKey = (mac: string, dst?: string) => `${mac.toLowerCase()}>${dst ?? ''}`;
  const fdbWant = new Set(d.fdb.map((f) => fdbKey(f.mac, f.dst)));
  for (const e of fdbHave) {
    if (fdbWant.has(fdbKey(e.mac, e.dst))) continue;
    diff.problems.push(`stale FDB entry ${e.mac} dst ${e.dst ?? '-'} on ${dev?.name}`);
    diff.fdb.push({ op: 'fdb-del', dev: dev!.name, mac: e.mac, dst: e.dst });
  }
  const fdbHeld = new Set(fdbHave.map((e) => fdbKey(e.mac, e.dst)));
  for (const f of d.fdb) {
    if (fdbHeld.has(fdbKey(f.mac, f.dst))) continue;
    if (!fresh) diff.problems.push(`FDB entry ${f.mac} dst ${f.dst} missing on ${f.dev}`);
    diff.fdb.push({ op: 'fdb-append', dev: f.dev, mac: f.mac, dst: f.dst });
  }

  // neighbours: permanent entries on our device are ours
  const nHave = fresh ? [] : s.neighs.filter((n) => n.state?.includes('PERMANENT'));
  const nWant = new Map(d.neighs.map((n) => [n.ip, n]));
  const nHeld = new Map(nHave.map((n) => [n.dst, n]));
  for (const n of nHave) {
    if (nWant.has(n.dst)) continue;
    diff.problems.push(`stale neighbour ${n.dst} on ${dev?.name}`);
    diff.ip.push({ op: 'neigh-del', dev: dev!.name, ip: n.dst });
  }
  for (const n of d.neighs) {
    const h = nHeld.get(n.ip);
    if (h && h.lladdr?.toLowerCase() === n.lladdr) continue;
    if (!fresh) diff.problems.push(h ? `neighbour ${n.ip} on ${n.dev} is ${h.lladdr}, expected ${n.lladdr}` : `neighbour ${n.ip} missing on ${n.dev}`);
    diff.ip.push({ op: 'neigh-replace', dev: n.dev, ip: n.ip, mac: n.lladdr });
  }

  // routes: ours carry RTPROT_TSCNI; one we no longer want goes, one that differs is replaced; a destination
  // another owner routes is theirs: `replace` would take it over, so that peer's route is a conflict and left alone
  const rWant = new Map(d.routes.map((r) => [r.dst, r]));
  const taken = new Set<string>();
  for (const r of s.otherRoutes ?? []) {
    const want = rWant.get(r.dst);
    if (!want) continue;
    const held = `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''} proto ${r.protocol ?? '?'}`;
    diff.conflicts.push(`route ${held} is not tscni's, and the fabric needs ${describeRoute(want)}: remove that route or the peer`);
    taken.add(r.dst);
  }
  diff.problems.push(...diff.conflicts);
  for (const r of s.routes) {
    // routes through a device we recreate or delete went with it
    if (rWant.has(r.dst) || (fresh && r.dev === dev?.name) || stale.has(r.dev ?? '')) continue;
    diff.problems.push(`stale route ${r.dst} via ${r.gateway ?? '-'} dev ${r.dev}`);
    diff.ip.push({ op: 'route-del', dst: r.dst, proto: RTPROT_TSCNI });
  }
  const rHeld = new Map(s.routes.map((r) => [r.dst, r]));
  for (const r of d.routes) {
    if (taken.has(r.dst)) continue;
    const h = rHeld.get(r.dst);
    // a device we just (re)created lost its routes with it
    if (h && routeMatches(r, h) && !(fresh && h.dev === dev?.name)) continue;
    if (!fresh) diff.problems.push(h ? `route ${r.dst} is via ${h.gateway} dev ${h.dev}, expected ${describeRoute(r)}` : `route ${describeRoute(r)} missing`);
    diff.ip.push({ op: 'route-replace', route: r });
  }
  return diff;
}

/** Sysctls of the plan that differ from /proc (no spawn). */
export function sysctlProblems(d: DesiredFabric): string[] {
  return Object.entries(d.sysctls)
    .filter(([k, v]) => readSysctl(k) !== v)
    .map(([k, v]) => `sysctl ${k.replace(/\//g, '.')} is ${readSysctl(k) ?? 'absent'}, expected ${v}`);
}

export interface ReconcileReport {
  changed: number;
  problems: string[];
  /** peers the plan left out and routes held by another owner: one line each, for the log */
  leftOut: string[];
}

/** Make the kernel match `d`, given the state read before planning. A race with a concurrent ADD is retried once. */
export async function applyFabric(d: DesiredFabric, s: FabricState, retry = true): Promise<ReconcileReport> {
  const diff = diffFabric(d, s);
  // device first (FDB entries need it), FDB, then neighbours and routes
  const ops: KernelOp[] = [...diff.device, ...diff.fdb, ...diff.ip];
  try {
    await applyOps(ops);
  } catch (e) {
    // another ADD on this node may have made the same change a moment ago: read again and retry once
    if (retry && (e instanceof OpError || e instanceof CniError)) {
      const again = await readFabricState(d.device?.name, d.families, d.usesFdb);
      return applyFabric(d, again, false);
    }
    throw e;
  }
  await setSysctls(d.sysctls);
  return { changed: ops.length, problems: diff.problems, leftOut: [...leftOutLines(d), ...diff.conflicts] };
}
