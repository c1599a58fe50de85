import { stableMac } from '../pkg/ip/mac';
import { argvOf } from '../pkg/ip/ops';
import { parseFabricConf, parsePeersFile } from '../pkg/fabric/config';
import { planFabric, underlayFacts } from '../pkg/fabric/plan';
import { diffFabric } from '../pkg/fabric/reconcile';
import { FABRIC_ALIAS, RTPROT_TSCNI, type DesiredFabric, type FabricState, type Peer, type UnderlayFacts } from '../pkg/fabric/types';
import { hostGwMode } from './host-gw/host-gw';
import { ipipMode } from './ipip/ipip';
import { vxlanMode } from './vxlan/vxlan';
import { thrown } from '../pkg/testing';
import type { IpLink } from '../pkg/ip/ops';

const underlay: UnderlayFacts = { dev: 'eth0', mtu: 1400, nodeIP: '192.168.50.1', connected: ['192.168.50.0/24'] };
const peers: Peer[] = [
  { nodeIP: '192.168.50.2', podCIDR: '10.244.2.0/24', key: 'peers[0]' },
  { nodeIP: '192.168.60.3', podCIDR: '10.244.3.0/24', key: 'peers[1]' },
];
const opts = (o: Record<string, unknown> = {}) => parseFabricConf({ podCIDR: '10.244.1.0/24', vni: 1, ...o }, vxlanMode).opts;
const self = { podCIDR: '10.244.1.0/24' };

/** What follows `ip link add name tscni.1` for the VTEP this file's node wants. */
const createArgs = [
  'address',
  stableMac('192.168.50.1'),
  'mtu',
  '1350',
  'type',
  'vxlan',
  'id',
  '1',
  'local',
  '192.168.50.1',
  'dev',
  'eth0',
  'dstport',
  '8472',
  'nolearning',
];

describe('planFabric vxlan', () => {
  const d = planFabric(vxlanMode, self, peers, underlay, opts());

  it('plans one VTEP at underlay - 50 with a MAC from the node IP and the pod network address /32', () => {
    expect(d.mtu).toBe(1350);
    expect(d.device).toMatchObject({ name: 'tscni.1', kind: 'vxlan', mtu: 1350, mac: stableMac('192.168.50.1'), addresses: ['10.244.1.0/32'] });
    expect(d.device!.link).toEqual({ type: 'vxlan', vni: 1, local: '192.168.50.1', dev: 'eth0', port: 8472, learning: false });
    expect(argvOf([{ op: 'link-add', name: 'tscni.1', link: d.device!.link }])[0]).toEqual(
      expect.arrayContaining(['id', '1', 'local', '192.168.50.1', 'dev', 'eth0', 'dstport', '8472', 'nolearning']),
    );
    expect(d.device!.infoData).toEqual({ id: 1, local: '192.168.50.1', link: 'eth0', port: 8472, learning: false });
  });

  it('gives each peer a route via its network address, a permanent neighbour and an FDB entry', () => {
    expect(d.routes).toEqual([
      { dst: '10.244.2.0/24', gw: '10.244.2.0', dev: 'tscni.1', onlink: true, proto: RTPROT_TSCNI },
      { dst: '10.244.3.0/24', gw: '10.244.3.0', dev: 'tscni.1', onlink: true, proto: RTPROT_TSCNI },
    ]);
    expect(d.neighs[0]).toEqual({ ip: '10.244.2.0', lladdr: stableMac('192.168.50.2'), dev: 'tscni.1' });
    expect(d.fdb[1]).toEqual({ mac: stableMac('192.168.60.3'), dev: 'tscni.1', dst: '192.168.60.3' });
    expect(d.sysctls).toMatchObject({ 'net/ipv4/ip_forward': '1', 'net/ipv4/conf/tscni.1/rp_filter': '2' });
  });

  it('directRouting sends on-link peers over the underlay and tunnels the others', () => {
    const r = planFabric(vxlanMode, self, peers, underlay, opts({ directRouting: true }));
    expect(r.routes[0]).toEqual({ dst: '10.244.2.0/24', gw: '192.168.50.2', dev: 'eth0', proto: RTPROT_TSCNI });
    expect(r.routes[1].dev).toBe('tscni.1');
    expect(r.paths).toEqual([
      { peer: '192.168.50.2', via: 'direct' },
      { peer: '192.168.60.3', via: 'tunnel' },
    ]);
  });

  it('takes 70 on an IPv6 underlay, and refuses an mtu that does not fit', () => {
    const v6 = { dev: 'eth0', mtu: 1500, nodeIP: 'fd00::1', connected: ['fd00::/64'] };
    expect(planFabric(vxlanMode, self, [{ nodeIP: 'fd00::2', podCIDR: '10.244.2.0/24', key: 'p' }], v6, opts()).mtu).toBe(1430);
    expect(thrown(() => planFabric(vxlanMode, self, [], underlay, opts(), 1400)).message).toMatch(/^invalid config: mtu: 1400 .*\(at most 1350\)/);
    expect(planFabric(vxlanMode, self, [], underlay, opts(), 1300).mtu).toBe(1300);
  });
});

