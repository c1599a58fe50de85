// pkg/nat against the real kernel, always inside namespaces of our own ({netns} option): rules, idempotency,
// teardown without addresses, GC, CHECK, both backends, and real traffic through a masquerading node.
import * as exec from '../pkg/exec';
import { checkMasq, gcMasq, setupMasq, teardownMasq, type MasqBackend, type MasqRule } from '../pkg/nat';
import { attachmentTag } from '../pkg/nat/model';
import { resetToolsForTest, setToolForTest } from '../pkg/nat/tools';
import { setNetlinkForTest } from '../pkg/netlink/native';
import { useWorld, type Netns } from './lib/world';

jest.setTimeout(60_000);

const NET = 'natnet';
const att = (cid: string, ifName = 'eth0') => ({ network: NET, containerId: cid, ifName });
const A = att('container-a');
const B = att('container-b');
const rulesA: MasqRule[] = [
  { ...A, ip: '10.1.0.5', excluded: ['10.1.0.0/16', '10.200.0.0/16'] },
  { ...A, ip: 'fd00:1::5', excluded: ['fd00:1::/64'] },
];
const rulesB: MasqRule[] = [{ ...B, ip: '10.1.0.6', excluded: ['10.1.0.0/16'] }];

async function nftText(ns: Netns): Promise<string> {
  const r = await ns.exec(['nft', 'list', 'table', 'inet', 'tscni'], { allowFailure: true });
  return r.exitCode === 0 ? r.stdout.replace(/packets \d+ bytes \d+/g, '') : '';
}
async function nftJson(ns: Netns): Promise<any[]> {
  const r = await ns.exec(['nft', '-j', 'list', 'ruleset']);
  return JSON.parse(r.stdout).nftables;
}
async function iptSave(ns: Netns, f: 4 | 6): Promise<string> {
  return (await ns.exec([f === 4 ? 'iptables-save' : 'ip6tables-save', '-t', 'nat'])).stdout;
}
const lines = (s: string, re: RegExp) => s.split('\n').filter((l) => re.test(l));

/** Spawns made by fn, by program basename (the program asked for, before any nsenter prefix). */
async function spawns(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const spy = jest.spyOn(exec, 'run');
  try {
    await fn();
    const count: Record<string, number> = {};
    for (const [file] of spy.mock.calls) {
      const b = file.split('/').pop()!;
      count[b] = (count[b] ?? 0) + 1;
    }
    return count;
  } finally {
    spy.mockRestore();
  }
}

