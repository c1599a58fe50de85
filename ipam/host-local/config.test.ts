import { ErrCode } from '../../pkg/cni/errors';
import { parseNetConf } from '../../pkg/cni/skel';
import { formatIP } from '../../pkg/ipnet';
import { parseConfig } from './config';
import { parseResolvConf } from './dns';
import { thrown } from '../../pkg/testing';

function conf(ipam: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return parseNetConf(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'host-local', ipam: { type: 'host-local', ...ipam }, ...extra })));
}

describe('host-local config', () => {
  test('defaults of a range: start network+1, end before broadcast, gateway network+1', () => {
    const c = parseConfig(conf({ ranges: [[{ subnet: '10.1.0.0/24' }]] }));
    const r = c.rangeSets[0].ranges[0];
    expect(formatIP(4, r.start)).toBe('10.1.0.1');
    expect(formatIP(4, r.end)).toBe('10.1.0.254');
    expect(formatIP(4, r.gateway)).toBe('10.1.0.1');
    expect(c.dataDir).toBe('/var/lib/cni/networks');
    expect(c.rangeSets[0].describe()).toBe('10.1.0.1-10.1.0.254');
  });

  test('IPv6 range ends at the all-ones address', () => {
    const r = parseConfig(conf({ ranges: [[{ subnet: 'fd00::/120' }]] })).rangeSets[0].ranges[0];
    expect(formatIP(6, r.end)).toBe('fd00::ff');
  });

  test('runtimeConfig.ipRanges, then the legacy subnet, then ranges', () => {
    const c = parseConfig(
      conf(
        { subnet: '10.2.0.0/24', ranges: [[{ subnet: '10.3.0.0/24' }], [{ subnet: 'fd00::/64' }]] },
        { runtimeConfig: { ipRanges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.20', gateway: '10.1.0.254' }]] } },
      ),
    );
    expect(c.rangeSets.map((s) => s.key)).toEqual(['runtimeConfig.ipRanges[0]', 'ipam', 'ipam.ranges[0]', 'ipam.ranges[1]']);
    expect(c.rangeSets[0].describe()).toBe('10.1.0.10-10.1.0.20');
    expect(formatIP(4, c.rangeSets[0].ranges[0].gateway)).toBe('10.1.0.254');
  });

  test('routes, dataDir, resolvConf', () => {
    const c = parseConfig(
      conf({ subnet: '10.1.0.0/24', dataDir: '/tmp/x', resolvConf: '/etc/r', routes: [{ dst: '0.0.0.0/0' }, { dst: '10.9.0.0/16', gw: '10.1.0.9' }] }),
    );
    expect(c.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '10.9.0.0/16', gw: '10.1.0.9' }]);
    expect(c.dataDir).toBe('/tmp/x');
    expect(c.resolvConf).toBe('/etc/r');
  });

  test.each([
    [{ ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: 'nope' }]] }, 'ipam.ranges[0][1].subnet', 'not a valid CIDR'],
    [{ ranges: [[{ subnet: '10.1.0.5/24' }]] }, 'ipam.ranges[0][0].subnet', 'host bits set'],
    [{ ranges: [[{ subnet: '10.1.0.0/31' }]] }, 'ipam.ranges[0][0].subnet', 'too small'],
    [{ ranges: [[{ subnet: '10.1.0.0/32' }]] }, 'ipam.ranges[0][0].subnet', 'too small'],
    [{ ranges: [[{ subnet: 'fd00::/127' }]] }, 'ipam.ranges[0][0].subnet', 'too small'],
    [{ ranges: [[{ subnet: 'fd00::/128' }]] }, 'ipam.ranges[0][0].subnet', 'too small'],
    [{ ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: '10.2.0.0/24', rangeStart: '10.1.0.5' }]] }, 'ipam.ranges[0][1].rangeStart', 'not in subnet'],
    [{ ranges: [[{ subnet: '10.1.0.0/24', rangeEnd: '10.1.1.5' }]] }, 'ipam.ranges[0][0].rangeEnd', 'not in subnet'],
    [{ ranges: [[{ subnet: '10.1.0.0/24', gateway: '10.9.0.1' }]] }, 'ipam.ranges[0][0].gateway', 'not in subnet'],
    [{ ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.50', rangeEnd: '10.1.0.40' }]] }, 'ipam.ranges[0][0].rangeStart', 'after rangeEnd'],
    [{ ranges: [[{ subnet: '10.1.0.0/24', rangeStart: 'x' }]] }, 'ipam.ranges[0][0].rangeStart', 'not a valid IP'],
    [{ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.1.0.0/25' }]] }, 'ipam.ranges[1]', 'overlaps range set ipam.ranges[0]'],
    [{ subnet: '10.1.0.0/24', ranges: [[{ subnet: '10.1.0.0/24' }]] }, 'ipam.ranges[0]', 'overlaps range set ipam'],
    [{ ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: '10.1.0.0/24' }]] }, 'ipam.ranges[0][1]', 'overlaps ipam.ranges[0][0]'],
    [{ ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: 'fd00::/64' }]] }, 'ipam.ranges[0][1].subnet', 'mixes'],
    [{ ranges: [[{}]] }, 'ipam.ranges[0][0].subnet', 'required'],
    [{ ranges: [[]] }, 'ipam.ranges[0]', 'empty'],
    [{ ranges: {} }, 'ipam.ranges', 'list'],
    [{}, 'ipam.ranges', 'no IP ranges'],
    [{ rangeStart: '10.1.0.1' }, 'ipam.rangeStart', 'needs ipam.subnet'],
    [{ subnet: '10.1.0.0/24', routes: [{ dst: 'x' }] }, 'ipam.routes[0].dst', 'not a valid CIDR'],
    [{ subnet: '10.1.0.0/24', routes: [{ dst: '0.0.0.0/0', gw: 'y' }] }, 'ipam.routes[0].gw', 'not a valid IP'],
    [{ subnet: '10.1.0.0/24', dataDir: 5 }, 'ipam.dataDir', 'expected a string'],
  ])('bad config %j names %s', (ipam, key, why) => {
    const e = thrown(() => parseConfig(conf(ipam)));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toContain(`${key}:`);
    expect(e.message).toContain(why);
  });

  test('bad runtimeConfig.ipRanges are named as such', () => {
    const e = thrown(() => parseConfig(conf({ subnet: '10.1.0.0/24' }, { runtimeConfig: { ipRanges: [[{ subnet: '10.5.0.1/24' }]] } })));
    expect(e.message).toContain('runtimeConfig.ipRanges[0][0].subnet');
  });

  test('requested IPs from CNI_ARGS (comma list), args.cni.ips and runtimeConfig.ips, ip or ip/prefix', () => {
    const c = parseConfig(conf({ subnet: '10.1.0.0/24' }, { args: { cni: { ips: ['10.1.0.7/24'] } }, runtimeConfig: { ips: ['fd00::7', '10.1.0.5'] } }), {
      IP: '10.1.0.5,10.1.0.6',
    });
    expect(c.requested.map((r) => `${r.text} ${r.source}`)).toEqual([
      '10.1.0.5 CNI_ARGS IP',
      '10.1.0.6 CNI_ARGS IP',
      '10.1.0.7 args.cni.ips[0]',
      'fd00::7 runtimeConfig.ips[0]',
    ]);
    const e = thrown(() => parseConfig(conf({ subnet: '10.1.0.0/24' }), { IP: '10.1.0.x' }));
    expect(e.code).toBe(ErrCode.InvalidEnv);
    expect(e.message).toContain('CNI_ARGS IP');
    const e2 = thrown(() => parseConfig(conf({ subnet: '10.1.0.0/24' }, { runtimeConfig: { ips: ['bad'] } })));
    expect(e2.message).toContain('runtimeConfig.ips[0]');
  });

  test('resolv.conf: nameserver, domain, search, options; comments skipped', () => {
    expect(
      parseResolvConf('# c\nnameserver 10.0.0.2\nnameserver fd00::53\n; x\ndomain example.com\nsearch a.example b.example\noptions ndots:5 edns0\n'),
    ).toEqual({
      nameservers: ['10.0.0.2', 'fd00::53'],
      domain: 'example.com',
      search: ['a.example', 'b.example'],
      options: ['ndots:5', 'edns0'],
    });
  });
});
