import * as fs from 'fs';
import * as path from 'path';
import { CniError } from '../cni/errors';
import { attachmentComment, attachmentTag, networkTag, planAttachments, type MasqRule } from './model';
import * as nft from './nft';
import * as ipt from './iptables';
import { resolveBackend, validateBackend } from './index';
import { resetToolsForTest, setToolForTest } from './tools';

// The fixture is real `nft -j list table inet tscni` output (nft 1.0.6) after setting up these rules.
const A = { network: 'mynet', containerId: 'c0ffee1234567890abcdef', ifName: 'eth0' };
const B = { network: 'mynet', containerId: 'b', ifName: 'eth0' };
const FIXTURE_RULES: MasqRule[] = [
  { ...A, ip: '10.1.0.5', excluded: ['10.1.0.0/16'] },
  { ...A, ip: 'fd00:1::5', excluded: ['fd00:1::/64', '10.2.0.0/16'] },
  { ...B, ip: '10.1.0.6', excluded: ['10.1.0.0/16'] },
];
const fixture = fs.readFileSync(path.join(__dirname, 'testdata', 'nft-list-table.json'), 'utf8');

describe('tags', () => {
  it('are stable, distinct per attachment and share the network part', () => {
    expect(attachmentTag(A)).toBe('80161ea1-7f21af3efad2');
    expect(attachmentTag(B)).toMatch(/^80161ea1-[0-9a-f]{12}$/);
    expect(attachmentTag(B)).not.toBe(attachmentTag(A));
    expect(attachmentTag({ ...A, ifName: 'net1' })).not.toBe(attachmentTag(A));
    expect(attachmentTag({ ...A, network: 'other' }).startsWith(networkTag('other'))).toBe(true);
    // iptables chain names are limited to 28 characters
    expect(ipt.chainName(attachmentTag(A)).length).toBeLessThanOrEqual(28);
  });

  it('comments are readable and cannot break quoting', () => {
    expect(attachmentComment(A)).toBe('tscni net=mynet id=c0ffee1234567890abcdef if=eth0');
    const c = attachmentComment({ network: 'a"b c;d', containerId: 'x'.repeat(64), ifName: 'eth0' });
    expect(c).toBe(`tscni net=a_b_c_d id=${'x'.repeat(24)} if=eth0`);
    expect(c.length).toBeLessThanOrEqual(128);
  });
});

describe('planAttachments', () => {
  it('groups by attachment, canonicalises and keeps only excluded CIDRs of present families', () => {
    const plans = planAttachments([
      { ...A, ip: '10.1.0.5/24', excluded: ['10.1.0.9/24', '10.1.0.0/24', 'fd00::/64'] },
      { ...A, ip: '10.1.0.5', excluded: [] },
    ]);
    expect(plans).toHaveLength(1);
    expect(plans[0].ips).toEqual([{ family: 4, ip: '10.1.0.5' }]);
    expect(plans[0].excluded).toEqual([{ family: 4, cidr: '10.1.0.0/24' }]);
    const v6 = planAttachments([{ ...A, ip: 'FD00:0:0::5', excluded: ['fd00:0::/64'] }]);
    expect(v6[0].ips[0].ip).toBe('fd00::5');
    expect(v6[0].excluded[0].cidr).toBe('fd00::/64');
  });

  it('rejects a bad address or CIDR', () => {
    expect(() => planAttachments([{ ...A, ip: '10.1.0', excluded: [] }])).toThrow(/invalid pod address/);
    expect(() => planAttachments([{ ...A, ip: '10.1.0.1', excluded: ['10.0.0.0/33'] }])).toThrow(/invalid excluded CIDR/);
  });
});

