// CNI spec versions we speak and the result conversion between them.
import { CniError, ErrCode } from './errors';
import type { IPConfig, Interface, Result, Route } from './types';

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
  const dns = r.dns;
  if (dns && (dns.nameservers?.length || dns.domain || dns.search?.length || dns.options?.length)) {
    out.dns = dns;
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
  if (o.interfaces !== undefined) r.interfaces = arrayOf(o.interfaces, 'interfaces') as Interface[];
  if (o.ips !== undefined) {
    r.ips = arrayOf(o.ips, 'ips').map((ip) => {
      const { version: _v, ...rest } = ip as Record<string, unknown>;
      if (typeof rest.address !== 'string') throw new CniError(ErrCode.DecodeFailure, 'result ips[].address missing');
      return rest as unknown as IPConfig;
    });
  }
  if (o.routes !== undefined) r.routes = arrayOf(o.routes, 'routes') as Route[];
  if (o.dns !== undefined) r.dns = o.dns as Result['dns'];
  return r;
}

function arrayOf(v: unknown, key: string): unknown[] {
  if (!Array.isArray(v)) throw new CniError(ErrCode.DecodeFailure, `result ${key} is not a list`);
  return v;
}
