// ipip planning without root: the device, the routes, crossSubnet's path choice (and its symmetry), and the
// reconcile diff against an ipip device exactly as the kernel reports it (captured in the UML guest).
import { ipipMode } from './ipip';
import { argvOf } from '../../pkg/ip/ops';
import { parseFabricConf } from '../../pkg/fabric/config';
import { planFabric } from '../../pkg/fabric/plan';
import { diffFabric } from '../../pkg/fabric/reconcile';
import { FABRIC_ALIAS, RTPROT_TSCNI, type FabricState, type Peer, type UnderlayFacts } from '../../pkg/fabric/types';
import { thrown } from '../../pkg/testing';
import type { IpLink } from '../../pkg/ip/ops';

// seed 001: node1/node2 on 192.168.10.0/24, node3 on 192.168.20.0/24 behind a router
const NODES = {
  node1: { nodeIP: '192.168.10.11', podCIDR: '10.244.1.0/24', subnet: '192.168.10.0/24' },
  node2: { nodeIP: '192.168.10.12', podCIDR: '10.244.2.0/24', subnet: '192.168.10.0/24' },
  node3: { nodeIP: '192.168.20.13', podCIDR: '10.244.3.0/24', subnet: '192.168.20.0/24' },
};
type NodeName = keyof typeof NODES;

const underlayOf = (n: NodeName, mtu = 1500): UnderlayFacts => ({ dev: 'eth0', mtu, nodeIP: NODES[n].nodeIP, connected: [NODES[n].subnet] });
const peersOf = (n: NodeName): Peer[] =>
  (Object.keys(NODES) as NodeName[]).filter((m) => m !== n).map((m, i) => ({ nodeIP: NODES[m].nodeIP, podCIDR: NODES[m].podCIDR, key: `peers[${i}]` }));
const opts = (o: Record<string, unknown> = {}) => parseFabricConf({ podCIDR: '10.244.1.0/24', ...o }, ipipMode).opts;
const plan = (n: NodeName, o: Record<string, unknown> = {}, mtu = 1500) => {
  const c = parseFabricConf({ podCIDR: '10.244.1.0/24', ...o }, ipipMode);
  return planFabric(ipipMode, { podCIDR: NODES[n].podCIDR }, peersOf(n), underlayOf(n, mtu), c.opts, c.mtu);
};

describe('ipip config', () => {
  it('reads crossSubnet and tunnelName, and names a bad tunnel name', () => {
    expect(opts()).toMatchObject({ crossSubnet: false, tunnelName: undefined });
    expect(opts({ crossSubnet: true, tunnelName: 'ipip0' })).toMatchObject({ crossSubnet: true, tunnelName: 'ipip0' });
    expect(thrown(() => opts({ tunnelName: 'a-name-that-is-too-long' })).message).toMatch(/^invalid config: tunnelName: /);
    expect(thrown(() => opts({ crossSubnet: 'yes' })).message).toMatch(/crossSubnet/);
  });
});

