import { parseNetConf } from '../cni/skel';
import type { CmdArgs, Result } from '../cni/types';
import { argvOf } from '../ip/ops';
import { gatewayOps } from './bridge';
import { planVeth } from './veth';
import { podRoutes, podSysctls, masqRules } from './pod';
import { hostVethName } from './names';
import { macFromIPv4 } from '../ip/mac';
import { parseBridgeConf } from './bridgeconf';
import { calcGateways, vlanBridgeOps } from './gateway';
import { thrown } from '../testing';

function args(conf: Record<string, unknown>, cniArgs: Record<string, string> = {}): CmdArgs {
  const stdin = Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net1', type: 'bridge', ipam: {}, ...conf }));
  return { command: 'ADD', containerId: 'c1', netns: '/var/run/netns/p', ifName: 'eth0', args: cniArgs, path: [], stdin, conf: parseNetConf(stdin) };
}

function pc(a: CmdArgs) {
  return { ...parseBridgeConf(a), mtu: 1500, masqExcluded: [] };
}

describe('gateways', () => {
  const result = (): Result => ({
    cniVersion: '1.0.0',
    ips: [{ address: '10.22.0.5/16' }, { address: 'fd00:22::5/64', gateway: 'fd00:22::1' }],
    routes: [],
  });
  it('fills missing gateways with the first address and adds default routes, in a new result', () => {
    const ipam = result();
    const g = calcGateways(ipam, pc(args({ isDefaultGateway: true })));
    expect(g.bridgeAddrs).toEqual(['10.22.0.1/16', 'fd00:22::1/64']);
    expect(g.result.ips!.map((i) => i.interface)).toEqual([2, 2]);
    expect(g.result.routes).toEqual([
      { dst: '0.0.0.0/0', gw: '10.22.0.1' },
      { dst: '::/0', gw: 'fd00:22::1' },
    ]);
    // the IPAM result is left as it came
    expect(ipam).toEqual(result());
  });
  it('puts nothing on the bridge when it is not a gateway', () => {
    const g = calcGateways(result(), pc(args({})));
    expect(g.bridgeAddrs).toEqual([]);
    expect(g.result.ips![0].gateway).toBeUndefined();
  });
  it('keeps an IPAM default route and fills its gateway', () => {
    const r = result();
    r.routes = [{ dst: '0.0.0.0/0' }];
    const g = calcGateways(r, pc(args({ isDefaultGateway: true })));
    expect(g.result.routes!.filter((x) => x.dst === '0.0.0.0/0')).toEqual([{ dst: '0.0.0.0/0', gw: '10.22.0.1' }]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0' }]);
  });
  it('refuses a bridge holding another IPv4 address unless forceAddress', () => {
    const held = [{ family: 'inet' as const, local: '10.99.0.1', prefixlen: 24 }];
    expect(thrown(() => gatewayOps('cni0', ['10.22.0.1/16'], held, false)).message).toMatch(/already has an IP address 10.99.0.1\/24/);
    expect(argvOf(gatewayOps('cni0', ['10.22.0.1/16'], held, true))).toEqual([
      ['addr', 'del', '10.99.0.1/24', 'dev', 'cni0'],
      ['addr', 'replace', '10.22.0.1/16', 'dev', 'cni0'],
    ]);
  });
  it('accepts the gateway already present and a non-overlapping IPv6 address', () => {
    const held = [
      { family: 'inet' as const, local: '10.22.0.1', prefixlen: 16 },
      { family: 'inet6' as const, local: 'fd99::1', prefixlen: 64 },
    ];
    // the gateway already held needs no command
    expect(argvOf(gatewayOps('cni0', ['10.22.0.1/16', 'fd00:22::1/64'], held, false))).toEqual([['addr', 'replace', 'fd00:22::1/64', 'dev', 'cni0', 'nodad']]);
    // a tentative IPv6 gateway is replaced (nodad)
    const tentative = [{ family: 'inet6' as const, local: 'fd00:22::1', prefixlen: 64, tentative: true }];
    expect(argvOf(gatewayOps('cni0', ['fd00:22::1/64'], tentative, false))).toEqual([['addr', 'replace', 'fd00:22::1/64', 'dev', 'cni0', 'nodad']]);
  });
  it('makes the pod port an access port of its VLAN', () => {
    expect(argvOf(vlanBridgeOps(pc(args({ vlan: 10, isGateway: true })), 'vethx'))).toEqual([
      ['vlan', 'del', 'dev', 'vethx', 'vid', '1'],
      ['vlan', 'add', 'dev', 'vethx', 'vid', '10', 'pvid', 'untagged'],
      ['vlan', 'add', 'dev', 'cni0', 'vid', '10', 'self'],
    ]);
  });
});

describe('veth plan', () => {
  it('creates the pair with the peer in the pod, enslaves, then configures the pod', () => {
    const r: Result = { cniVersion: '1.0.0', ips: [{ address: '10.22.0.5/16', gateway: '10.22.0.1' }], routes: [{ dst: '0.0.0.0/0' }] };
    const plan = planVeth(
      { name: 'vethabc', mac: '0a:00:00:00:00:01', mtu: 1400, master: 'cni0', hairpin: true },
      {
        netns: '/var/run/netns/p',
        ifName: 'eth0',
        mac: '0a:00:00:00:00:02',
        mtu: 1400,
        addresses: ['10.22.0.5/16'],
        nodad: true,
        routes: podRoutes(r, 'eth0'),
        sysctls: podSysctls('eth0', r, false),
      },
    );
    expect(argvOf(plan.node.create)).toEqual([
      [
        'link',
        'add',
        'name',
        'vethabc',
        'address',
        '0a:00:00:00:00:01',
        'mtu',
        '1400',
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'address',
        '0a:00:00:00:00:02',
        'mtu',
        '1400',
        'netns',
        '/var/run/netns/p',
      ],
    ]);
    expect(argvOf(plan.node.beforeUp)).toEqual([
      ['link', 'set', 'vethabc', 'master', 'cni0'],
      ['link', 'set', 'vethabc', 'type', 'bridge_slave', 'hairpin', 'on'],
    ]);
    expect(argvOf(plan.node.up)).toEqual([['link', 'set', 'vethabc', 'up']]);
    expect(argvOf(plan.pod.up)).toEqual([
      ['addr', 'replace', '10.22.0.5/16', 'dev', 'eth0'],
      ['link', 'set', 'eth0', 'up'],
    ]);
    expect(argvOf(plan.pod.after)).toEqual([['route', 'replace', '0.0.0.0/0', 'via', '10.22.0.1', 'dev', 'eth0']]);
    // IPv4 only: no sysctl to set in the pod, so no spawn for it
    expect(plan.pod.beforeUp).toEqual([]);
  });
  it('sets the MAC in the pod batch, before the link goes up, when it follows from the IPAM result', () => {
    const mac = macFromIPv4('10.22.0.5');
    expect(mac).toBe('0a:58:0a:16:00:05');
    expect(macFromIPv4('192.168.255.1')).toBe('0a:58:c0:a8:ff:01');
    const plan = planVeth(
      { name: 'vethabc', mac: '0a:00:00:00:00:01', mtu: 1500 },
      { netns: 'n', ifName: 'eth0', mac, setMac: true, mtu: 1500, addresses: ['10.22.0.5/16'], nodad: true, routes: [], sysctls: {} },
    );
    expect(argvOf(plan.pod.up)).toEqual([
      ['link', 'set', 'eth0', 'address', '0a:58:0a:16:00:05'],
      ['addr', 'replace', '10.22.0.5/16', 'dev', 'eth0'],
      ['link', 'set', 'eth0', 'up'],
    ]);
  });
  it('disables IPv6 DAD per address and per interface', () => {
    const r: Result = { cniVersion: '1.0.0', ips: [{ address: 'fd00::5/64' }] };
    expect(podSysctls('eth0', r, false)['net/ipv6/conf/eth0/accept_dad']).toBe('0');
    const plan = planVeth(
      { name: 'v', mac: 'a', mtu: 1500 },
      { netns: 'n', ifName: 'eth0', mac: 'b', mtu: 1500, addresses: ['fd00::5/64'], nodad: true, routes: [], sysctls: {} },
    );
    expect(argvOf(plan.pod.up)[0]).toEqual(['addr', 'replace', 'fd00::5/64', 'dev', 'eth0', 'nodad']);
  });
  it('names the node veth deterministically within 15 characters', () => {
    const n = hostVethName('abc', 'eth0');
    expect(n).toHaveLength(15);
    expect(n).toBe(hostVethName('abc', 'eth0'));
    expect(n).not.toBe(hostVethName('abc', 'eth1'));
  });
  it('masquerades each pod address except its own subnet', () => {
    const r: Result = { cniVersion: '1.0.0', ips: [{ address: '10.22.0.5/16' }, { address: 'fd00::5/64' }] };
    expect(masqRules(args({}), r, ['10.0.0.0/8'])).toEqual([
      { network: 'net1', containerId: 'c1', ifName: 'eth0', ip: '10.22.0.5', excluded: ['10.22.0.0/16', '10.0.0.0/8'] },
      { network: 'net1', containerId: 'c1', ifName: 'eth0', ip: 'fd00::5', excluded: ['fd00::/64'] },
    ]);
  });
});
