import { ConfigReader } from './config';
import { ErrCode } from './errors';
import { thrown } from '../testing';

const conf = {
  name: 'net1',
  mtu: 1450,
  isGateway: true,
  empty: '',
  nul: null,
  ipam: {
    type: 'host-local',
    ranges: [[{ subnet: '10.22.0.0/16' }], [{ subnet: 'fd00::/64', gateway: 7 }]],
    routes: [{ dst: '0.0.0.0/0' }, 'bad'],
    dataDir: 42,
    nested: { deep: { v: 'x' } },
  },
  names: ['a', 'b'],
  mixed: ['a', 1],
  frac: 1.5,
  big: 70000,
  str: '1450',
};

describe('ConfigReader typed reads', () => {
  const r = new ConfigReader(conf);

  it('string', () => {
    expect(r.string('name')).toBe('net1');
    expect(r.string('absent')).toBeUndefined();
    expect(r.string('absent', 'dflt')).toBe('dflt');
    expect(r.string('nul', 'dflt')).toBe('dflt');
    expect(r.string('empty', 'dflt')).toBe('');
  });

  it('requiredString: missing, null and empty are all "is required"', () => {
    expect(r.requiredString('name')).toBe('net1');
    for (const k of ['absent', 'nul', 'empty']) {
      const e = thrown(() => r.requiredString(k));
      expect(e.code).toBe(ErrCode.InvalidConfig);
      expect(e.message).toContain(k);
      expect(e.message).toContain('required');
    }
  });

  it('bool', () => {
    expect(r.bool('isGateway')).toBe(true);
    expect(r.bool('absent')).toBe(false);
    expect(r.bool('absent', true)).toBe(true);
  });

  it('int with default and range', () => {
    expect(r.int('mtu')).toBe(1450);
    expect(r.int('mtu', 0, 68, 65535)).toBe(1450);
    expect(r.int('absent')).toBeUndefined();
    expect(r.int('absent', 1500, 68, 65535)).toBe(1500);
    const e = thrown(() => r.int('big', 1500, 68, 65535));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toMatch(/^invalid config: big: .*70000.*out of range 68\.\.65535/);
  });

  it('int range is checked even when the value equals the default', () => {
    // a default outside the range is a caller's choice, but a configured value must always be in range
    const e = thrown(() => new ConfigReader({ vlan: 0 }).int('vlan', 0, 1, 4094));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toContain('vlan');
  });

  it('object returns a reader whose errors carry the full path', () => {
    const ipam = r.object('ipam')!;
    expect(ipam.string('type')).toBe('host-local');
    expect(r.object('absent')).toBeUndefined();
    const e = thrown(() => ipam.string('dataDir'));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toBe('invalid config: ipam.dataDir: expected a string, got number 42');
    const deep = ipam.object('nested')!.object('deep')!;
    expect(thrown(() => deep.int('v')).message).toContain('ipam.nested.deep.v');
  });

  it('list, stringList', () => {
    expect(r.list('names')).toEqual(['a', 'b']);
    expect(r.stringList('names')).toEqual(['a', 'b']);
    expect(r.stringList('absent')).toBeUndefined();
    const e = thrown(() => r.stringList('mixed'));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toContain('mixed[1]');
    expect(e.message).toContain('expected a string, got number');
  });

  it('objectList names each entry ipam.routes[i]', () => {
    const e = thrown(() => r.object('ipam')!.objectList('routes'));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toBe('invalid config: ipam.routes[1]: expected an object, got string');
    const ok = new ConfigReader({ ipam: { routes: [{ dst: '0.0.0.0/0' }, { dst: 5 }] } }).object('ipam')!.objectList('routes')!;
    expect(ok[0].string('dst')).toBe('0.0.0.0/0');
    expect(thrown(() => ok[1].string('dst')).message).toContain('invalid config: ipam.routes[1].dst: ');
    expect(thrown(() => new ConfigReader({ l: [null] }).objectList('l')).message).toContain('l[0]: expected an object, got null');
  });

  it('a list of lists (ipam.ranges): objectList names the inner list ipam.ranges[0]', () => {
    const ipam = r.object('ipam')!;
    const e = thrown(() => ipam.objectList('ranges'));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toBe('invalid config: ipam.ranges[0]: expected an object, got list');
    // readers built over inner entries by hand keep the path they are given
    const inner = new ConfigReader({ subnet: 'fd00::/64', gateway: 7 }, 'ipam.ranges[1][0]');
    expect(thrown(() => inner.string('gateway')).message).toBe('invalid config: ipam.ranges[1][0].gateway: expected a string, got number 7');
  });

  it.each([
    ['string', (r: ConfigReader) => r.string('mtu'), 'mtu', 'expected a string, got number 1450'],
    ['bool from string', (r: ConfigReader) => r.bool('str'), 'str', 'expected a boolean, got string "1450"'],
    ['bool from number', (r: ConfigReader) => r.bool('mtu'), 'mtu', 'expected a boolean'],
    ['int from string', (r: ConfigReader) => r.int('str'), 'str', 'expected an integer, got string "1450"'],
    ['int from fraction', (r: ConfigReader) => r.int('frac'), 'frac', 'expected an integer, got number 1.5'],
    ['object from list', (r: ConfigReader) => r.object('names'), 'names', 'expected an object, got list'],
    ['object from string', (r: ConfigReader) => r.object('name'), 'name', 'expected an object, got string'],
    ['list from object', (r: ConfigReader) => r.list('ipam'), 'ipam', 'expected a list, got object'],
    ['list from string', (r: ConfigReader) => r.stringList('name'), 'name', 'expected a list, got string'],
    ['objectList from string', (r: ConfigReader) => r.objectList('name'), 'name', 'expected a list'],
  ])('wrong type (%s) gives code 7 naming the key', (_what, f, key, why) => {
    const e = thrown(() => f(new ConfigReader(conf)));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toContain(`invalid config: ${key}: `);
    expect(e.message).toContain(why);
  });

  it('has', () => {
    expect(r.has('name')).toBe(true);
    expect(r.has('nul')).toBe(false);
    expect(r.has('absent')).toBe(false);
    expect(r.has('empty')).toBe(true);
  });

  it('fail: code 7 with the full key', () => {
    const e = new ConfigReader({}, 'ipam.ranges[0][1]').fail('rangeStart', 'outside subnet 10.0.0.0/24');
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toBe('invalid config: ipam.ranges[0][1].rangeStart: outside subnet 10.0.0.0/24');
  });

  it('unsupported: code 2 with key and value', () => {
    const e = new ConfigReader({ ipMasqBackend: 'pf' }, '').unsupported('ipMasqBackend', 'expected nftables or iptables');
    expect(e.code).toBe(ErrCode.UnsupportedField);
    expect(e.message).toContain('ipMasqBackend');
    expect(e.message).toContain('"pf"');
    expect(e.message).toContain('expected nftables or iptables');
    const n = new ConfigReader({ mode: { a: 1 } }, 'ipam').unsupported('mode', 'no');
    expect(n.message).toContain('ipam.mode');
    expect(n.message).toContain('{"a":1}');
  });
});