describe('nftables text', () => {
  const TAG_A = 'tscni:80161ea1-7f21af3efad2 net=mynet id=c0ffee1234567890abcdef if=eth0';

  it('the fast path only adds tagged elements (idempotent: an identical add is a no-op)', () => {
    const s = nft.elementsScript(planAttachments([{ ...A, ip: '10.1.0.5', excluded: ['10.1.0.0/16'] }]));
    expect(s.split('\n').filter(Boolean)).toEqual([
      `add element inet tscni masq4 { 10.1.0.5 comment "${TAG_A}" : 0x7f21af3e }`,
      `add element inet tscni keep4 { 10.1.0.5 . 10.1.0.0/16 comment "${TAG_A}" : 0x7f21af3e }`,
    ]);
  });

  it('nested excluded prefixes collapse to the outer one (interval maps reject overlaps)', () => {
    const plans = planAttachments([{ ...A, ip: '10.244.1.5', excluded: ['10.244.1.0/24', '10.244.0.0/16', '192.168.0.0/16'] }]);
    expect(plans[0].excluded.map((x) => x.cidr)).toEqual(['10.244.0.0/16', '192.168.0.0/16']);
  });

  it('the full script creates table, maps and a refilled base chain, deletes stale elements, then adds', () => {
    const s = nft.fullScript(planAttachments([FIXTURE_RULES[0]]), [{ map: 'masq4', key: '10.1.0.5', ip: '10.1.0.5', comment: 'tscni:old' }]);
    const lines = s.split('\n').filter(Boolean);
    expect(lines[0]).toMatch(/^add table inet tscni /);
    expect(lines).toContain(
      'add map inet tscni keep6 { type ipv6_addr . ipv6_addr : mark; flags interval; comment "pod address . destination not masqueraded"; }',
    );
    const flush = lines.indexOf('flush chain inet tscni postrouting');
    expect(lines.slice(flush + 1, flush + 7)).toEqual([
      'add rule inet tscni postrouting ip daddr 224.0.0.0/4 return',
      'add rule inet tscni postrouting ip6 daddr ff00::/8 return',
      'add rule inet tscni postrouting ip saddr . ip daddr @keep4 return',
      'add rule inet tscni postrouting ip6 saddr . ip6 daddr @keep6 return',
      'add rule inet tscni postrouting ip saddr @masq4 counter masquerade',
      'add rule inet tscni postrouting ip6 saddr @masq6 counter masquerade',
    ]);
    const del = lines.indexOf('delete element inet tscni masq4 { 10.1.0.5 }');
    expect(del).toBeGreaterThan(flush);
    expect(del).toBeLessThan(lines.findIndex((l) => l.startsWith('add element')));
  });

  it('parses nft -j output: base chain rule keys and tagged elements', () => {
    const st = nft.parseTable(fixture);
    expect(st.exists).toBe(true);
    expect(st.baseHooked).toBe(true);
    expect(st.baseRules).toEqual(nft.BASE_RULE_KEYS);
    expect(st.elements).toEqual(
      expect.arrayContaining([
        { map: 'masq4', key: '10.1.0.5', ip: '10.1.0.5', comment: TAG_A },
        { map: 'keep4', key: '10.1.0.5 . 10.2.0.0/16', ip: '10.1.0.5', comment: TAG_A },
        { map: 'keep6', key: 'fd00:1::5 . fd00:1::/64', ip: 'fd00:1::5', comment: TAG_A },
        { map: 'masq4', key: '10.1.0.6', ip: '10.1.0.6', comment: `tscni:${attachmentTag(B)} net=mynet id=b if=eth0` },
      ]),
    );
    expect(st.elements).toHaveLength(7);
  });

  it('parses an empty listing and untagged or single-address elements', () => {
    expect(nft.parseTable('').exists).toBe(false);
    const st = nft.parseTable(
      JSON.stringify({
        nftables: [
          { table: { family: 'inet', name: 'tscni' } },
          { map: { name: 'keep4', elem: [[{ concat: ['10.9.9.9', '10.0.0.1'] }, 5]] } },
          {
            rule: {
              chain: 'postrouting',
              expr: [
                { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { prefix: { addr: '10.0.0.0', len: 8 } } } },
                { return: null },
              ],
            },
          },
        ],
      }),
    );
    expect(st.elements).toEqual([{ map: 'keep4', key: '10.9.9.9 . 10.0.0.1', ip: '10.9.9.9', comment: undefined }]);
    expect(st.baseRules).toEqual(['ip daddr != 10.0.0.0/8 return']);
    expect(nft.deleteScript(st, () => true)).toBe(''); // untagged: never ours
  });

  it('check: a correct table has no problems; missing, foreign and unexpected elements are named', () => {
    const plans = planAttachments(FIXTURE_RULES);
    expect(nft.checkState(nft.parseTable(fixture), plans)).toEqual([]);
    let st = nft.parseTable(fixture);
    st.elements = st.elements.filter((e) => e.key !== '10.1.0.6');
    expect(nft.checkState(st, plans)).toEqual([expect.stringMatching(/masq4 element 10.1.0.6 is missing/)]);
    st = nft.parseTable(fixture);
    st.elements.find((e) => e.key === '10.1.0.6')!.comment = 'tscni:deadbeef-000000000000';
    expect(nft.checkState(st, plans)).toEqual([expect.stringMatching(/10.1.0.6 belongs to "tscni:deadbeef/)]);
    // the fixture has 10.2.0.0/16 excluded for A; a plan without it sees it as unexpected
    const p = nft.checkState(
      nft.parseTable(fixture),
      planAttachments([{ ...A, ip: '10.1.0.5', excluded: ['10.1.0.0/16'] }, { ...FIXTURE_RULES[1], excluded: ['fd00:1::/64'] }, FIXTURE_RULES[2]]),
    );
    expect(p).toEqual([expect.stringMatching(/unexpected element 10.1.0.5 . 10.2.0.0\/16/)]);
    st = nft.parseTable(fixture);
    st.baseRules.pop();
    expect(nft.checkState(st, plans)).toEqual([expect.stringMatching(/chain inet tscni postrouting is missing or changed/)]);
    expect(nft.checkState(nft.parseTable(''), plans)).toEqual(['nftables table inet tscni is missing']);
  });

  it('delete selects elements by the tag in their comment', () => {
    const st = nft.parseTable(fixture);
    const tagA = attachmentTag(A);
    expect(
      nft
        .deleteScript(st, (t) => t === tagA)
        .split('\n')
        .filter(Boolean)
        .sort(),
    ).toEqual(
      [
        'delete element inet tscni masq4 { 10.1.0.5 }',
        'delete element inet tscni keep4 { 10.1.0.5 . 10.1.0.0/16 }',
        'delete element inet tscni keep4 { 10.1.0.5 . 10.2.0.0/16 }',
        'delete element inet tscni masq6 { fd00:1::5 }',
        'delete element inet tscni keep6 { fd00:1::5 . fd00:1::/64 }',
      ].sort(),
    );
    expect(nft.deleteScript(st, (t) => t === 'nope')).toBe('');
  });
});

const SAVE = `# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:TSCNI-80161ea1-7f21af3efad2 - [0:0]
:KUBE-POSTROUTING - [0:0]
-A POSTROUTING -j KUBE-POSTROUTING
-A POSTROUTING -s 10.1.0.5/32 -m comment --comment "tscni net=mynet id=c0ffee1234567890abcdef if=eth0" -j TSCNI-80161ea1-7f21af3efad2
-A POSTROUTING -s 10.1.0.99/32 -m comment --comment "tscni net=mynet id=c0ffee1234567890abcdef if=eth0" -j TSCNI-80161ea1-7f21af3efad2
-A TSCNI-80161ea1-7f21af3efad2 -d 10.1.0.0/16 -m comment --comment "tscni net=mynet id=c0ffee1234567890abcdef if=eth0" -j RETURN
-A TSCNI-80161ea1-7f21af3efad2 ! -d 224.0.0.0/4 -m comment --comment "tscni net=mynet id=c0ffee1234567890abcdef if=eth0" -j MASQUERADE
COMMIT
`;

describe('iptables text', () => {
  it('parses iptables-save', () => {
    const t = ipt.parseSave(SAVE);
    expect(t.chains.has('TSCNI-80161ea1-7f21af3efad2')).toBe(true);
    expect(t.rules.filter((r) => r.chain === 'POSTROUTING').map(ipt.jumpTarget)).toEqual([
      'KUBE-POSTROUTING',
      'TSCNI-80161ea1-7f21af3efad2',
      'TSCNI-80161ea1-7f21af3efad2',
    ]);
    expect(ipt.ruleKey(t.rules[4].spec)).toBe('! -d 224.0.0.0/4 MASQUERADE');
  });

  it('setup refills the chain, keeps a present jump, drops a stale one and adds a missing one', () => {
    const t = ipt.parseSave(SAVE);
    const c = 'TSCNI-80161ea1-7f21af3efad2';
    const cm = '-m comment --comment "tscni net=mynet id=c0ffee1234567890abcdef if=eth0"';
    const s = ipt.setupRestore(t, planAttachments([{ ...A, ip: '10.1.0.5', excluded: ['10.1.0.0/16'] }]), 4);
    expect(s.split('\n').filter(Boolean)).toEqual([
      '*nat',
      `:${c} - [0:0]`,
      `-A ${c} -d 10.1.0.0/16 ${cm} -j RETURN`,
      `-A ${c} ! -d 224.0.0.0/4 ${cm} -j MASQUERADE`,
      `-D POSTROUTING -s 10.1.0.99/32 ${cm} -j ${c}`,
      'COMMIT',
    ]);
    const fresh = ipt.setupRestore(ipt.parseSave(''), planAttachments([{ ...A, ip: 'fd00::5', excluded: ['fd00::/64'] }]), 6);
    expect(fresh).toContain(`-A ${c} ! -d ff00::/8 ${cm} -j MASQUERADE`);
    expect(fresh).toContain(`-A POSTROUTING -s fd00::5/128 ${cm} -j ${c}`);
    // nothing of this family: nothing to write
    expect(ipt.setupRestore(t, planAttachments([{ ...A, ip: 'fd00::5', excluded: [] }]), 4)).toBe('');
  });

  it('delete finds jumps by target chain, without an address', () => {
    const c = 'TSCNI-80161ea1-7f21af3efad2';
    const s = ipt.deleteRestore(ipt.parseSave(SAVE), (x) => x === c);
    const lines = s.split('\n').filter(Boolean);
    expect(lines.filter((l) => l.startsWith('-D POSTROUTING'))).toHaveLength(2);
    expect(lines.slice(-3)).toEqual([`-F ${c}`, `-X ${c}`, 'COMMIT']);
    expect(s).not.toContain('KUBE');
    expect(ipt.deleteRestore(ipt.parseSave(SAVE), () => false)).toBe('');
  });

  it('check names what is missing', () => {
    const t = ipt.parseSave(SAVE);
    const plans = planAttachments([{ ...A, ip: '10.1.0.5', excluded: ['10.1.0.0/16'] }]);
    expect(ipt.checkTable(t, plans, 4)).toEqual([]);
    const p = ipt.checkTable(t, planAttachments([{ ...A, ip: '10.1.0.7', excluded: ['10.1.0.0/16', '10.2.0.0/16'] }]), 4);
    expect(p).toHaveLength(2);
    expect(p[0]).toMatch(/has rules/);
    expect(p[1]).toMatch(/no jump from 10.1.0.7\/32/);
  });
});

describe('backend choice', () => {
  afterEach(resetToolsForTest);

  it('validateBackend accepts the two names and unset, else code 2 naming the key and value', () => {
    expect(validateBackend(undefined)).toBeUndefined();
    expect(validateBackend('iptables')).toBe('iptables');
    expect(validateBackend('nftables')).toBe('nftables');
    for (const bad of ['ebpf', 3, '']) {
      let err: unknown;
      try {
        validateBackend(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CniError);
      expect((err as CniError).code).toBe(2);
      expect((err as CniError).message).toContain('ipMasqBackend');
      expect((err as CniError).message).toContain(JSON.stringify(bad));
    }
  });

  it('resolveBackend prefers the configured one, then nft, then iptables', async () => {
    setToolForTest('nft', '/usr/sbin/nft');
    expect(await resolveBackend(undefined)).toBe('nftables');
    expect(await resolveBackend('iptables')).toBe('iptables');
    setToolForTest('nft', undefined);
    setToolForTest('iptables-restore', '/usr/sbin/iptables-restore');
    expect(await resolveBackend(undefined)).toBe('iptables');
    setToolForTest('iptables-restore', undefined);
    setToolForTest('ip6tables-restore', undefined);
    await expect(resolveBackend(undefined)).rejects.toThrow(/neither nft nor iptables/);
    await expect(resolveBackend('bogus')).rejects.toMatchObject({ code: 2 });
  });
});
