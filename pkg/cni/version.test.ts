import { CniError, ErrCode } from './errors';
import type { Result } from './types';
import { SUPPORTED_VERSIONS, atLeast, compareVersions, formatResult, isSupported, parseResult } from './version';

// A 1.1 result using every field, so each version's output shows what it keeps and drops.
const full: Result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:16:00:01' },
    { name: 'veth1', mac: '0a:58:0a:16:00:02', mtu: 1450 },
    { name: 'eth0', mac: '0a:58:0a:16:00:05', sandbox: '/var/run/netns/p', mtu: 1450, socketPath: '/run/s.sock', pciID: '0000:00:1f.6' },
  ],
  ips: [
    { address: '10.22.0.5/16', gateway: '10.22.0.1', interface: 2 },
    { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 }, { dst: '::/0' }],
  dns: { nameservers: ['10.22.0.1'], search: ['cluster.local'] },
};

function code(f: () => unknown): number | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return (e as CniError).code;
  }
  return undefined;
}

describe('formatResult', () => {
  it.each(['0.3.0', '0.3.1', '0.4.0'])('%s: ips carry version, 1.1-only fields dropped', (v) => {
    expect(formatResult(full, v)).toEqual({
      cniVersion: v,
      interfaces: [
        { name: 'cni0', mac: '0a:58:0a:16:00:01' },
        { name: 'veth1', mac: '0a:58:0a:16:00:02' },
        { name: 'eth0', mac: '0a:58:0a:16:00:05', sandbox: '/var/run/netns/p' },
      ],
      ips: [
        { version: '4', interface: 2, address: '10.22.0.5/16', gateway: '10.22.0.1' },
        { version: '6', interface: 2, address: 'fd00::5/64', gateway: 'fd00::1' },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1' }, { dst: '::/0' }],
      dns: { nameservers: ['10.22.0.1'], search: ['cluster.local'] },
    });
  });

  it('1.0.0: no ips version, 1.1-only fields dropped', () => {
    const out = formatResult(full, '1.0.0');
    expect(out.cniVersion).toBe('1.0.0');
    expect(out.ips).toEqual([
      { interface: 2, address: '10.22.0.5/16', gateway: '10.22.0.1' },
      { interface: 2, address: 'fd00::5/64', gateway: 'fd00::1' },
    ]);
    expect(out.interfaces).toEqual([
      { name: 'cni0', mac: '0a:58:0a:16:00:01' },
      { name: 'veth1', mac: '0a:58:0a:16:00:02' },
      { name: 'eth0', mac: '0a:58:0a:16:00:05', sandbox: '/var/run/netns/p' },
    ]);
    expect(out.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.22.0.1' }, { dst: '::/0' }]);
  });

  it('1.1.0: keeps interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope', () => {
    const out = formatResult(full, '1.1.0');
    expect(out).toEqual({
      cniVersion: '1.1.0',
      interfaces: full.interfaces,
      ips: full.ips,
      routes: full.routes,
      dns: full.dns,
    });
    // scope 0 is a value, not an absence
    expect((out.routes as Array<Record<string, unknown>>)[0].scope).toBe(0);
  });

  it('ips version is derived from the address family, also for v4-in-v6 notation', () => {
    const out = formatResult({ cniVersion: '1.1.0', ips: [{ address: '::ffff:10.0.0.1/128' }, { address: '192.168.1.1/24' }] }, '0.4.0');
    expect((out.ips as Array<{ version: string }>).map((i) => i.version)).toEqual(['6', '4']);
  });

  it.each(SUPPORTED_VERSIONS)('%s: empty dns, empty lists and absent fields are omitted', (v) => {
    const out = formatResult({ cniVersion: '1.1.0', interfaces: [], ips: [], routes: [], dns: {} }, v);
    expect(out).toEqual({ cniVersion: v });
    const out2 = formatResult({ cniVersion: '1.1.0', dns: { nameservers: [], search: [], options: [] } }, v);
    expect(out2).toEqual({ cniVersion: v });
  });

  it('a version key left on ips at run time never reaches 1.x output', () => {
    const r = { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.2/24' }] } as unknown as Result;
    expect(formatResult(r, '1.0.0').ips).toEqual([{ address: '10.0.0.2/24' }]);
  });

  it('dns members that are empty are omitted, as the reference omitempty does', () => {
    const out = formatResult({ cniVersion: '1.1.0', dns: { nameservers: ['10.0.0.1'], search: [], options: [], domain: '' } }, '1.0.0');
    expect(out.dns).toEqual({ nameservers: ['10.0.0.1'] });
  });

  it('dns with only a domain is kept', () => {
    expect(formatResult({ cniVersion: '1.0.0', dns: { domain: 'example.org' } }, '1.0.0').dns).toEqual({ domain: 'example.org' });
  });

  it('output is JSON-stable: no undefined values leak as keys', () => {
    const out = formatResult(
      { cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.2/24' }], routes: [{ dst: '0.0.0.0/0' }] },
      '0.3.1',
    );
    expect(JSON.parse(JSON.stringify(out))).toEqual(out);
    expect(Object.keys((out.ips as object[])[0])).toEqual(['version', 'address']);
    expect(Object.keys((out.interfaces as object[])[0])).toEqual(['name']);
  });

  it.each(['0.1.0', '0.2.0', '2.0.0', '', 'x'])('refuses unsupported version %p with code 1', (v) => {
    expect(code(() => formatResult(full, v))).toBe(ErrCode.IncompatibleVersion);
  });
});

describe('parseResult', () => {
  it.each(['0.3.0', '0.3.1', '0.4.0'])('%s result: drops ips[].version', (v) => {
    const raw = {
      cniVersion: v,
      interfaces: [{ name: 'eth0', mac: '0a:58:0a:16:00:05', sandbox: '/proc/1/ns/net' }],
      ips: [{ version: '4', interface: 0, address: '10.22.0.5/16', gateway: '10.22.0.1' }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: { nameservers: ['1.1.1.1'] },
    };
    const r = parseResult(raw);
    expect(r).toEqual({
      cniVersion: v,
      interfaces: [{ name: 'eth0', mac: '0a:58:0a:16:00:05', sandbox: '/proc/1/ns/net' }],
      ips: [{ interface: 0, address: '10.22.0.5/16', gateway: '10.22.0.1' }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: { nameservers: ['1.1.1.1'] },
    });
    expect('version' in r.ips![0]).toBe(false);
    // the parsed input must not be modified (a caller may still print it)
    expect(raw.ips[0].version).toBe('4');
  });

  it('1.1.0 result round-trips through formatResult', () => {
    const txt = JSON.stringify(formatResult(full, '1.1.0'));
    expect(parseResult(JSON.parse(txt))).toEqual(full);
  });

  it('0.4.0 output of formatResult parses back to the same addresses', () => {
    const r = parseResult(JSON.parse(JSON.stringify(formatResult(full, '0.4.0'))));
    expect(r.ips).toEqual(full.ips);
  });

  it('uses the fallback version when cniVersion is missing', () => {
    expect(parseResult({ ips: [{ address: '10.0.0.2/24' }] }, '1.0.0').cniVersion).toBe('1.0.0');
  });

  it('null lists (as some Go encoders write them) read as absent', () => {
    expect(parseResult({ cniVersion: '1.0.0', interfaces: null, ips: null, routes: null, dns: null })).toEqual({ cniVersion: '1.0.0' });
  });

  it('an empty result object is valid', () => {
    expect(parseResult({ cniVersion: '1.0.0' })).toEqual({ cniVersion: '1.0.0' });
  });

  it.each([
    ['null', null, ErrCode.DecodeFailure],
    ['a string', 'garbage', ErrCode.DecodeFailure],
    ['a number', 42, ErrCode.DecodeFailure],
    ['a list', [{ cniVersion: '1.0.0' }], ErrCode.DecodeFailure],
    ['no version and no fallback', { ips: [] }, ErrCode.IncompatibleVersion],
    ['version 0.2.0', { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' } }, ErrCode.IncompatibleVersion],
    ['version 9.9.9', { cniVersion: '9.9.9' }, ErrCode.IncompatibleVersion],
    ['ips not a list', { cniVersion: '1.0.0', ips: { address: '10.0.0.2/24' } }, ErrCode.DecodeFailure],
    ['ips entry not an object', { cniVersion: '1.0.0', ips: ['10.0.0.2/24'] }, ErrCode.DecodeFailure],
    ['ips entry null', { cniVersion: '1.0.0', ips: [null] }, ErrCode.DecodeFailure],
    ['ips entry without address', { cniVersion: '1.0.0', ips: [{ gateway: '10.0.0.1' }] }, ErrCode.DecodeFailure],
    ['interfaces not a list', { cniVersion: '1.0.0', interfaces: 'eth0' }, ErrCode.DecodeFailure],
    ['interfaces entry without name', { cniVersion: '1.0.0', interfaces: [{ mac: 'x' }] }, ErrCode.DecodeFailure],
    ['ips interface index negative', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24', interface: -1 }] }, ErrCode.DecodeFailure],
    ['ips interface index a string', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24', interface: '0' }] }, ErrCode.DecodeFailure],
    ['routes not a list', { cniVersion: '1.0.0', routes: {} }, ErrCode.DecodeFailure],
    ['routes entry without dst', { cniVersion: '1.0.0', routes: [{ gw: '10.0.0.1' }] }, ErrCode.DecodeFailure],
    ['dns not an object', { cniVersion: '1.0.0', dns: ['1.1.1.1'] }, ErrCode.DecodeFailure],
  ])('rejects %s', (_what, raw, want) => {
    expect(code(() => parseResult(raw))).toBe(want);
  });
});

describe('compareVersions / atLeast / isSupported', () => {
  it('compares numerically, not lexically', () => {
    expect(compareVersions('0.10.0', '0.9.0')).toBeGreaterThan(0);
    expect(compareVersions('1.0.0', '0.4.0')).toBeGreaterThan(0);
    expect(compareVersions('0.3.0', '0.3.1')).toBeLessThan(0);
    expect(compareVersions('1.1.0', '1.1.0')).toBe(0);
    expect(compareVersions('1.1', '1.1.0')).toBe(0);
    expect(compareVersions('1.0.10', '1.0.9')).toBeGreaterThan(0);
  });

  it('the supported list is in ascending order', () => {
    for (let i = 1; i < SUPPORTED_VERSIONS.length; i++) {
      expect(compareVersions(SUPPORTED_VERSIONS[i], SUPPORTED_VERSIONS[i - 1])).toBeGreaterThan(0);
    }
  });

  it('atLeast', () => {
    expect(atLeast('0.4.0', '0.4.0')).toBe(true);
    expect(atLeast('0.3.1', '0.4.0')).toBe(false);
    expect(atLeast('1.1.0', '1.0.0')).toBe(true);
  });

  it('isSupported', () => {
    expect(SUPPORTED_VERSIONS).toEqual(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    expect(isSupported('0.2.0')).toBe(false);
    expect(isSupported('1.1')).toBe(false);
    expect(isSupported('1.1.0')).toBe(true);
  });
});
