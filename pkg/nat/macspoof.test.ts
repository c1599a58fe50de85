// macspoofchk planning and the reading of a table listed by a real nft (testdata recorded from fullScript(P) plus
// the elements of Q, in a throwaway namespace).
import * as fs from 'fs';
import * as path from 'path';
import { checkSpoofState, deleteScript, elementsScript, fullScript, parseSpoofTable, portElements, type SpoofPort } from './macspoof';
import { attachmentTag } from './model';

const P: SpoofPort = {
  att: { network: 'net1', containerId: 'c1', ifName: 'eth0' },
  port: 'veth0123456789a',
  mac: '0A:58:0a:16:00:05',
  ips: ['10.22.0.5/16', 'fd22::5/64'],
};
const Q: SpoofPort = { att: { network: 'net1', containerId: 'c2', ifName: 'eth0' }, port: 'vethbbbbbbbbbbb', mac: '0a:58:0a:16:00:06', ips: [] };
const recorded = () => parseSpoofTable(fs.readFileSync(path.join(__dirname, 'testdata', 'nft-list-macspoof.json'), 'utf8'));

describe('macspoofchk plan', () => {
  it('owns port, port . MAC and, per family present, port and port . address (IPv6 also link-local and ::)', () => {
    const keys = portElements(P).map((e) => `${e.set} ${e.key}`);
    expect(keys).toEqual([
      'ports "veth0123456789a"',
      'macs "veth0123456789a" . 0a:58:0a:16:00:05',
      'ports4 "veth0123456789a"',
      'addrs4 "veth0123456789a" . 10.22.0.5',
      'ports6 "veth0123456789a"',
      'addrs6 "veth0123456789a" . fe80::/10',
      'addrs6 "veth0123456789a" . ::',
      'addrs6 "veth0123456789a" . fd22::5',
    ]);
    // an L2-only pod: its MAC alone
    expect(portElements(Q).map((e) => e.set)).toEqual(['ports', 'macs']);
    expect(new Set(portElements(P).map((e) => e.comment))).toEqual(new Set([`tscni:${attachmentTag(P.att)} net=net1 id=c1 if=eth0`]));
  });

  it('ADD is element adds only; the full script also makes table, sets and the flushed chain', () => {
    expect(
      elementsScript(P)
        .split('\n')
        .filter(Boolean)
        .every((l) => l.startsWith('add element bridge tscni-macspoof ')),
    ).toBe(true);
    const full = fullScript(P);
    expect(full).toContain('add chain bridge tscni-macspoof prerouting { type filter hook prerouting priority -300; policy accept; }\nflush chain');
    expect(full.endsWith(elementsScript(P))).toBe(true);
  });

  it('refuses an address that is not one', () => {
    expect(() => portElements({ ...P, ips: ['10.22.0.300'] })).toThrow(/macspoofchk: invalid pod address/);
  });
});

describe('macspoofchk state from nft -j', () => {
  it('reads the hooked chain, its four rules and every element with its key as the plan writes it', () => {
    const st = recorded();
    expect(st.exists).toBe(true);
    expect(st.hooked).toBe(true);
    expect(st.rules).toEqual(['@ports @macs drop', '@ports4 0.0.0.0 @addrs4 drop', '@ports4 @addrs4 drop', '@ports6 @addrs6 drop']);
    const want = [...portElements(P), ...portElements(Q)].map((e) => `${e.set} ${e.key} ${e.comment}`).sort();
    expect(st.elements.map((e) => `${e.set} ${e.key} ${e.comment}`).sort()).toEqual(want);
  });

  it('CHECK passes as recorded, and names a missing table, a changed chain, a missing element and a stale MAC', () => {
    const st = recorded();
    expect(checkSpoofState(st, P)).toEqual([]);
    expect(checkSpoofState(st, Q)).toEqual([]);
    expect(checkSpoofState(parseSpoofTable(''), P)).toEqual(['macspoofchk: nftables table bridge tscni-macspoof is missing']);
    expect(checkSpoofState({ ...st, rules: st.rules.slice(1) }, P)[0]).toMatch(/chain bridge tscni-macspoof prerouting is missing or changed/);
    const noMac = { ...st, elements: st.elements.filter((e) => !(e.set === 'macs' && e.key.startsWith('"veth0'))) };
    expect(checkSpoofState(noMac, P)).toEqual(['macspoofchk: nftables set macs has no element "veth0123456789a" . 0a:58:0a:16:00:05']);
    // the pod's MAC changed since: the element of the old one is both missing and unexpected
    const moved = checkSpoofState(st, { ...P, mac: '0a:58:0a:16:00:99' });
    expect(moved).toHaveLength(2);
    expect(moved[1]).toMatch(/unexpected element "veth0123456789a" \. 0a:58:0a:16:00:05/);
  });

  it('DEL and GC delete exactly the selected tags', () => {
    const st = recorded();
    const tagP = attachmentTag(P.att);
    const del = deleteScript(st, (t) => t === tagP);
    expect(del.split('\n').filter(Boolean)).toHaveLength(portElements(P).length);
    expect(del).toContain('delete element bridge tscni-macspoof addrs6 { "veth0123456789a" . fe80::/10 }');
    expect(del).not.toContain('vethbbbbbbbbbbb');
    expect(deleteScript(st, () => false)).toBe('');
  });
});
