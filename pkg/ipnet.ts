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

/**
 * A dotted quad by hand: every call is a fresh process, and ipaddr.js's first parse compiles its patterns,
 * a cost every start would pay. The same rule as ipaddr's isValidFourPartDecimal: four decimal parts, no
 * leading zeros, each at most 255.
 */
function parseIPv4(s: string): bigint | undefined {
  // one pass over the characters: a fabric of thousands of peers parses tens of thousands of addresses
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0) return undefined;
      n = n * 256 + part;
      part = 0;
      digits = 0;
      if (++dots > 4) return undefined;
    } else if (c >= 48 && c <= 57) {
      // no leading zeros: "0" alone is the only part that starts with 0
      if (digits === 1 && part === 0) return undefined;
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return undefined;
    } else {
      return undefined;
    }
  }
  return dots === 4 ? BigInt(n) : undefined;
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

const MASKS: Record<Family, bigint[]> = { 4: [], 6: [] };

export function mask(family: Family, prefix: number): bigint {
  const known = MASKS[family][prefix];
  if (known !== undefined) return known;
  const b = BigInt(bits(family));
  const m = ((1n << b) - 1n) ^ ((1n << (b - BigInt(prefix))) - 1n);
  MASKS[family][prefix] = m;
  return m;
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

/** A test of whether an address lies inside one of `cidrs` (parsed once, for many addresses). */
export function insideAny(cidrs: string[]): (ip: string) => boolean {
  const nets = cidrs.map((c) => parseCIDR(c)!);
  return (ip) => {
    const a = parseIP(ip);
    return !!a && nets.some((n) => contains(n, a.family, a.ip));
  };
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
