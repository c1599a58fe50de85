import { parseNetConf } from '../cni/skel';
import type { CmdArgs, Result } from '../cni/types';
import { argvOf } from '../ip/ops';
import { masqRules } from './pod';
import { GATEWAY6, asHeld, hostSysctls, planPtpPod, ptpRoutes, withSubnets } from './ptp';
import { nodeOps, podOps } from './veth';

function args(conf: Record<string, unknown>): CmdArgs {
  const stdin = Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net1', type: 'ptp', ipam: { type: 'host-local' }, ...conf }));
  return { command: 'ADD', containerId: 'c1', netns: '/var/run/netns/p', ifName: 'eth0', args: {}, path: [], stdin, conf: parseNetConf(stdin) };
}

const dual = (): Result => ({
  cniVersion: '1.0.0',
  ips: [
    { address: '10.22.0.5/24', gateway: '10.22.0.1' },
    { address: 'fd22::5/64', gateway: 'fd22::1' },
  ],
  routes: [],
});

const input = (ipam: Result, extra = {}) => ({
  netns: '/var/run/netns/p',
  ifName: 'eth0',
  hostName: 'ptp0123456789ab',
  podMac: '02:00:00:00:00:05',
  mtu: 1400,
  ipam,
  ...extra,
});

describe('ptp planning', () => {
  it('plans the node batch: pair with ee:ee:... MAC, v6 link-local before up, host routes after', () => {
    const p = planPtpPod(input(dual()));
    expect(argvOf(nodeOps(p.veth.node))).toEqual([
      [
        'link',
        'add',
        'name',
        'ptp0123456789ab',
        'address',
        'ee:ee:ee:ee:ee:ee',
        'mtu',
        '1400',
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'address',
        '02:00:00:00:00:05',
        'mtu',
        '1400',
        'netns',
        '/var/run/netns/p',
      ],
      ['link', 'set', 'ptp0123456789ab', 'addrgenmode', 'none'],
      ['addr', 'replace', 'fe80::ecee:eeff:feee:eeee/64', 'dev', 'ptp0123456789ab', 'nodad'],
      ['link', 'set', 'ptp0123456789ab', 'up'],
      ['route', 'replace', '10.22.0.5/32', 'dev', 'ptp0123456789ab', 'scope', 'link'],
      ['route', 'replace', 'fd22::5/128', 'dev', 'ptp0123456789ab', 'scope', 'link'],
    ]);
    expect(p.hostSysctlsFirst).toBe(false);
  });

  it('plans the pod batch: /32 and /128 without DAD, gateway route, defaults via the fake gateways, permanent neighbours', () => {
    const p = planPtpPod(input(dual()));
    expect(argvOf([...p.veth.pod.up, ...p.veth.pod.after])).toEqual([
      ['addr', 'replace', '10.22.0.5/32', 'dev', 'eth0'],
      ['addr', 'replace', 'fd22::5/128', 'dev', 'eth0', 'nodad'],
      ['link', 'set', 'eth0', 'up'],
      ['route', 'replace', '169.254.1.1/32', 'dev', 'eth0', 'scope', 'link'],
      ['route', 'replace', '0.0.0.0/0', 'via', '169.254.1.1', 'dev', 'eth0'],
      ['route', 'replace', '::/0', 'via', 'fe80::ecee:eeff:feee:eeee', 'dev', 'eth0'],
      ['neigh', 'replace', '169.254.1.1', 'lladdr', 'ee:ee:ee:ee:ee:ee', 'dev', 'eth0', 'nud', 'permanent'],
      ['neigh', 'replace', 'fe80::ecee:eeff:feee:eeee', 'lladdr', 'ee:ee:ee:ee:ee:ee', 'dev', 'eth0', 'nud', 'permanent'],
    ]);
    expect(argvOf(p.veth.pod.beforeUp)).toEqual([
      ['sysctl', 'net/ipv6/conf/eth0/disable_ipv6=0'],
      ['sysctl', 'net/ipv6/conf/eth0/accept_dad=0'],
    ]);
  });

  it('needs no pod sysctls (no spawn) and no link-local lines for an IPv4-only pod', () => {
    const p = planPtpPod(input({ cniVersion: '1.0.0', ips: [{ address: '10.22.0.5/24' }] }));
    expect(p.veth.pod.beforeUp).toEqual([]);
    expect(argvOf(nodeOps(p.veth.node)).map((c) => c.slice(0, 4).join(' '))).toEqual([
      'link add name ptp0123456789ab',
      'link set ptp0123456789ab up',
      'route replace 10.22.0.5/32 dev',
    ]);
    expect(argvOf(podOps(p.veth.pod)).some((c) => c.includes('fe80::ecee:eeff:feee:eeee'))).toBe(false);
    expect(p.hostSysctls).not.toHaveProperty('net/ipv6/conf/all/forwarding');
  });

  it('writes the node sysctls right after `link add` when new links come up without IPv6', () => {
    expect(planPtpPod(input(dual(), { nodeIpv6DisabledByDefault: true })).hostSysctlsFirst).toBe(true);
    const v4 = { cniVersion: '1.0.0', ips: [{ address: '10.22.0.5/24' }] };
    expect(planPtpPod(input(v4, { nodeIpv6DisabledByDefault: true })).hostSysctlsFirst).toBe(false);
  });

  it('sets the node sysctls, global forwarding first', () => {
    const s = hostSysctls('ptpx', [4, 6], true);
    expect(Object.keys(s).slice(0, 2)).toEqual(['net/ipv4/ip_forward', 'net/ipv6/conf/all/forwarding']);
    expect(s).toMatchObject({
      'net/ipv4/conf/ptpx/proxy_arp': '1',
      'net/ipv4/neigh/ptpx/proxy_delay': '0',
      'net/ipv4/conf/ptpx/forwarding': '1',
      'net/ipv6/conf/ptpx/proxy_ndp': '1',
      'net/ipv6/conf/ptpx/forwarding': '1',
      'net/ipv6/conf/ptpx/accept_ra': '0',
    });
    expect(hostSysctls('ptpx', [4], false)).not.toHaveProperty('net/ipv6/conf/ptpx/accept_ra');
  });

  it('routes IPAM routes via the fake gateway, ignoring their own gw, and defaults only the families without any', () => {
    const r: Result = { cniVersion: '1.0.0', ips: dual().ips, routes: [{ dst: '10.0.0.0/8', gw: '10.22.0.1', mtu: 1300 }] };
    expect(ptpRoutes(r, 'eth0', [4, 6])).toEqual([
      { dst: '10.0.0.0/8', gw: '169.254.1.1', dev: 'eth0', mtu: 1300, advmss: undefined, metric: undefined, table: undefined },
      { dst: '::/0', gw: GATEWAY6, dev: 'eth0', mtu: undefined, advmss: undefined, metric: undefined, table: undefined },
    ]);
  });

  it('reports what the pod holds, /32 and /128, with the fake gateways on interface 1', () => {
    const p = planPtpPod(input(dual()));
    expect(p.result.ips).toEqual([
      { address: '10.22.0.5/32', gateway: '169.254.1.1', interface: 1 },
      { address: 'fd22::5/128', gateway: GATEWAY6, interface: 1 },
    ]);
    expect(p.result.routes).toEqual([
      { dst: '0.0.0.0/0', gw: '169.254.1.1' },
      { dst: '::/0', gw: GATEWAY6 },
    ]);
    // a result of an older tscni, with IPAM's prefixes, reads the same
    expect(asHeld({ ...p.result, ips: dual().ips }).ips!.map((i) => i.address)).toEqual(['10.22.0.5/32', 'fd22::5/128']);
  });

  it('does not masquerade traffic to the pod subnet: from the IPAM result, or the result with the IPAM subnets put back', () => {
    const a = args({});
    expect(masqRules(a, dual(), []).map((r) => r.excluded)).toEqual([['10.22.0.0/24'], ['fd22::/64']]);
    const result = planPtpPod(input(dual())).result;
    const back = withSubnets(result, (ip) => (ip.includes(':') ? 64 : 24));
    expect(masqRules(a, back, []).map((r) => r.excluded)).toEqual([['10.22.0.0/24'], ['fd22::/64']]);
    // an address the IPAM config does not hold keeps its prefix
    expect(withSubnets(result, () => undefined).ips!.map((i) => i.address)).toEqual(['10.22.0.5/32', 'fd22::5/128']);
  });
});
