// IP address and prefix arithmetic on BigInt, with ipaddr.js for parsing and canonical formatting.
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface IPNet {
  family: Family;
  /** the address as given (may have host bits) */
  ip: bigint;
  prefix: number;
}

const bits = (f: Family): number => (f === 4 ? 32 : 128);

const DECIMAL_OCTET = /^(0|[1-9]\d{0,2})$/;

/**
 * A dotted quad by hand: every call is a fresh process, and ipaddr.js's first parse compiles its patterns,
 * a cost every start would pay. The same rule as ipaddr's isValidFourPartDecimal: four decimal parts, no
 * leading zeros, each at most 255.
 */
function parseIPv4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!DECIMAL_OCTET.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return BigInt(n);
}

export function parseIP(s: string): { family: Family; ip: bigint } | undefined {
  // a zone (fe80::1%eth0) would be dropped silently; Go's net.ParseIP refuses it too
  if (typeof s !== 'string' || s.includes('/') || s.includes('%')) return undefined;
  // no colon: IPv4, full dotted quads only (ipaddr.js would take shorthand like "10.1")
  if (!s.includes(':')) {
    const ip = parseIPv4(s);
    return ip === undefined ? undefined : { family: 4, ip };
  }
  if (!ipaddr.IPv6.isValid(s)) return undefined;
  let n = 0n;
  for (const b of ipaddr.IPv6.parse(s).toByteArray()) n = (n << 8n) | BigInt(b);
  return { family: 6, ip: n };
}

export function parseCIDR(s: string): IPNet | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const a = parseIP(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!a || !/^\d{1,3}$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > bits(a.family)) return undefined;
  return { family: a.family, ip: a.ip, prefix };
}

export function formatIP(family: Family, ip: bigint): string {
  if (family === 4) {
    const v = Number(ip);
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const bytes: number[] = new Array(16);
  let v = ip;
  for (let i = 15; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

export function formatCIDR(n: IPNet): string {
  return `${formatIP(n.family, n.ip)}/${n.prefix}`;
}

export function mask(family: Family, prefix: number): bigint {
  const b = BigInt(bits(family));
  return ((1n << b) - 1n) ^ ((1n << (b - BigInt(prefix))) - 1n);
}

export function networkOf(n: IPNet): IPNet {
  return { family: n.family, ip: n.ip & mask(n.family, n.prefix), prefix: n.prefix };
}

export function lastOf(n: IPNet): bigint {
  return networkOf(n).ip | ((1n << BigInt(bits(n.family) - n.prefix)) - 1n);
}

export function contains(net: IPNet, family: Family, ip: bigint): boolean {
  return net.family === family && (ip & mask(family, net.prefix)) === (net.ip & mask(family, net.prefix));
}

export function overlaps(a: IPNet, b: IPNet): boolean {
  if (a.family !== b.family) return false;
  const p = Math.min(a.prefix, b.prefix);
  return (a.ip & mask(a.family, p)) === (b.ip & mask(b.family, p));
}

/** Canonical text of an address string (e.g. "fd00:0::1" -> "fd00::1"), or undefined if invalid. */
export function canonicalIP(s: string): string | undefined {
  const a = parseIP(s);
  return a && formatIP(a.family, a.ip);
}