describe('dual stack: a pod CIDR per family over one IPv4 underlay', () => {
  const self6 = { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'], clusterCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'] };
  // a node is one peer entry per pod family, with the same underlay address
  const peers6: Peer[] = [
    peers[0],
    { nodeIP: '192.168.50.2', podCIDR: 'fd00:10:244:2::/64', key: 'node a' },
    peers[1],
    { nodeIP: '192.168.60.3', podCIDR: 'fd00:10:244:3::/64', key: 'node b' },
  ];

  it('vxlan: one VTEP holding an address of each family; IPv6 routes and neighbours through it; one FDB entry per node', () => {
    const d = planFabric(vxlanMode, self6, peers6, underlay, opts());
    expect(d.families).toEqual([4, 6]);
    expect(d.device!.addresses).toEqual(['10.244.1.0/32', 'fd00:10:244:1::/128']);
    expect(d.routes.map((r) => `${r.dst} via ${r.gw}`)).toEqual([
      '10.244.2.0/24 via 10.244.2.0',
      '10.244.3.0/24 via 10.244.3.0',
      'fd00:10:244:2::/64 via fd00:10:244:2::',
      'fd00:10:244:3::/64 via fd00:10:244:3::',
    ]);
    expect(d.neighs.map((n) => `${n.ip} ${n.lladdr}`)).toContain(`fd00:10:244:2:: ${stableMac('192.168.50.2')}`);
    expect(d.fdb.map((f) => f.dst)).toEqual(['192.168.50.2', '192.168.60.3']);
    expect(d.paths).toHaveLength(2);
    expect(d.sysctls).toMatchObject({ 'net/ipv4/ip_forward': '1', 'net/ipv6/conf/all/forwarding': '1' });
    expect(d.leftOut).toEqual([]);
  });

  it("host-gw: an IPv6 pod CIDR goes via the peer's IPv6 address (no IPv6 route takes an IPv4 next hop); none on the underlay: left out", () => {
    const dual: UnderlayFacts = { ...underlay, other: { nodeIP: 'fd00:50::1', connected: ['fd00:50::/64'] } };
    const hg6: Peer[] = [peers[0], { nodeIP: 'fd00:50::2', podCIDR: 'fd00:10:244:2::/64', key: 'node a' }];
    const d = planFabric(hostGwMode, self6, hg6, dual, {});
    expect(d.routes.map((r) => `${r.dst} via ${r.gw}`)).toEqual(['10.244.2.0/24 via 192.168.50.2', 'fd00:10:244:2::/64 via fd00:50::2']);
    expect(planFabric(hostGwMode, self6, hg6, underlay, {}).leftOut).toEqual([
      { peer: 'node a', why: "eth0 has no IPv6 address: host-gw routes IPv6 pods via the peers' IPv6 addresses" },
    ]);
    // the kernel takes an IPv4 route via an IPv6 next hop: both doors name its family
    expect(argvOf([{ op: 'route-replace', route: { dst: '10.244.2.0/24', gw: 'fd00:50::2', dev: 'eth0' } }])[0].slice(0, 6)).toEqual([
      'route',
      'replace',
      '10.244.2.0/24',
      'via',
      'inet6',
      'fd00:50::2',
    ]);
  });

  it('a peer IPv6 CIDR outside the IPv6 cluster CIDR is left out; a single-stack node leaves out IPv6 peers, naming them', () => {
    const bad = { nodeIP: '192.168.50.2', podCIDR: 'fd99::/64', key: 'node c' };
    expect(planFabric(vxlanMode, self6, [bad], underlay, opts()).leftOut).toEqual([
      { peer: 'node c', why: 'podCIDR fd99::/64 is not inside clusterCIDR fd00:10:244::/56' },
    ]);
    expect(planFabric(vxlanMode, self, peers6.slice(0, 2), underlay, opts()).leftOut).toEqual([
      { peer: 'node a', why: "podCIDR fd00:10:244:2::/64 is not of the family of this node's 10.244.1.0/24" },
    ]);
  });

  it('routing bgp: host-gw only, a clusterCIDR, IPv4 pod CIDRs only', () => {
    const bgp = { routing: 'bgp', bgp: { asn: 64512 }, clusterCIDR: '10.244.0.0/16' };
    expect(parseFabricConf({ podCIDR: '10.244.1.0/24', ...bgp }, hostGwMode).bgp).toMatchObject({ asn: 64512, neighbors: [] });
    expect(thrown(() => parseFabricConf({ podCIDR: '10.244.1.0/24', ...bgp }, vxlanMode)).message).toBe(
      'invalid config: routing: "bgp" routes pods without a tunnel: it goes with host-gw, not vxlan',
    );
    expect(thrown(() => parseFabricConf({ podCIDR: '10.244.1.0/24', ...bgp, clusterCIDR: undefined }, hostGwMode)).message).toMatch(
      /^invalid config: clusterCIDR: is required with "routing": "bgp"/,
    );
    expect(
      thrown(() =>
        parseFabricConf({ ...bgp, podCIDR: ['10.244.1.0/24', 'fd00:10:244:1::/64'], clusterCIDR: ['10.244.0.0/16', 'fd00:10:244::/56'] }, hostGwMode),
      ).message,
    ).toMatch(/^invalid config: podCIDR: IPv6 pod CIDRs are not announced over BGP yet/);
    expect(thrown(() => parseFabricConf({ podCIDR: '10.244.1.0/24', routing: 'ospf' }, hostGwMode)).message).toBe(
      'invalid config: routing: "ospf" is not "static" or "bgp"',
    );
  });

  it('config: podCIDR and clusterCIDR take one CIDR or one per family', () => {
    const c = parseFabricConf({ podCIDR: ['10.244.1.0/24', 'fd00:10:244:1::/64'], clusterCIDR: ['fd00:10:244::/56', '10.244.0.0/16'] }, vxlanMode);
    expect([c.podCIDR, c.podCIDRs, c.clusterCIDR, c.clusterCIDRs]).toEqual([
      '10.244.1.0/24',
      ['10.244.1.0/24', 'fd00:10:244:1::/64'],
      '10.244.0.0/16',
      ['10.244.0.0/16', 'fd00:10:244::/56'],
    ]);
    const p = (o: Record<string, unknown>) => thrown(() => parseFabricConf({ podCIDR: '10.244.1.0/24', ...o }, vxlanMode)).message;
    expect(p({ podCIDR: ['10.244.1.0/24', '10.244.2.0/24'] })).toMatch(/^invalid config: podCIDR: .*two CIDRs of one family/);
    expect(p({ podCIDR: [] })).toMatch(/^invalid config: podCIDR: expected a CIDR or a list of one per address family/);
    expect(p({ clusterCIDR: 'fd00::/56' })).toBe('invalid config: clusterCIDR: fd00::/56 has no podCIDR of its family');
    expect(p({ podCIDR: ['10.244.1.0/24', 'fd01::/64'], clusterCIDR: ['10.244.0.0/16', 'fd00::/56'] })).toBe(
      'invalid config: podCIDR: fd01::/64 is not inside clusterCIDR fd00::/56',
    );
  });
});

