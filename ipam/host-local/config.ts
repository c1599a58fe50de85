// host-local configuration: range sets (runtime ipRanges, legacy single range, ipam.ranges, in that order),
// routes, dataDir, resolvConf and the requested IPs. Pure: no file system access.
import { ConfigReader } from '../../pkg/cni/config';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import type { NetConf, Route } from '../../pkg/cni/types';
import { type Family, type IPNet, contains, formatCIDR, formatIP, lastOf, networkOf, parseCIDR, parseIP } from '../../pkg/ipnet';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

export interface Range {
  family: Family;
  /** network address and prefix */
  subnet: IPNet;
  start: bigint;
  end: bigint;
  gateway: bigint;
  /** config key of this range, for messages */
  key: string;
}

/** One range set: one address is allocated from it per ADD; its ranges are walked in order, round-robin. */
export class RangeSet {
  readonly family: Family;
  readonly total: bigint;
  private readonly starts: bigint[] = [];

  constructor(
    readonly index: number,
    readonly ranges: Range[],
    readonly key: string,
  ) {
    this.family = ranges[0].family;
    let t = 0n;
    for (const r of ranges) {
      this.starts.push(t);
      t += r.end - r.start + 1n;
    }
    this.total = t;
  }

  /** As the reference prints it: start-end per range, comma separated. */
  describe(): string {
    return this.ranges.map((r) => `${formatIP(r.family, r.start)}-${formatIP(r.family, r.end)}`).join(',');
  }

  /** Identity of the address space (ranges and gateways), keys the allocation bitmap. */
  fingerprint(): string {
    return this.ranges.map((r) => `${formatIP(r.family, r.start)}-${formatIP(r.family, r.end)}/${r.subnet.prefix}|${formatIP(r.family, r.gateway)}`).join(';');
  }

  rangeOf(family: Family, ip: bigint): Range | undefined {
    if (family !== this.family) return undefined;
    return this.ranges.find((r) => ip >= r.start && ip <= r.end);
  }

  /** Position of ip in the concatenation of the ranges, or undefined when outside. */
  offsetOf(family: Family, ip: bigint): bigint | undefined {
    if (family !== this.family) return undefined;
    for (let i = 0; i < this.ranges.length; i++) {
      const r = this.ranges[i];
      if (ip >= r.start && ip <= r.end) return this.starts[i] + (ip - r.start);
    }
    return undefined;
  }

  at(offset: bigint): { ip: bigint; range: Range } {
    for (let i = this.ranges.length - 1; i >= 0; i--) {
      if (offset >= this.starts[i]) {
        const r = this.ranges[i];
        return { ip: r.start + (offset - this.starts[i]), range: r };
      }
    }
    throw new Error(`offset ${offset} outside range set ${this.index}`);
  }
}

export interface RequestedIP {
  family: Family;
  ip: bigint;
  text: string;
  /** where it came from, for messages: "CNI_ARGS IP", "args.cni.ips[0]", "runtimeConfig.ips[1]" */
  source: string;
}

export interface HostLocalConfig {
  name: string;
  cniVersion: string;
  rangeSets: RangeSet[];
  routes: Route[];
  dataDir: string;
  resolvConf?: string;
  /** the call's time budget (pkg/cni/budget.ts), instead of the default */
  timeoutSeconds?: number;
  requested: RequestedIP[];
}

function readRange(r: ConfigReader): Range {
  const subnetText = r.requiredString('subnet');
  const cidr = parseCIDR(subnetText);
  if (!cidr) throw r.fail('subnet', `${JSON.stringify(subnetText)} is not a valid CIDR`);
  const net = networkOf(cidr);
  if (net.ip !== cidr.ip) throw r.fail('subnet', `${subnetText} has host bits set (network is ${formatCIDR(net)})`);
  const bits = cidr.family === 4 ? 32 : 128;
  if (cidr.prefix > bits - 2) throw r.fail('subnet', `${subnetText} is too small to allocate from`);
  const last = lastOf(net);
  const f = cidr.family;

  const addr = (k: string): bigint | undefined => {
    const s = r.string(k);
    if (s === undefined || s === '') return undefined;
    const a = parseIP(s);
    if (!a) throw r.fail(k, `${JSON.stringify(s)} is not a valid IP address`);
    if (!contains(net, a.family, a.ip)) throw r.fail(k, `${s} is not in subnet ${subnetText}`);
    return a.ip;
  };
  // The reference starts at network+1 and skips the gateway while iterating; IPv4 never hands out the broadcast.
  const start = addr('rangeStart') ?? net.ip + 1n;
  const end = addr('rangeEnd') ?? (f === 4 ? last - 1n : last);
  const gateway = addr('gateway') ?? net.ip + 1n;
  if (f === 4) {
    if (start === net.ip) throw r.fail('rangeStart', `${formatIP(f, start)} is the network address of ${subnetText}`);
    if (end === last) throw r.fail('rangeEnd', `${formatIP(f, end)} is the broadcast address of ${subnetText}`);
  }
  if (start > end) throw r.fail('rangeStart', `${formatIP(f, start)} is after rangeEnd ${formatIP(f, end)}`);
  return { family: f, subnet: net, start, end, gateway, key: r.prefix };
}

function rangesOverlap(a: Range, b: Range): boolean {
  return a.family === b.family && a.start <= b.end && b.start <= a.end;
}

