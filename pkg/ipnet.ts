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

export function parseIP(s: string): { family: Family; ip: bigint } | undefined {
  // a zone (fe80::1%eth0) would be dropped silently; Go's net.ParseIP refuses it too
  if (typeof s !== 'string' || s.includes('/') || s.includes('%') || !ipaddr.isValid(s)) return undefined;
  // ipaddr.isValid accepts shorthand like "10.1" as IPv4; CNI configs must use full dotted quads
  if (!s.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(s)) return undefined;
  let a = ipaddr.parse(s);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() && !s.includes(':')) a = (a as ipaddr.IPv6).toIPv4Address();
  const bytes = a.toByteArray();
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return { family: a.kind() === 'ipv4' ? 4 : 6, ip: n };
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
  const n = family === 4 ? 4 : 16;
  const bytes: number[] = new Array(n);
  let v = ip;
  for (let i = n - 1; i >= 0; i--) {
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
  return networkOf(n).ip | (((1n << BigInt(bits(n.family) - n.prefix)) - 1n));
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
