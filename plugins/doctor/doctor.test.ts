import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseDoctorArgs } from '../doctor-cmd';
import { parseNetConf } from '../../pkg/cni/skel';
import { parseFabricConf } from '../../pkg/fabric/config';
import { planFabric } from '../../pkg/fabric/plan';
import { stableMac } from '../../pkg/ip/mac';
import { listReservations } from '../../ipam/host-local/plugin';
import { vxlanMode } from '../vxlan/vxlan';
import { describePod, formatFinding, loadConf, mtuReason, peerIndex, peerOf } from './doctor';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-doctor-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('parseDoctorArgs', () => {
  it('reads --conf, repeated --pod with ifname and netns, --netns, --json', () => {
    expect(parseDoctorArgs(['--conf', '/etc/cni/net.d/10-tscni.conflist', '--pod', 'abc', '--pod', 'def:net1=/run/netns/x', '--json'])).toEqual({
      conf: '/etc/cni/net.d/10-tscni.conflist',
      json: true,
      pods: [
        { id: 'abc', ifName: 'eth0' },
        { id: 'def', ifName: 'net1', netns: '/run/netns/x' },
      ],
    });
    expect(parseDoctorArgs(['--conf', 'f', '--netns', 'node1'])).toMatchObject({ netns: 'node1', json: false });
  });

  it('returns the usage problem as text, and "" for --help', () => {
    expect(parseDoctorArgs([])).toBe('--conf is required');
    expect(parseDoctorArgs(['--conf'])).toBe('--conf needs a value');
    expect(parseDoctorArgs(['--conf', 'f', '--verbose'])).toBe('unknown argument "--verbose"');
    expect(parseDoctorArgs(['--conf', 'f', '--pod', ':eth0'])).toMatch(/^--pod :eth0: expected <containerID>/);
    expect(parseDoctorArgs(['--help'])).toBe('');
  });
});

describe('loadConf', () => {
  it("takes a conflist's first tscni plugin with the list's name and version", () => {
    const f = path.join(dir, 'net.conflist');
    fs.writeFileSync(f, JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'vxlan', podCIDR: '10.244.1.0/24' }, { type: 'portmap' }] }));
    expect(loadConf(f)).toMatchObject({ cniVersion: '1.0.0', name: 'n', type: 'vxlan' });
  });

  it('refuses a list without one, naming the file', () => {
    const f = path.join(dir, 'other.conflist');
    fs.writeFileSync(f, JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'macvlan' }] }));
    expect(() => loadConf(f)).toThrow(`${f}: no bridge/ptp/host-gw/vxlan/ipip plugin in its plugins list`);
  });
});

describe('fabric findings name their peer', () => {
  const underlay = { dev: 'eth0', mtu: 1450, nodeIP: '192.168.50.1', connected: ['192.168.50.0/24'] };
  const peers = [
    { nodeIP: '192.168.50.2', podCIDR: '10.244.2.0/24', key: 'peers[0]' },
    { nodeIP: '192.168.60.3', podCIDR: '10.244.3.0/24', key: 'peers[1]' },
  ];
  const d = planFabric(vxlanMode, { podCIDR: '10.244.1.0/24' }, peers, underlay, parseFabricConf({ podCIDR: '10.244.1.0/24' }, vxlanMode).opts);
  const idx = peerIndex(d);

  it('by route, neighbour and FDB entry; none for the device itself', () => {
    expect(peerOf('route 10.244.3.0/24 via 10.244.3.0 dev tscni.1 onlink missing', idx)).toBe('192.168.60.3');
    expect(peerOf('neighbour 10.244.2.0 missing on tscni.1', idx)).toBe('192.168.50.2');
    expect(peerOf(`FDB entry ${stableMac('192.168.60.3')} dst 192.168.60.3 missing on tscni.1`, idx)).toBe('192.168.60.3');
    expect(peerOf('tscni.1 is down', idx)).toBeUndefined();
    expect(formatFinding({ where: 'node', problem: 'neighbour 10.244.2.0 missing on tscni.1', peer: '192.168.50.2' })).toBe(
      'node: neighbour 10.244.2.0 missing on tscni.1 (peer 192.168.50.2)',
    );
    // a peers file that names its nodes (as `tscni k8s` writes it)
    expect(formatFinding({ where: 'node', problem: 'neighbour 10.244.2.0 missing on tscni.1', peer: '192.168.50.2', peerName: 'node2' })).toBe(
      'node: neighbour 10.244.2.0 missing on tscni.1 (peer node2 192.168.50.2)',
    );
  });

  it('explains the expected VTEP MTU', () => {
    expect(mtuReason('tscni.1 has MTU 1500, expected 1400', d, undefined)).toBe(' (underlay MTU 1450 - 50 for vxlan)');
    expect(mtuReason('tscni.1 has MTU 1500, expected 1400', d, 1400)).toBe(' (mtu in the config)');
    expect(mtuReason('route 10.244.2.0/24 missing', d, undefined)).toBe('');
    // IPv6 pods over an IPv4 underlay: VXLAN over IPv4 takes 50, whatever the pods' family
    const opts = parseFabricConf({ podCIDR: 'fd00:10:244:1::/64' }, vxlanMode).opts;
    const d6 = planFabric(vxlanMode, { podCIDR: 'fd00:10:244:1::/64' }, [], underlay, opts);
    expect(mtuReason(`${d6.device!.name} has MTU 1500, expected 1400`, d6, undefined)).toBe(' (underlay MTU 1450 - 50 for vxlan)');
  });
});

describe('pods from host-local reservations', () => {
  it("groups the files of a network by (container, ifname) with their range's prefix and gateway", () => {
    const data = path.join(dir, 'ipam');
    const net = path.join(data, 'n');
    fs.mkdirSync(net, { recursive: true });
    fs.writeFileSync(path.join(net, '10.22.0.5'), 'c1\r\neth0');
    fs.writeFileSync(path.join(net, 'fd00::5'), 'c1\r\neth0');
    fs.writeFileSync(path.join(net, '10.22.0.6'), 'c2\r\nnet1');
    fs.writeFileSync(path.join(net, '10.22.0.7'), '');
    // a FIFO where a reservation belongs is none, and reading it must not block
    execFileSync('mkfifo', [path.join(net, '10.22.0.8')]);
    fs.writeFileSync(path.join(net, 'last_reserved_ip.0'), '10.22.0.6');
    const conf = parseNetConf(
      Buffer.from(
        JSON.stringify({
          cniVersion: '1.0.0',
          name: 'n',
          type: 'bridge',
          ipam: { type: 'host-local', dataDir: data, ranges: [[{ subnet: '10.22.0.0/24' }], [{ subnet: 'fd00::/64', gateway: 'fd00::1' }]] },
        }),
      ),
    );
    expect(listReservations(conf)).toEqual([
      {
        id: 'c1',
        ifName: 'eth0',
        ips: [
          { address: '10.22.0.5/24', gateway: '10.22.0.1' },
          { address: 'fd00::5/64', gateway: 'fd00::1' },
        ],
      },
      { id: 'c2', ifName: 'net1', ips: [{ address: '10.22.0.6/24', gateway: '10.22.0.1' }] },
    ]);
    expect(describePod('c2', 'net1', ['10.22.0.6/24'])).toBe('pod c2 net1 (10.22.0.6)');
    expect(describePod('a'.repeat(64), 'eth0', [])).toBe('pod aaaaaaaaaaaa');
  });
});