describe('planFabric host-gw and ipip', () => {
  it('host-gw routes via the peer node on the underlay', () => {
    const d = planFabric(hostGwMode, self, [peers[0]], underlay, {});
    expect(d.device).toBeUndefined();
    expect(d.mtu).toBe(1400);
    expect(d.routes).toEqual([{ dst: '10.244.2.0/24', gw: '192.168.50.2', dev: 'eth0', proto: RTPROT_TSCNI }]);
  });

  it('host-gw leaves out a peer that is not on-link, naming it, and routes the others', () => {
    const d = planFabric(hostGwMode, self, peers, underlay, {});
    expect(d.leftOut).toEqual([{ peer: 'peers[1]', why: expect.stringMatching(/^nodeIP 192\.168\.60\.3 is not on-link on eth0/) }]);
    expect(d.routes.map((r) => r.dst)).toEqual(['10.244.2.0/24']);
  });

  it('ipip: a tunnel at underlay - 20, routes via the peer node onlink; crossSubnet routes same-subnet peers directly', () => {
    const d = planFabric(ipipMode, self, peers, underlay, parseFabricConf({ podCIDR: '10.244.1.0/24' }, ipipMode).opts);
    expect(d.mtu).toBe(1380);
    expect(d.device).toMatchObject({ name: 'tscni.ipip', kind: 'ipip', addresses: ['10.244.1.0/32'] });
    expect(d.routes[0]).toMatchObject({ gw: '192.168.50.2', dev: 'tscni.ipip', onlink: true });
    const x = planFabric(ipipMode, self, peers, underlay, parseFabricConf({ podCIDR: '10.244.1.0/24', crossSubnet: true }, ipipMode).opts);
    expect(x.routes.map((r) => r.dev)).toEqual(['eth0', 'tscni.ipip']);
  });
});