// the in-process door (netlink, pkg/netlink/nftables.ts) and the nft program, which it falls back to; `n` is the
// nft spawns each door takes for the same work
describe.each([
  ['netlink', true],
  ['nft', false],
] as const)('nftables rules (%s door)', (_door, netlink) => {
  const n = (viaNetlink: number, viaNft: number): Record<string, number> => {
    const count = netlink ? viaNetlink : viaNft;
    return count ? { nft: count } : {};
  };
  beforeAll(() => setNetlinkForTest(netlink));
  afterAll(() => setNetlinkForTest(undefined));
  const world = useWorld();
  let ns: Netns;
  let o: { netns: string };
  const tagged = (text: string, a: typeof A) =>
    text
      .split('\n')
      .filter((l) => l.includes(`tscni:${attachmentTag(a)}`))
      .join('\n');
  beforeAll(async () => {
    ns = await world.pod('nft');
    o = { netns: ns.path };
  });

  it('first setup creates the table with nft -f, later ones only add elements; dual-stack in one inet table; idempotent', async () => {
    expect(await spawns(() => setupMasq('nftables', [...rulesA, ...rulesB], o))).toEqual(n(1, 2));
    const first = await nftText(ns);
    expect(await spawns(() => setupMasq('nftables', [...rulesA, ...rulesB], o))).toEqual(n(0, 1));
    expect(await nftText(ns)).toBe(first);

    const items = await nftJson(ns);
    const elems = Object.fromEntries(items.filter((i) => i.map).map((i) => [i.map.name, i.map.elem ?? []]));
    expect(elems.masq4).toHaveLength(2);
    expect(elems.keep4).toHaveLength(3); // A: 10.1/16 + 10.200/16, B: 10.1/16
    expect(elems.masq6).toHaveLength(1);
    expect(elems.keep6).toHaveLength(1);
    expect(first).toContain(`10.1.0.5 comment "tscni:${attachmentTag(A)} net=natnet id=container-a if=eth0"`);
    expect(first).toMatch(/ip6 saddr @masq6 counter packets \d* ?bytes \d* ?masquerade|ip6 saddr @masq6 counter\s+masquerade/);
    expect(await checkMasq('nftables', [...rulesA, ...rulesB], o)).toEqual([]);
  });

  it('teardown needs no address (a listing, then deletes) and leaves other attachments alone', async () => {
    await setupMasq('nftables', [...rulesA, ...rulesB], o);
    expect(await spawns(() => teardownMasq(A, o))).toEqual(n(0, 2));
    const text = await nftText(ns);
    expect(tagged(text, A)).toBe('');
    expect(text).not.toContain('10.1.0.5');
    expect(text).not.toContain('fd00:1::5');
    expect(tagged(text, B)).toContain('10.1.0.6');
    expect(await checkMasq('nftables', rulesB, o)).toEqual([]);
    // again: nothing left, still fine, and only the listing
    expect(await spawns(() => teardownMasq(A, o))).toEqual(n(0, 1));
  });

  it('check is one listing and names a deleted rule and a deleted element; ADD again repairs', async () => {
    await setupMasq('nftables', rulesA, o);
    expect(await spawns(() => checkMasq('nftables', rulesA, o))).toEqual(n(0, 1));
    await ns.exec(['nft', 'delete', 'element', 'inet', 'tscni', 'masq6', '{', 'fd00:1::5', '}']);
    expect(await checkMasq('nftables', rulesA, o)).toEqual([expect.stringMatching(/masq6 element fd00:1::5 is missing/)]);
    await setupMasq('nftables', rulesA, o);
    expect(await checkMasq('nftables', rulesA, o)).toEqual([]);
    const masq = (await nftJson(ns)).find((i) => i.rule?.chain === 'postrouting' && i.rule.expr.some((e: any) => 'masquerade' in e));
    await ns.exec(['nft', 'delete', 'rule', 'inet', 'tscni', 'postrouting', 'handle', String(masq.rule.handle)]);
    expect(await checkMasq('nftables', rulesA, o)).toEqual([expect.stringMatching(/postrouting is missing or changed/)]);
    // a deleted map (or table) sends setup down the full path, which also rebuilds the chain
    await ns.exec(['nft', 'delete', 'table', 'inet', 'tscni']);
    await setupMasq('nftables', rulesA, o);
    expect(await checkMasq('nftables', rulesA, o)).toEqual([]);
  });

  it("teardown with the rules known (prevResult) is one transaction, idempotent, and never takes another owner's element", async () => {
    await setupMasq('nftables', [...rulesA, ...rulesB], o);
    expect(await spawns(() => teardownMasq(A, o, rulesA))).toEqual(n(0, 1));
    const text = await nftText(ns);
    expect(tagged(text, A)).toBe('');
    expect(tagged(text, B)).toContain('10.1.0.6');
    expect(await spawns(() => teardownMasq(A, o, rulesA))).toEqual(n(0, 1)); // DEL twice
    // rules that name B's address as A's: the clash aborts the blind delete, the listing removes only A's own
    await setupMasq('nftables', rulesA, o);
    expect(await spawns(() => teardownMasq(A, o, [{ ...A, ip: '10.1.0.6', excluded: [] }]))).toEqual(n(0, 3));
    expect(tagged(await nftText(ns), A)).toBe('');
    expect(await checkMasq('nftables', rulesB, o)).toEqual([]);
    await teardownMasq(B, o, rulesB);
    expect(await nftText(ns)).not.toContain('10.1.0.6');
  });

  it("gc removes the network's invalid attachments only", async () => {
    const other = { network: 'othernet', containerId: 'container-z', ifName: 'eth0' };
    const C = att('container-c', 'net1');
    await setupMasq('nftables', [...rulesA, ...rulesB, { ...C, ip: '10.1.0.7', excluded: [] }, { ...other, ip: '10.9.0.7', excluded: [] }], o);
    await gcMasq(NET, [B], o);
    const text = await nftText(ns);
    expect(tagged(text, B)).not.toBe('');
    expect(tagged(text, other)).not.toBe('');
    expect(tagged(text, A)).toBe('');
    expect(tagged(text, C)).toBe('');
    expect(text).not.toMatch(/10\.1\.0\.[57]\b/);
    await gcMasq(NET, [], o);
    expect(tagged(await nftText(ns), B)).toBe('');
    await teardownMasq(other, o);
  });

  it('an address still held by a stale attachment is taken over', async () => {
    await setupMasq('nftables', [{ ...B, ip: '10.1.0.6', excluded: ['10.0.0.0/8'] }], o);
    const D = att('container-d');
    const rulesD = [{ ...D, ip: '10.1.0.6', excluded: ['10.1.0.0/16'] }];
    expect(await spawns(() => setupMasq('nftables', rulesD, o))).toEqual(n(1, 3));
    expect(await checkMasq('nftables', rulesD, o)).toEqual([]);
    await teardownMasq(B, o); // the stale owner's DEL must not take D's elements
    expect(await checkMasq('nftables', rulesD, o)).toEqual([]);
    await teardownMasq(D, o);
    expect(await nftText(ns)).not.toContain('10.1.0.6');
  });

  it('teardown works when the host has no iptables, and when it has no nft', async () => {
    await setupMasq('nftables', rulesA, o);
    try {
      for (const t of ['iptables-save', 'iptables-restore', 'ip6tables-save', 'ip6tables-restore']) setToolForTest(t, undefined);
      expect(await spawns(() => teardownMasq(A, o))).toEqual(n(0, 2));
      resetToolsForTest();
      setToolForTest('nft', undefined);
      await expect(teardownMasq(A, o)).resolves.toBeUndefined();
      await expect(setupMasq('nftables', rulesA, o)).rejects.toThrow(/nft program is not installed/);
    } finally {
      resetToolsForTest();
    }
    expect(tagged(await nftText(ns), A)).toBe('');
  });
});

