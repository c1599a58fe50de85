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
  it('setup is one idempotent transaction: add, flush, refill', () => {
    const s = nft.setupScript(planAttachments([{ ...A, ip: '10.1.0.5', excluded: ['10.1.0.0/16'] }]));
    const c = 'masq-80161ea1-7f21af3efad2';
    expect(s.split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(/^add table inet tscni /),
      'add chain inet tscni postrouting { type nat hook postrouting priority srcnat; policy accept; }',
      'add map inet tscni masq4 { type ipv4_addr : verdict; }',
      'add map inet tscni masq6 { type ipv6_addr : verdict; }',
      'flush chain inet tscni postrouting',
      'add rule inet tscni postrouting ip saddr vmap @masq4',
      'add rule inet tscni postrouting ip6 saddr vmap @masq6',
      `add chain inet tscni ${c} { comment "tscni net=mynet id=c0ffee1234567890abcdef if=eth0"; }`,
      `flush chain inet tscni ${c}`,
      `add rule inet tscni ${c} ip daddr 10.1.0.0/16 return`,
      `add rule inet tscni ${c} ip daddr 224.0.0.0/4 return`,
      `add rule inet tscni ${c} counter masquerade comment "tscni net=mynet id=c0ffee1234567890abcdef if=eth0"`,
      `add element inet tscni masq4 { 10.1.0.5 comment "tscni net=mynet id=c0ffee1234567890abcdef if=eth0" : goto ${c} }`,
    ]);
  });

  it('setup can first drop stale elements that hold our addresses', () => {
    const s = nft.setupScript(planAttachments([FIXTURE_RULES[0]]), [{ map: 'masq4', ip: '10.1.0.5', target: 'masq-old' }]);
    const lines = s.split('\n');
    const del = lines.indexOf('delete element inet tscni masq4 { 10.1.0.5 }');
    expect(del).toBeGreaterThan(0);
    expect(del).toBeLessThan(lines.findIndex((l) => l.startsWith('add element')));
  });

  it('parses nft -j output into chains, rule keys and elements', () => {
    const st = nft.parseTable(fixture);
    expect(st.exists).toBe(true);
    expect(st.baseHooked).toBe(true);
    expect(st.chains.get('postrouting')).toEqual(['ip saddr vmap @masq4', 'ip6 saddr vmap @masq6']);
    expect(st.chains.get('masq-80161ea1-7f21af3efad2')).toEqual([
      'ip daddr 10.1.0.0/16 return',
      'ip6 daddr fd00:1::/64 return',
      'ip daddr 10.2.0.0/16 return',
      'ip daddr 224.0.0.0/4 return',
      'ip6 daddr ff00::/8 return',
      'masquerade',
    ]);
    expect(st.elements).toEqual(
      expect.arrayContaining([
        { map: 'masq4', ip: '10.1.0.5', target: 'masq-80161ea1-7f21af3efad2' },
        { map: 'masq6', ip: 'fd00:1::5', target: 'masq-80161ea1-7f21af3efad2' },
        { map: 'masq4', ip: '10.1.0.6', target: `masq-${attachmentTag(B)}` },
      ]),
    );
    expect(st.elements).toHaveLength(3);
  });

  it('parses an empty listing and single-address / uncommented elements', () => {
    expect(nft.parseTable('').exists).toBe(false);
    const st = nft.parseTable(
      JSON.stringify({
        nftables: [
          { table: { family: 'inet', name: 'tscni' } },
          { map: { name: 'masq4', elem: [['10.9.9.9', { jump: { target: 'x' } }]] } },
          { rule: { chain: 'x', expr: [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '10.0.0.1' } }, { return: null }] } },
        ],
      }),
    );
    expect(st.elements).toEqual([{ map: 'masq4', ip: '10.9.9.9', target: 'x' }]);
    expect(st.chains.get('x')).toEqual(['ip daddr 10.0.0.1/32 return']);
  });

  it('check: a correct table has no problems; a missing rule, element or chain is named', () => {
    const st = nft.parseTable(fixture);
    const plans = planAttachments(FIXTURE_RULES);
    expect(nft.checkState(st, plans)).toEqual([]);
    const chain = st.chains.get('masq-80161ea1-7f21af3efad2')!;
    chain.splice(chain.indexOf('masquerade'), 1);
    st.elements = st.elements.filter((e) => e.ip !== '10.1.0.6');
    const p = nft.checkState(st, plans);
    expect(p).toHaveLength(2);
    expect(p[0]).toMatch(/masq-80161ea1-7f21af3efad2 .*has rules/);
    expect(p[1]).toMatch(/no element for 10.1.0.6/);
    expect(nft.checkState(nft.parseTable(''), plans)).toEqual(['nftables table inet tscni is missing']);
  });

  it('delete removes elements pointing to the chain, then the chain', () => {
    const st = nft.parseTable(fixture);
    const s = nft.deleteScript(st, new Set(['masq-80161ea1-7f21af3efad2']));
    expect(s.split('\n').filter(Boolean)).toEqual([
      'delete element inet tscni masq4 { 10.1.0.5 }',
      'delete element inet tscni masq6 { fd00:1::5 }',
      'flush chain inet tscni masq-80161ea1-7f21af3efad2',
      'delete chain inet tscni masq-80161ea1-7f21af3efad2',
    ]);
    expect(nft.deleteScript(st, new Set(['masq-nope']))).toBe('');
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