describe('bad input', () => {
  const plan = (ps: Peer[], clusterCIDR?: string) => planFabric(vxlanMode, { ...self, clusterCIDR }, ps, underlay, opts());
  const outOf = (d: DesiredFabric) => d.leftOut.map((l) => `${l.peer}: ${l.why}`);
  it('leaves out, naming it, a peer equal to this node, both of a duplicate node or of overlapping pod CIDRs; programs the rest', () => {
    expect(outOf(plan([{ nodeIP: '192.168.50.1', podCIDR: '10.244.9.0/24', key: 'peers[0]' }]))).toEqual(['peers[0]: nodeIP 192.168.50.1 is this node']);
    expect(outOf(plan([{ nodeIP: '192.168.50.9', podCIDR: '10.244.1.128/25', key: 'peers[0]' }]))).toEqual([
      "peers[0]: podCIDR 10.244.1.128/25 overlaps this node's podCIDR 10.244.1.0/24",
    ]);
    const third = { nodeIP: '192.168.50.7', podCIDR: '10.244.7.0/24', key: 'peers[2]' };
    const overlap = plan([peers[0], { ...peers[1], podCIDR: '10.244.2.128/25' }, third]);
    expect(outOf(overlap)).toEqual([
      'peers[0]: podCIDR 10.244.2.0/24 overlaps peers[1] podCIDR 10.244.2.128/25',
      'peers[1]: podCIDR 10.244.2.128/25 overlaps peers[0] podCIDR 10.244.2.0/24',
    ]);
    expect(overlap.routes.map((r) => r.dst)).toEqual(['10.244.7.0/24']);
    const dup = plan([peers[0], { ...peers[1], nodeIP: '192.168.50.2' }, third]);
    expect(outOf(dup)).toEqual(['peers[0]: nodeIP 192.168.50.2 is also peers[1]', 'peers[1]: nodeIP 192.168.50.2 is also peers[0]']);
    expect(dup.fdb.map((f) => f.dst)).toEqual(['192.168.50.7']);
    expect(outOf(plan([{ nodeIP: '1.2.3.4', podCIDR: '10.9.0.0/24', key: 'peers[0]' }], '10.244.0.0/16'))).toEqual([
      'peers[0]: podCIDR 10.9.0.0/24 is not inside clusterCIDR 10.244.0.0/16',
    ]);
  });

  it('names bad vni, port, CIDRs and peer fields', () => {
    const p = (o: Record<string, unknown>) => thrown(() => parseFabricConf({ podCIDR: '10.244.1.0/24', ...o }, vxlanMode)).message;
    expect(p({ vni: 0 })).toMatch(/^invalid config: vni: 0 is out of range/);
    expect(p({ vni: 1 << 24 })).toMatch(/^invalid config: vni: /);
    expect(p({ port: 70000 })).toMatch(/^invalid config: port: /);
    expect(p({ port: '8472' })).toMatch(/^invalid config: port: expected an integer/);
    expect(p({ podCIDR: '10.244.1.0' })).toMatch(/^invalid config: podCIDR: /);
    expect(p({ peers: [{ nodeIP: '1.2.3', podCIDR: '10.244.2.0/24' }] })).toMatch(/^invalid config: peers\[0\]\.nodeIP: /);
    expect(p({ peers: [{ nodeIP: '1.2.3.4' }] })).toMatch(/^invalid config: peers\[0\]\.podCIDR: is required/);
    expect(p({ vtepName: 'a/b' })).toMatch(/^invalid config: vtepName: /);
    // a runtime's working directory is arbitrary: paths must be absolute
    expect(p({ peersFile: 'peers.json' })).toMatch(/^invalid config: peersFile: /);
  });

  it('peers file: malformed JSON and wrong shapes are named; our own entry is skipped', () => {
    const s = { nodeIP: '192.168.50.1', podCIDR: '10.244.1.0/24' };
    expect(thrown(() => parsePeersFile('{', '/x/p.json', s)).message).toMatch(/^invalid config: peersFile \/x\/p\.json: not valid JSON/);
    expect(thrown(() => parsePeersFile('{"a":1}', '/x/p.json', s)).message).toMatch(/expected a list/);
    expect(thrown(() => parsePeersFile('[{"nodeIP":"1.2.3.4","podCIDR":"x"}]', '/x/p.json', s)).message).toMatch(/peersFile \/x\/p\.json\[0\]\.podCIDR/);
    const ps = parsePeersFile(JSON.stringify([s, { nodeIP: '192.168.50.2', podCIDR: '10.244.2.0/24' }]), '/x/p.json', s);
    expect(ps).toEqual([{ nodeIP: '192.168.50.2', podCIDR: '10.244.2.0/24', key: 'peersFile /x/p.json[1]' }]);
  });
});