describe('iptables rules', () => {
  const world = useWorld();
  let ns: Netns;
  let o: { netns: string };
  beforeAll(async () => {
    ns = await world.pod('ipt');
    o = { netns: ns.path };
  });

  it('setup in iptables and ip6tables, idempotent, then check and teardown without address', async () => {
    const n = await spawns(() => setupMasq('iptables', [...rulesA, ...rulesB], o));
    expect(n).toEqual({ 'iptables-save': 1, 'iptables-restore': 1, 'ip6tables-save': 1, 'ip6tables-restore': 1 });
    await setupMasq('iptables', [...rulesA, ...rulesB], o);
    const chainA = `TSCNI-${attachmentTag(A)}`;
    const v4 = await iptSave(ns, 4);
    const v6 = await iptSave(ns, 6);
    expect(lines(v4, /^-A POSTROUTING .*-j TSCNI-/)).toHaveLength(2);
    expect(lines(v4, new RegExp(`^-A POSTROUTING -s 10.1.0.5/32 -m comment --comment "tscni net=natnet id=container-a if=eth0" -j ${chainA}$`))).toHaveLength(
      1,
    );
    expect(lines(v4, new RegExp(`^-A ${chainA} `))).toEqual([
      expect.stringContaining('-d 10.1.0.0/16'),
      expect.stringContaining('-d 10.200.0.0/16'),
      expect.stringMatching(/! -d 224.0.0.0\/4 .*-j MASQUERADE$/),
    ]);
    expect(lines(v6, /^-A POSTROUTING -s fd00:1::5\/128 .*-j TSCNI-/)).toHaveLength(1);
    expect(lines(v6, new RegExp(`^-A ${chainA} .*ff00::/8 .*MASQUERADE`))).toHaveLength(1);
    expect(await checkMasq('iptables', [...rulesA, ...rulesB], o)).toEqual([]);

    // CHECK sees a removed jump
    await ns.exec([
      'ip6tables',
      '-w',
      '-t',
      'nat',
      '-D',
      'POSTROUTING',
      '-s',
      'fd00:1::5/128',
      '-m',
      'comment',
      '--comment',
      'tscni net=natnet id=container-a if=eth0',
      '-j',
      chainA,
    ]);
    expect(await checkMasq('iptables', rulesA, o)).toEqual([expect.stringMatching(/ip6tables nat POSTROUTING has no jump from fd00:1::5\/128/)]);

    await teardownMasq(A, o);
    const after = (await iptSave(ns, 4)) + (await iptSave(ns, 6));
    expect(after).not.toContain(chainA);
    expect(after).toContain(`TSCNI-${attachmentTag(B)}`);
    await teardownMasq(A, o);
    await gcMasq(NET, [], o);
    expect((await iptSave(ns, 4)) + (await iptSave(ns, 6))).not.toContain('TSCNI-');
  });
});

