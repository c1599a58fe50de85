// MAC addresses we choose ourselves, so a result needs no read-back from the kernel.
import * as fs from 'fs';
import { sha256 } from '../sha256';

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Bytes as a MAC is written (aa:bb:...): all of them, or the first `n`. */
export function macString(b: Uint8Array, n = b.length): string {
  let s = n ? HEX[b[0]] : '';
  for (let i = 1; i < n; i++) s += `:${HEX[b[i]]}`;
  return s;
}

const format = (b: Uint8Array) => macString(b, 6);

/** Random, unicast and locally administered (first octet x2, x6, xA or xE). */
export function randomMac(): string {
  const b = Buffer.alloc(6);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    fs.readSync(fd, b);
  } finally {
    fs.closeSync(fd);
  }
  b[0] = (b[0] & 0xfe) | 0x02;
  return format(b);
}

/**
 * 0a:58:<the four bytes of the address>: a pod on a bridge gets the MAC of its IPv4 address, so a reused
 * address comes back with the same MAC and no neighbour's cached entry for it goes stale (no gratuitous
 * ARP needed). Locally administered, unicast, and distinct for distinct addresses.
 */
export function macFromIPv4(ip: string): string {
  return ['0a', '58', ...ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}

/** Stable MAC derived from a seed (e.g. a node IP for a VTEP), unicast and locally administered. */
export function stableMac(seed: string): string {
  const b = sha256(seed);
  b[0] = (b[0] & 0xfe) | 0x02;
  return format(b);
}

export function isValidMac(s: string): boolean {
  return /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s);
}

/** IPv6 link-local address from a MAC by modified EUI-64 (fe80::ecee:eeff:feee:eeee for ee:ee:ee:ee:ee:ee). */
export function linkLocalFromMac(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0] ^= 0x02;
  const w = [(b[0] << 8) | b[1], (b[2] << 8) | 0xff, (0xfe << 8) | b[3], (b[4] << 8) | b[5]];
  return 'fe80::' + w.map((x) => x.toString(16)).join(':');
}