describe('underlayFacts', () => {
  const links: IpLink[] = [
    { ifname: 'lo', mtu: 65536, addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }] },
    {
      ifname: 'eth1',
      mtu: 1400,
      addr_info: [
        { family: 'inet', local: '192.168.50.1', prefixlen: 24, scope: 'global' },
        { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      ],
    },
    { ifname: 'uplink', mtu: 1500, addr_info: [{ family: 'inet', local: '203.0.113.1', prefixlen: 24, scope: 'global' }] },
  ];
  it('finds the interface of nodeIP, or takes the default-route interface', () => {
    expect(underlayFacts(links, '192.168.50.1', undefined)).toEqual({ dev: 'eth1', mtu: 1400, nodeIP: '192.168.50.1', connected: ['192.168.50.0/24'] });
    expect(underlayFacts(links, undefined, 'uplink')).toMatchObject({ dev: 'uplink', nodeIP: '203.0.113.1' });
    expect(thrown(() => underlayFacts(links, '10.0.0.1', undefined)).message).toMatch(/^invalid config: nodeIP: 10\.0\.0\.1 is not an address/);
    expect(thrown(() => underlayFacts(links, undefined, undefined)).message).toMatch(/^invalid config: nodeIP: not set/);
  });
});

describe('diffFabric', () => {
  const d = planFabric(vxlanMode, self, peers, underlay, opts());
  const vtep = (o: Partial<IpLink> = {}, data: Record<string, unknown> = {}): IpLink => ({
    ifname: 'tscni.1',
    mtu: 1350,
    address: stableMac('192.168.50.1'),
    flags: ['UP'],
    ifalias: FABRIC_ALIAS,
    linkinfo: { info_kind: 'vxlan', info_data: { id: 1, local: '192.168.50.1', link: 'eth0', port: 8472, learning: false, ...data } },
    addr_info: [{ family: 'inet', local: '10.244.1.0', prefixlen: 32, scope: 'global' }],
    ...o,
  });
  const inSync = (): FabricState => ({
    links: [vtep()],
    routes: d.routes.map((r) => ({ dst: r.dst, gateway: r.gw, dev: r.dev, flags: ['onlink'] })),
    neighs: d.neighs.map((n) => ({ dst: n.ip, lladdr: n.lladdr, state: ['PERMANENT'] })),
    fdb: d.fdb.map((f) => ({ mac: f.mac, dst: f.dst, flags: ['self'], state: 'permanent' })),
  });

  it('is empty when the kernel matches', () => {
    expect(diffFabric(d, inSync())).toEqual({ device: [], fdb: [], ip: [], problems: [], conflicts: [] });
  });

  it('creates everything on an empty node, device first', () => {
    const x = diffFabric(d, { links: [], routes: [], neighs: [], fdb: [] });
    expect(argvOf(x.device)[0]).toEqual(['link', 'add', 'name', 'tscni.1', ...createArgs]);
    expect(argvOf(x.device)[1]).toEqual(['link', 'set', 'tscni.1', 'alias', FABRIC_ALIAS]);
    expect(argvOf(x.device)).toContainEqual(['addr', 'replace', '10.244.1.0/32', 'dev', 'tscni.1']);
    expect(argvOf(x.device)[argvOf(x.device).length - 1]).toEqual(['link', 'set', 'tscni.1', 'up']);
    expect(argvOf(x.fdb)).toHaveLength(2);
    expect(argvOf(x.ip)).toContainEqual(['route', 'replace', '10.244.3.0/24', 'via', '10.244.3.0', 'dev', 'tscni.1', 'onlink', 'proto', String(RTPROT_TSCNI)]);
    expect(x.problems).toEqual(['vxlan device tscni.1 is missing']);
  });

  it('removes a removed peer and only what is ours; fixes MTU; recreates on a VNI change', () => {
    const s = inSync();
    s.routes.push({ dst: '10.244.7.0/24', gateway: '10.244.7.0', dev: 'tscni.1', flags: ['onlink'] });
    s.neighs.push({ dst: '10.244.7.0', lladdr: '02:00:00:00:00:07', state: ['PERMANENT'] }, { dst: '10.244.8.0', state: ['FAILED'] });
    s.fdb.push({ mac: '02:00:00:00:00:07', dst: '192.168.50.7', flags: ['self'] });
    s.links[0].mtu = 1500;
    const x = diffFabric(d, s);
    expect(argvOf(x.device)).toEqual([['link', 'set', 'tscni.1', 'mtu', '1350']]);
    expect(argvOf(x.fdb)).toEqual([['fdb', 'del', '02:00:00:00:00:07', 'dev', 'tscni.1', 'dst', '192.168.50.7', 'self']]);
    expect(argvOf(x.ip)).toEqual([
      ['neigh', 'del', '10.244.7.0', 'dev', 'tscni.1'],
      ['route', 'del', '10.244.7.0/24', 'proto', String(RTPROT_TSCNI)],
    ]);
    expect(x.problems).toContain('tscni.1 has MTU 1500, expected 1350');

    const v = inSync();
    v.links = [vtep({}, { id: 2 })];
    const y = diffFabric(d, v);
    expect(y.problems).toEqual(['tscni.1 has VNI 2, expected 1']);
    expect(argvOf(y.device).slice(0, 2)).toEqual([
      ['link', 'del', 'tscni.1'],
      ['link', 'add', 'name', 'tscni.1', ...createArgs],
    ]);
    expect(argvOf(y.ip).filter((c) => c[0] === 'route')).toHaveLength(2);
  });
});