// pod --- node (masquerades, forwards) --- outside (has no route back to the pods)
describe.each<MasqBackend>(['nftables', 'iptables'])('traffic through a masquerading node (%s)', (backend) => {
  const world = useWorld();
  let node: Netns;
  let pod: Netns;
  let out: Awaited<ReturnType<typeof world.outside>>;
  const podIp = '10.1.0.2';
  const podIp6 = 'fd00:1::2';
  const rules = (extra: string[] = []): MasqRule[] => [
    { ...A, ip: podIp, excluded: ['10.1.0.0/24', ...extra] },
    { ...A, ip: podIp6, excluded: ['fd00:1::/64'] },
  ];

  beforeAll(async () => {
    node = await world.node('node', { forwarding: true });
    out = await world.outside(node);
    // IPv6 on the uplink by hand: world.outside's subnet6 writes `-6 route ...` into `ip -batch`, which iproute2 rejects
    await node.ip(['-batch', '-'], { input: 'address add fd00:77::1/64 dev uplink nodad\nroute add default via fd00:77::2\n' });
    await out.ns.ip(['address', 'add', 'fd00:77::2/64', 'dev', 'eth0', 'nodad']);
    Object.assign(out, { ip6: 'fd00:77::2', nodeIp6: 'fd00:77::1' });
    pod = await world.pod('pod', { lo: true });
    await world.link(node, pod, { subnet: '10.1.0.0/24', subnet6: 'fd00:1::/64', aIf: 'cni-p', bIf: 'eth0' });
    await pod.ip(['-batch', '-'], { input: 'route add default via 10.1.0.1\nroute add default via fd00:1::1\n' });
  });

  it('without masquerade the outside cannot answer the pod', async () => {
    expect(await world.ping(pod, out.ip, { timeoutSec: 1 })).toBe(false);
  });

  it('with masquerade the outside sees the node address, IPv4 and IPv6', async () => {
    await setupMasq(backend, rules(), { netns: node.path });
    expect(await world.ping(pod, out.ip)).toBe(true);
    expect(await world.tcp(pod, out.ns, out.ip, 8080)).toBe(out.nodeIp);
    expect(await world.tcp(pod, out.ns, out.ip6!, 8081)).toBe(out.nodeIp6);
  });

  it('excluded destinations keep the pod address; re-setup and teardown change what the outside sees', async () => {
    await out.ns.ip(['route', 'add', '10.1.0.0/24', 'via', out.nodeIp]);
    await setupMasq(backend, rules(['203.0.113.0/24']), { netns: node.path });
    expect(await world.tcp(pod, out.ns, out.ip, 8082)).toBe(podIp);
    await teardownMasq(A, { netns: node.path });
    await setupMasq(backend, rules(), { netns: node.path });
    expect(await world.tcp(pod, out.ns, out.ip, 8083)).toBe(out.nodeIp);
    await teardownMasq(A, { netns: node.path });
    expect(await world.tcp(pod, out.ns, out.ip, 8084)).toBe(podIp);
  });
});