/** A list of range sets at `key` (a list of lists of range objects). */
function readRangeSets(v: unknown, key: string): Array<{ ranges: Range[]; key: string }> {
  if (!Array.isArray(v)) throw new CniError(ErrCode.InvalidConfig, `invalid config: ${key}: expected a list of range sets`);
  return v.map((set, i) => {
    const setKey = `${key}[${i}]`;
    if (!Array.isArray(set)) throw new CniError(ErrCode.InvalidConfig, `invalid config: ${setKey}: expected a list of ranges`);
    if (set.length === 0) throw new CniError(ErrCode.InvalidConfig, `invalid config: ${setKey}: is empty`);
    const ranges = set.map((o, j) => {
      if (typeof o !== 'object' || o === null || Array.isArray(o)) {
        throw new CniError(ErrCode.InvalidConfig, `invalid config: ${setKey}[${j}]: expected a range object`);
      }
      return readRange(new ConfigReader(o as Record<string, unknown>, `${setKey}[${j}]`));
    });
    return { ranges, key: setKey };
  });
}

function fail(key: string, why: string): CniError {
  return new CniError(ErrCode.InvalidConfig, `invalid config: ${key}: ${why}`);
}

function validateSets(sets: RangeSet[]): void {
  for (const s of sets) {
    for (let j = 0; j < s.ranges.length; j++) {
      const r = s.ranges[j];
      if (r.family !== s.family) throw fail(`${r.key}.subnet`, `mixes IPv${r.family} into an IPv${s.family} range set`);
      for (let k = 0; k < j; k++) {
        if (rangesOverlap(r, s.ranges[k])) throw fail(r.key, `overlaps ${s.ranges[k].key}`);
      }
    }
  }
  for (let i = 0; i < sets.length; i++) {
    for (let k = 0; k < i; k++) {
      const hit = sets[i].ranges.some((a) => sets[k].ranges.some((b) => rangesOverlap(a, b)));
      if (hit) throw fail(sets[i].key, `overlaps range set ${sets[k].key}`);
    }
  }
}

function readRoutes(ipam: ConfigReader): Route[] {
  return (ipam.objectList('routes') ?? []).map((r) => {
    const dst = r.requiredString('dst');
    if (!parseCIDR(dst)) throw r.fail('dst', `${JSON.stringify(dst)} is not a valid CIDR`);
    const route: Route = { dst };
    const gw = r.string('gw');
    if (gw !== undefined && gw !== '') {
      if (!parseIP(gw)) throw r.fail('gw', `${JSON.stringify(gw)} is not a valid IP address`);
      route.gw = gw;
    }
    return route;
  });
}

function parseRequested(text: string, source: string, code: number): RequestedIP {
  const t = text.trim();
  const a = t.includes('/') ? parseCIDR(t) : parseIP(t);
  if (!a) {
    const prefix = code === ErrCode.InvalidEnv ? 'invalid' : 'invalid config:';
    throw new CniError(code, `${prefix} ${source}: ${JSON.stringify(text)} is not an IP address or ip/prefix`);
  }
  return { family: a.family, ip: a.ip, text: formatIP(a.family, a.ip), source };
}

/** Requested IPs from CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips, accumulated as the reference does. */
function readRequested(conf: NetConf, cniArgs: Record<string, string>): RequestedIP[] {
  const out: RequestedIP[] = [];
  if (cniArgs.IP) {
    for (const s of cniArgs.IP.split(',')) if (s.trim()) out.push(parseRequested(s, 'CNI_ARGS IP', ErrCode.InvalidEnv));
  }
  const root = new ConfigReader(conf.raw);
  const cni = root.object('args')?.object('cni');
  cni?.stringList('ips')?.forEach((s, i) => out.push(parseRequested(s, `${cni.key('ips')}[${i}]`, ErrCode.InvalidConfig)));
  const rc = root.object('runtimeConfig');
  rc?.stringList('ips')?.forEach((s, i) => out.push(parseRequested(s, `${rc.key('ips')}[${i}]`, ErrCode.InvalidConfig)));
  // the same address asked twice (e.g. CNI_ARGS and runtimeConfig) is one request
  const seen = new Set<string>();
  return out.filter((r) => (seen.has(r.text) ? false : (seen.add(r.text), true)));
}

export function parseConfig(conf: NetConf, cniArgs: Record<string, string> = {}): HostLocalConfig {
  const ipam = new ConfigReader((conf.ipam ?? {}) as Record<string, unknown>, 'ipam');
  const found: Array<{ ranges: Range[]; key: string }> = [];
  const rc = conf.runtimeConfig?.ipRanges;
  if (rc !== undefined && rc !== null) found.push(...readRangeSets(rc, 'runtimeConfig.ipRanges'));
  if (ipam.has('subnet')) found.push({ ranges: [readRange(ipam)], key: 'ipam' });
  else for (const k of ['rangeStart', 'rangeEnd', 'gateway']) if (ipam.has(k)) throw ipam.fail(k, 'needs ipam.subnet');
  if (ipam.has('ranges')) found.push(...readRangeSets(ipam.obj.ranges, 'ipam.ranges'));
  if (found.length === 0) throw ipam.fail('ranges', 'no IP ranges specified (set ipam.ranges or ipam.subnet)');
  const rangeSets = found.map((s, i) => new RangeSet(i, s.ranges, s.key));
  validateSets(rangeSets);

  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    rangeSets,
    routes: readRoutes(ipam),
    dataDir: ipam.absolutePath('dataDir') ?? DEFAULT_DATA_DIR,
    resolvConf: ipam.absolutePath('resolvConf'),
    timeoutSeconds: ipam.int('timeoutSeconds', undefined, 1, 3600),
    requested: readRequested(conf, cniArgs),
  };
}