describe('diffFabric: what is not ours', () => {
  const d = planFabric(vxlanMode, self, peers, underlay, opts());
  const empty = (): FabricState => ({ links: [], routes: [], neighs: [], fdb: [] });

  it("leaves alone a route to a peer pod CIDR that another owner holds, and programs the other peers' routes", () => {
    const s = empty();
    s.otherRoutes = [
      { dst: '10.244.3.0/24', gateway: '192.168.50.9', dev: 'eth0', protocol: 'static' },
      { dst: '192.168.50.0/24', dev: 'eth0', protocol: 'kernel' },
    ];
    const x = diffFabric(d, s);
    expect(x.conflicts).toEqual([
      "route 10.244.3.0/24 via 192.168.50.9 dev eth0 proto static is not tscni's, and the fabric needs 10.244.3.0/24 via 10.244.3.0 dev tscni.1 onlink: remove that route or the peer",
    ]);
    expect(x.problems).toContain(x.conflicts[0]);
    expect(
      argvOf(x.ip)
        .filter((c) => c[1] === 'replace' && c[0] === 'route')
        .map((c) => c[2]),
    ).toEqual(['10.244.2.0/24']);
  });

  it('deletes a marked device the plan no longer names (a VNI or mode change) before making the new one; routes through it go with it', () => {
    const s = empty();
    s.links = [
      { ifname: 'tscni.7', mtu: 1350, ifalias: FABRIC_ALIAS, linkinfo: { info_kind: 'vxlan', info_data: { id: 7 } } },
      { ifname: 'vx-other', mtu: 1450, linkinfo: { info_kind: 'vxlan', info_data: { id: 9 } } },
    ];
    s.routes = [{ dst: '10.244.9.0/24', gateway: '10.244.9.0', dev: 'tscni.7', flags: ['onlink'], protocol: String(RTPROT_TSCNI) }];
    const x = diffFabric(d, s);
    expect(argvOf(x.device)[0]).toEqual(['link', 'del', 'tscni.7']);
    expect(argvOf(x.device)[1]).toEqual(['link', 'add', 'name', 'tscni.1', ...createArgs]);
    expect(argvOf(x.device).flat()).not.toContain('vx-other');
    expect(argvOf(x.ip).filter((c) => c[0] === 'route' && c[1] === 'del')).toEqual([]);
    expect(x.problems).toContain('stale fabric device tscni.7');
    // host-gw has no device: a VTEP of ours left from vxlan goes
    const hg = planFabric(hostGwMode, self, peers.slice(0, 1), underlay, {});
    expect(argvOf(diffFabric(hg, s).device)).toEqual([['link', 'del', 'tscni.7']]);
  });

  it('marks an unmarked device of the plan (made by an older tscni) without calling it a problem', () => {
    const s = empty();
    s.links = [
      {
        ifname: 'tscni.1',
        mtu: d.mtu,
        address: d.device!.mac,
        flags: ['UP'],
        linkinfo: { info_kind: 'vxlan', info_data: d.device!.infoData },
        addr_info: [{ family: 'inet', local: '10.244.1.0', prefixlen: 32, scope: 'global' }],
      },
    ];
    const x = diffFabric(d, s);
    expect(argvOf(x.device)).toEqual([['link', 'set', 'tscni.1', 'alias', FABRIC_ALIAS]]);
    // only the peers' entries are missing in this state, nothing about the device
    expect(x.problems.filter((p) => !/^(route|neighbour|FDB entry) /.test(p))).toEqual([]);
  });
});
