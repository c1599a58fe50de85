import { canonicalIP, contains, formatCIDR, formatIP, insideAny, lastOf, mask, networkOf, overlaps, parseCIDR, parseIP, type IPNet } from './ipnet';

const cidr = (s: string): IPNet => {
  const n = parseCIDR(s);
  if (!n) throw new Error(`test setup: ${s} did not parse`);
  return n;
};
const ip = (s: string): bigint => parseIP(s)!.ip;

describe('parseIP / formatIP', () => {
  it('IPv4', () => {
    expect(parseIP('10.22.0.5')).toEqual({ family: 4, ip: 0x0a160005n });
    expect(parseIP('0.0.0.0')).toEqual({ family: 4, ip: 0n });
    expect(parseIP('255.255.255.255')).toEqual({ family: 4, ip: 0xffffffffn });
    expect(formatIP(4, 0x0a160005n)).toBe('10.22.0.5');
    expect(formatIP(4, 0xffffffffn)).toBe('255.255.255.255');
  });

  it('IPv6, formatted canonically (RFC 5952)', () => {
    expect(parseIP('::')).toEqual({ family: 6, ip: 0n });
    expect(parseIP('::1')).toEqual({ family: 6, ip: 1n });
    expect(parseIP('fd00::5')).toEqual({ family: 6, ip: (0xfd00n << 112n) | 5n });
    expect(formatIP(6, (0xfd00n << 112n) | 5n)).toBe('fd00::5');
    expect(formatIP(6, 0n)).toBe('::');
    expect(formatIP(6, (1n << 128n) - 1n)).toBe('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    expect(canonicalIP('FD00:0:0:0::0001')).toBe('fd00::1');
    expect(canonicalIP('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalIP('10.0.0.1')).toBe('10.0.0.1');
  });

  it('IPv4-mapped IPv6 stays IPv6', () => {
    expect(parseIP('::ffff:10.0.0.1')).toEqual({ family: 6, ip: (0xffffn << 32n) | 0x0a000001n });
  });

  it.each([
    '10.1',
    '10.1.2',
    '10',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.2.3.-1',
    '010.1.2.3',
    '0x0a.1.2.3',
    '1.2.3.4/24',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '',
    'garbage',
    ':::',
    '1::2::3',
    'fd00::g',
    'fe80::1%eth0',
    '12345::',
  ])('rejects %p', (s) => {
    expect(parseIP(s)).toBeUndefined();
    expect(canonicalIP(s)).toBeUndefined();
  });

  it('rejects non-strings without throwing', () => {
    expect(parseIP(undefined as unknown as string)).toBeUndefined();
    expect(parseIP(42 as unknown as string)).toBeUndefined();
    expect(parseCIDR(null as unknown as string)).toBeUndefined();
  });
});

describe('parseCIDR / formatCIDR', () => {
  it('keeps host bits as given', () => {
    const n = cidr('10.22.0.5/16');
    expect(n).toEqual({ family: 4, ip: 0x0a160005n, prefix: 16 });
    expect(formatCIDR(n)).toBe('10.22.0.5/16');
    expect(formatCIDR(networkOf(n))).toBe('10.22.0.0/16');
  });

  it('v6', () => {
    const n = cidr('fd00:0::5/64');
    expect(n.family).toBe(6);
    expect(n.prefix).toBe(64);
    expect(formatCIDR(n)).toBe('fd00::5/64');
    expect(formatCIDR(networkOf(n))).toBe('fd00::/64');
  });

  it('edge prefixes', () => {
    expect(cidr('0.0.0.0/0').prefix).toBe(0);
    expect(cidr('10.0.0.1/32').prefix).toBe(32);
    expect(cidr('::/0').prefix).toBe(0);
    expect(cidr('::1/128').prefix).toBe(128);
  });

  it.each([
    '10.1/16',
    '10.1.2/24',
    '1.2.3.4/33',
    '1.2.3.4/-1',
    '1.2.3.4/',
    '1.2.3.4',
    '1.2.3.4/24/1',
    '1.2.3.4/ 24',
    '1.2.3.4/24 ',
    '1.2.3.4/2a',
    '1.2.3.4/1e1',
    '1.2.3.4/0x10',
    '::/129',
    '::/1000',
    'fd00::/64x',
    '/24',
    '',
    'garbage',
    'garbage/24',
  ])('rejects %p', (s) => {
    expect(parseCIDR(s)).toBeUndefined();
  });
});

describe('mask / networkOf / lastOf', () => {
  it('mask', () => {
    expect(mask(4, 0)).toBe(0n);
    expect(mask(4, 24)).toBe(0xffffff00n);
    expect(mask(4, 32)).toBe(0xffffffffn);
    expect(mask(6, 0)).toBe(0n);
    expect(mask(6, 128)).toBe((1n << 128n) - 1n);
    expect(mask(6, 64)).toBe(((1n << 64n) - 1n) << 64n);
  });

  it('networkOf and lastOf, v4', () => {
    const n = cidr('10.22.3.7/16');
    expect(formatCIDR(networkOf(n))).toBe('10.22.0.0/16');
    expect(formatIP(4, lastOf(n))).toBe('10.22.255.255');
    expect(formatIP(4, lastOf(cidr('10.0.0.5/32')))).toBe('10.0.0.5');
    expect(formatIP(4, lastOf(cidr('10.0.0.5/31')))).toBe('10.0.0.5');
    expect(formatIP(4, networkOf(cidr('10.0.0.5/31')).ip)).toBe('10.0.0.4');
    expect(formatIP(4, lastOf(cidr('1.2.3.4/0')))).toBe('255.255.255.255');
  });

  it('networkOf and lastOf, v6', () => {
    const n = cidr('fd00:1:2:3:4::9/64');
    expect(formatCIDR(networkOf(n))).toBe('fd00:1:2:3::/64');
    expect(formatIP(6, lastOf(n))).toBe('fd00:1:2:3:ffff:ffff:ffff:ffff');
    expect(formatIP(6, lastOf(cidr('::/0')))).toBe('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    expect(formatIP(6, lastOf(cidr('fd00::1/128')))).toBe('fd00::1');
  });

  it('networkOf does not modify its argument', () => {
    const n = cidr('10.22.3.7/16');
    networkOf(n);
    expect(n.ip).toBe(ip('10.22.3.7'));
  });
});

describe('contains / overlaps', () => {
  it('contains, v4 and v6, including the edges', () => {
    const n = cidr('10.22.0.0/16');
    expect(contains(n, 4, ip('10.22.0.0'))).toBe(true);
    expect(contains(n, 4, ip('10.22.255.255'))).toBe(true);
    expect(contains(n, 4, ip('10.23.0.0'))).toBe(false);
    expect(contains(n, 4, ip('10.21.255.255'))).toBe(false);
    // a subnet given with host bits still contains its whole network
    expect(contains(cidr('10.22.3.7/16'), 4, ip('10.22.200.1'))).toBe(true);
    const v6 = cidr('fd00::/64');
    expect(contains(v6, 6, ip('fd00::ffff'))).toBe(true);
    expect(contains(v6, 6, ip('fd00:0:0:1::'))).toBe(false);
    expect(contains(cidr('0.0.0.0/0'), 4, ip('8.8.8.8'))).toBe(true);
  });

  it('never across families', () => {
    // the low 32 bits of ::a16:5 equal 10.22.0.5
    expect(contains(cidr('10.22.0.0/16'), 6, ip('::a16:5'))).toBe(false);
    expect(contains(cidr('::/0'), 4, ip('10.0.0.1'))).toBe(false);
    expect(overlaps(cidr('0.0.0.0/0'), cidr('::/0'))).toBe(false);
  });

  it('insideAny: an address in one of several CIDRs of either family; not an address is in none', () => {
    const t = insideAny(['10.244.0.0/16', 'fd00::/64']);
    expect(['10.244.9.1', 'fd00::5', '10.245.0.1', 'fd01::1', 'nope'].map(t)).toEqual([true, true, false, false, false]);
    expect(insideAny([])('10.0.0.1')).toBe(false);
  });

  it('overlaps', () => {
    expect(overlaps(cidr('10.0.0.0/8'), cidr('10.22.0.0/16'))).toBe(true);
    expect(overlaps(cidr('10.22.0.0/16'), cidr('10.0.0.0/8'))).toBe(true);
    expect(overlaps(cidr('10.22.0.0/16'), cidr('10.23.0.0/16'))).toBe(false);
    expect(overlaps(cidr('10.22.0.0/24'), cidr('10.22.0.128/25'))).toBe(true);
    expect(overlaps(cidr('10.22.0.0/25'), cidr('10.22.0.128/25'))).toBe(false);
    expect(overlaps(cidr('10.22.0.9/24'), cidr('10.22.0.200/24'))).toBe(true);
    expect(overlaps(cidr('fd00::/48'), cidr('fd00:0:0:5::/64'))).toBe(true);
    expect(overlaps(cidr('fd00::/64'), cidr('fd01::/64'))).toBe(false);
  });
});

describe('IPv4 dotted quads (parsed by hand)', () => {
  it('takes four decimal parts of 0-255 without leading zeros, and nothing else', () => {
    for (const s of ['0.0.0.0', '255.255.255.255', '10.1.2.3', '1.0.10.100']) expect([s, parseIP(s)?.family]).toEqual([s, 4]);
    const bad = ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', '1..2.3', '.1.2.3', '1.2.3.', '1.2.3.4 ', 'a.b.c.d', '1.2.3.1000', '00.1.2.3', '1.2.3.-1'];
    for (const s of bad) expect([s, parseIP(s)]).toEqual([s, undefined]);
    expect(parseIP('10.1.2.3')!.ip).toBe(0x0a010203n);
  });
});
