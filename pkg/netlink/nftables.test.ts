// Set keys between nft syntax and register bytes (what `nft add element` sends: fields padded to 4 bytes when
// concatenated, a range as start and end keys). The kernel's side is in e2e/nat.e2e.ts and e2e/macspoof.e2e.ts,
// which run the same elements through netlink and through nft.
import { keyBytes, keyText } from './nftables';

const hex = (b: Buffer) => b.toString('hex');

describe('set keys', () => {
  it('an address alone is its bytes in network order', () => {
    expect(hex(keyBytes(['ipv4_addr'], '10.1.0.5'))).toBe('0a010005');
    expect(hex(keyBytes(['ipv6_addr'], 'fd00::5'))).toBe('fd000000000000000000000000000005');
  });

  it('a range key ends at the prefix end; an address alone is a range of one', () => {
    const f = ['ipv4_addr', 'ipv4_addr'] as const;
    expect(hex(keyBytes([...f], '10.1.0.5 . 10.1.0.0/16'))).toBe('0a010005' + '0a010000');
    expect(hex(keyBytes([...f], '10.1.0.5 . 10.1.0.0/16', true))).toBe('0a010005' + '0a01ffff');
    expect(hex(keyBytes(['ifname', 'ipv6_addr'], '"veth1" . ::', true)).slice(32)).toBe('0'.repeat(32));
  });

  it('concatenated fields are padded to 4 bytes: an interface name is 16, a MAC 6 + 2', () => {
    const b = keyBytes(['ifname', 'ether_addr'], '"veth1" . 0a:58:0a:16:00:05');
    expect(b.length).toBe(24);
    expect(b.subarray(0, 16).toString('utf8').replace(/\0+$/, '')).toBe('veth1');
    expect(hex(b.subarray(16))).toBe('0a580a1600050000');
  });

  it('bytes read back as nft prints them: prefixes, ranges that are no prefix, names quoted', () => {
    const f = ['ipv4_addr', 'ipv4_addr'] as const;
    const key = (t: string) => keyBytes([...f], t);
    expect(keyText([...f], key('10.1.0.5 . 10.1.0.0/16'), keyBytes([...f], '10.1.0.5 . 10.1.0.0/16', true))).toBe('10.1.0.5 . 10.1.0.0/16');
    expect(keyText([...f], key('10.1.0.5 . 10.1.0.3'), key('10.1.0.5 . 10.1.0.9'))).toBe('10.1.0.5 . 10.1.0.3-10.1.0.9');
    expect(keyText([...f], key('10.1.0.5 . 10.1.0.7'), key('10.1.0.5 . 10.1.0.7'))).toBe('10.1.0.5 . 10.1.0.7');
    const v6 = ['ifname', 'ipv6_addr'] as const;
    expect(keyText([...v6], keyBytes([...v6], '"p1" . fe80::/10'), keyBytes([...v6], '"p1" . fe80::/10', true))).toBe('"p1" . fe80::/10');
    expect(keyText(['ifname', 'ether_addr'], keyBytes(['ifname', 'ether_addr'], '"p1" . 0a:58:0a:16:00:05'))).toBe('"p1" . 0a:58:0a:16:00:05');
  });

  it('a key with the wrong number of fields or a bad address is refused', () => {
    expect(() => keyBytes(['ipv4_addr', 'ipv4_addr'], '10.1.0.5')).toThrow(/does not have the 2 field/);
    expect(() => keyBytes(['ipv4_addr'], 'fd00::1')).toThrow(/not an ipv4_addr/);
    expect(() => keyBytes(['ether_addr'], '0a:58')).toThrow(/not a MAC/);
  });
});