describe('ipip plan', () => {
  const d = plan('node1');

  it('one ipip device of its own (not tunl0): local nodeIP over the underlay, MTU underlay - 20, the pod network /32', () => {
    expect(d.mtu).toBe(1480);
    expect(d.device).toMatchObject({ name: 'tscni.ipip', kind: 'ipip', mtu: 1480, addresses: ['10.244.1.0/32'] });
    expect(d.device!.link).toEqual({ type: 'ipip', local: '192.168.10.11', dev: 'eth0' });
    expect(argvOf([{ op: 'link-add', name: 'tscni.ipip', mtu: d.device!.mtu, link: d.device!.link }])[0]).toEqual([
      'link',
      'add',
      'name',
      'tscni.ipip',
      'mtu',
      '1480',
      'type',
      'ipip',
      'local',
      '192.168.10.11',
      'dev',
      'eth0',
    ]);
    // no `remote`: one device receives from every peer
    expect(d.device!.link).not.toHaveProperty('remote');
    expect(d.device!.infoData).toEqual({ local: '192.168.10.11', link: 'eth0' });
    expect(d.sysctls).toMatchObject({ 'net/ipv4/ip_forward': '1', 'net/ipv4/conf/tscni.ipip/rp_filter': '2' });
    expect(d.neighs).toEqual([]);
    expect(d.fdb).toEqual([]);
  });

  it('routes each peer pod CIDR via the peer node IP on the tunnel, onlink, with our protocol number', () => {
    expect(d.routes).toEqual([
      { dst: '10.244.2.0/24', gw: '192.168.10.12', dev: 'tscni.ipip', onlink: true, proto: RTPROT_TSCNI },
      { dst: '10.244.3.0/24', gw: '192.168.20.13', dev: 'tscni.ipip', onlink: true, proto: RTPROT_TSCNI },
    ]);
    expect(d.paths.map((p) => p.via)).toEqual(['tunnel', 'tunnel']);
  });

  it('crossSubnet: the same-subnet peer over the underlay without onlink, the other through the tunnel', () => {
    const x = plan('node1', { crossSubnet: true });
    expect(x.routes).toEqual([
      { dst: '10.244.2.0/24', gw: '192.168.10.12', dev: 'eth0', proto: RTPROT_TSCNI },
      { dst: '10.244.3.0/24', gw: '192.168.20.13', dev: 'tscni.ipip', onlink: true, proto: RTPROT_TSCNI },
    ]);
    // the device stays: a later peer may be across a router
    expect(x.device?.name).toBe('tscni.ipip');
    expect(plan('node3', { crossSubnet: true }).paths.map((p) => p.via)).toEqual(['tunnel', 'tunnel']);
  });

  it('crossSubnet paths are symmetric: A reaches B directly exactly when B reaches A directly (rp_filter=1)', () => {
    const names = Object.keys(NODES) as NodeName[];
    for (const a of names) {
      for (const b of names) {
        if (a === b) continue;
        const ab = plan(a, { crossSubnet: true }).paths.find((p) => p.peer === NODES[b].nodeIP)!.via;
        const ba = plan(b, { crossSubnet: true }).paths.find((p) => p.peer === NODES[a].nodeIP)!.via;
        expect(`${a}->${b} ${ab}`).toBe(`${a}->${b} ${ba}`);
      }
    }
  });

  it('mtu: an explicit value up to underlay - 20; above it is refused naming the key', () => {
    expect(plan('node1', { mtu: 1400 }).mtu).toBe(1400);
    expect(plan('node1', { mtu: 1400 }).device!.mtu).toBe(1400);
    expect(thrown(() => plan('node1', { mtu: 1481 })).message).toMatch(/^invalid config: mtu: 1481 .*ipip takes 20 .*at most 1480/);
    expect(plan('node1', {}, 9000).mtu).toBe(8980);
  });

  it('a peer that is this node or overlaps our pod CIDR is left out, named, and given nothing', () => {
    const self = { podCIDR: NODES.node1.podCIDR };
    const me = [{ nodeIP: NODES.node1.nodeIP, podCIDR: '10.244.9.0/24', key: 'peers[0]' }];
    const a = planFabric(ipipMode, self, me, underlayOf('node1'), opts());
    expect(a.leftOut).toEqual([{ peer: 'peers[0]', why: 'nodeIP 192.168.10.11 is this node' }]);
    expect(a.routes).toEqual([]);
    const overlap = [{ nodeIP: '192.168.10.50', podCIDR: '10.244.1.128/25', key: 'peers[0]' }];
    expect(planFabric(ipipMode, self, overlap, underlayOf('node1'), opts()).leftOut[0].why).toMatch(/overlaps this node's podCIDR/);
  });
});

describe('ipip reconcile diff against the kernel view', () => {
  // `ip -d -j addr show` of the device our plugin made in the UML guest (6.1), trimmed to what the diff reads
  const tunnel = (o: Partial<IpLink> = {}): IpLink => ({
    ifname: 'tscni.ipip',
    mtu: 1480,
    flags: ['NOARP', 'UP', 'LOWER_UP'],
    ifalias: FABRIC_ALIAS,
    linkinfo: { info_kind: 'ipip', info_data: { proto: 'any', remote: 'any', local: '192.168.10.11', link: 'eth0', ttl: 0, pmtudisc: true } },
    addr_info: [
      { family: 'inet', local: '10.244.1.0', prefixlen: 32, scope: 'global' },
      // the kernel adds this to ipip devices once ipv6 is loaded: not ours, not a problem
      { family: 'inet6', local: 'fe80::5efe:c0a8:a0b', prefixlen: 64, scope: 'link' },
    ],
    ...o,
  });
  const routes = [
    { dst: '10.244.2.0/24', gateway: '192.168.10.12', dev: 'tscni.ipip', flags: ['onlink'] },
    { dst: '10.244.3.0/24', gateway: '192.168.20.13', dev: 'tscni.ipip', flags: ['onlink'] },
  ];
  const state = (links: IpLink[], r = routes): FabricState => ({ links, routes: r, neighs: [], fdb: [] });

  it('nothing to do when the kernel matches the plan', () => {
    const diff = diffFabric(plan('node1'), state([tunnel()]));
    expect(diff).toEqual({ device: [], fdb: [], ip: [], problems: [], conflicts: [] });
  });

  it('switching to crossSubnet replaces only the same-subnet route', () => {
    const diff = diffFabric(plan('node1', { crossSubnet: true }), state([tunnel()]));
    expect(argvOf(diff.device)).toEqual([]);
    expect(argvOf(diff.ip)).toEqual([['route', 'replace', '10.244.2.0/24', 'via', '192.168.10.12', 'dev', 'eth0', 'proto', String(RTPROT_TSCNI)]]);
  });

  it('a tunnel with another local address is recreated; a wrong MTU is set in place', () => {
    const moved = diffFabric(plan('node1'), state([tunnel({ linkinfo: { info_kind: 'ipip', info_data: { local: '192.168.10.99', link: 'eth0' } } })]));
    expect(argvOf(moved.device).slice(0, 2)).toEqual([
      ['link', 'del', 'tscni.ipip'],
      ['link', 'add', 'name', 'tscni.ipip', 'mtu', '1480', 'type', 'ipip', 'local', '192.168.10.11', 'dev', 'eth0'],
    ]);
    // the routes went with the old device: all are re-added
    expect(argvOf(moved.ip).filter((c) => c[1] === 'replace')).toHaveLength(2);
    const mtu = diffFabric(plan('node1'), state([tunnel({ mtu: 1500 })]));
    expect(argvOf(mtu.device)).toEqual([['link', 'set', 'tscni.ipip', 'mtu', '1480']]);
    expect(mtu.problems).toEqual(['tscni.ipip has MTU 1500, expected 1480']);
  });

  it('a removed peer: its route is deleted by protocol, the others stay', () => {
    const d = planFabric(ipipMode, { podCIDR: NODES.node1.podCIDR }, peersOf('node1').slice(0, 1), underlayOf('node1'), opts());
    const diff = diffFabric(d, state([tunnel()]));
    expect(argvOf(diff.ip)).toEqual([['route', 'del', '10.244.3.0/24', 'proto', String(RTPROT_TSCNI)]]);
  });
});

describe('ipip is IPv4 only', () => {
  it('refuses an IPv6 underlay or IPv6 pods, naming the key, before anything is changed', () => {
    const v6 = { dev: 'eth0', mtu: 1500, nodeIP: 'fd00::1', connected: ['fd00::/64'] };
    const o6 = parseFabricConf({ podCIDR: 'fd10:1::/64' }, ipipMode).opts;
    expect(thrown(() => planFabric(ipipMode, { podCIDR: 'fd10:1::/64' }, [{ nodeIP: 'fd00::2', podCIDR: 'fd10:2::/64', key: 'p' }], v6, o6)).message).toMatch(
      /^invalid config: nodeIP: fd00::1: ipip needs an IPv4 underlay/,
    );
    expect(thrown(() => planFabric(ipipMode, { podCIDR: 'fd10:1::/64' }, [], underlayOf('node1'), o6)).message).toMatch(
      /^invalid config: podCIDR: fd10:1::\/64: ipip carries IPv4 pods only/,
    );
  });
});
