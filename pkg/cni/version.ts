// CNI spec versions we speak and the result conversion between them.
import { CniError, ErrCode } from './errors';
import type { DNS, IPConfig, Interface, Result, Route } from './types';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';

export function isSupported(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compare dotted versions numerically: <0, 0, >0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function atLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

function ipFamily(cidr: string): '4' | '6' {
  return cidr.includes(':') ? '6' : '4';
}

/** The result as JSON for the given version: 0.3.x/0.4.0 carry ips[].version, 1.1 fields are dropped below 1.1. */
export function formatResult(r: Result, version: string): Record<string, unknown> {
  if (!isSupported(version)) {
    throw new CniError(ErrCode.IncompatibleVersion, `cannot convert result to unsupported version ${version}`);
  }
  const legacy = !atLeast(version, '1.0.0');
  const has11 = atLeast(version, '1.1.0');
  const out: Record<string, unknown> = { cniVersion: version };
  if (r.interfaces?.length) {
    out.interfaces = r.interfaces.map((i): Interface => {
      const o: Interface = { name: i.name };
      if (i.mac !== undefined) o.mac = i.mac;
      if (has11 && i.mtu !== undefined) o.mtu = i.mtu;
      if (i.sandbox !== undefined) o.sandbox = i.sandbox;
      if (has11 && i.socketPath !== undefined) o.socketPath = i.socketPath;
      if (has11 && i.pciID !== undefined) o.pciID = i.pciID;
      return o;
    });
  }
  if (r.ips?.length) {
    out.ips = r.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (legacy) o.version = ipFamily(ip.address);
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway !== undefined) o.gateway = ip.gateway;
      return o;
    });
  }
  if (r.routes?.length) {
    out.routes = r.routes.map((rt): Route => {
      const o: Route = { dst: rt.dst };
      if (rt.gw !== undefined) o.gw = rt.gw;
      if (has11) {
        for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
          if (rt[k] !== undefined) o[k] = rt[k];
        }
      }
      return o;
    });
  }
  if (r.dns) {
    const d: DNS = {};
    if (r.dns.nameservers?.length) d.nameservers = r.dns.nameservers;
    if (r.dns.domain) d.domain = r.dns.domain;
    if (r.dns.search?.length) d.search = r.dns.search;
    if (r.dns.options?.length) d.options = r.dns.options;
    if (Object.keys(d).length) out.dns = d;
  }
  return out;
}

/** Parse a result (prevResult or a delegated plugin's output) of any supported version into the 1.1 shape. */
export function parseResult(raw: unknown, fallbackVersion?: string): Result {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrCode.DecodeFailure, 'result is not a JSON object');
  }
  const o = raw as Record<string, unknown>;
  const version = typeof o.cniVersion === 'string' ? o.cniVersion : fallbackVersion;
  if (!version || !isSupported(version)) {
    throw new CniError(ErrCode.IncompatibleVersion, `unsupported result version ${String(version)}`);
  }
  const r: Result = { cniVersion: version };
  if (o.interfaces != null) {
    r.interfaces = objectsOf(o.interfaces, 'interfaces').map((i) => {
      if (typeof i.name !== 'string') throw new CniError(ErrCode.DecodeFailure, 'result interfaces[].name missing');
      return i as unknown as Interface;
    });
  }
  if (o.ips != null) {
    r.ips = objectsOf(o.ips, 'ips').map((ip) => {
      const { version: _v, ...rest } = ip;
      if (typeof rest.address !== 'string') throw new CniError(ErrCode.DecodeFailure, 'result ips[].address missing');
      if (rest.interface !== undefined && !(Number.isInteger(rest.interface) && (rest.interface as number) >= 0)) {
        throw new CniError(ErrCode.DecodeFailure, 'result ips[].interface is not an index');
      }
      return rest as unknown as IPConfig;
    });
  }
  if (o.routes != null) {
    r.routes = objectsOf(o.routes, 'routes').map((rt) => {
      if (typeof rt.dst !== 'string') throw new CniError(ErrCode.DecodeFailure, 'result routes[].dst missing');
      return rt as unknown as Route;
    });
  }
  if (o.dns !== undefined && o.dns !== null) {
    if (typeof o.dns !== 'object' || Array.isArray(o.dns)) throw new CniError(ErrCode.DecodeFailure, 'result dns is not an object');
    r.dns = o.dns as Result['dns'];
  }
  return r;
}

function objectsOf(v: unknown, key: string): Record<string, unknown>[] {
  if (!Array.isArray(v)) throw new CniError(ErrCode.DecodeFailure, `result ${key} is not a list`);
  for (const e of v) {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new CniError(ErrCode.DecodeFailure, `result ${key}[] entry is not an object`);
  }
  return v as Record<string, unknown>[];
}
