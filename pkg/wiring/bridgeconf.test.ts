// parseBridgeConf: the reference keys and defaults, and errors that name the offending key.
import { parseNetConf } from '../cni/skel';
import type { CmdArgs } from '../cni/types';
import { parseBridgeConf } from './bridgeconf';
import { thrown } from '../testing';

function args(conf: Record<string, unknown>, cniArgs: Record<string, string> = {}): CmdArgs {
  const stdin = Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net1', type: 'bridge', ipam: {}, ...conf }));
  return { command: 'ADD', containerId: 'c1', netns: '/var/run/netns/p', ifName: 'eth0', args: cniArgs, path: [], stdin, conf: parseNetConf(stdin) };
}

describe('bridge config', () => {
  it('applies the reference defaults', () => {
    const c = parseBridgeConf(args({}));
    expect(c).toMatchObject({ bridge: 'cni0', isGateway: false, ipMasq: false, vlan: 0, isLayer3: false, mtu: undefined });
  });
  it('isDefaultGateway implies isGateway', () => {
    expect(parseBridgeConf(args({ isDefaultGateway: true })).isGateway).toBe(true);
  });
  it.each([
    [{ isGateway: 'yes' }, 7, 'isGateway'],
    [{ mtu: 'big' }, 7, 'mtu'],
    [{ mtu: 20 }, 7, 'mtu'],
    [{ vlan: 5000 }, 7, 'vlan'],
    [{ bridge: 'a/b' }, 7, 'bridge'],
    [{ bridge: 'averyveryverylongname' }, 7, 'bridge'],
    [{ ipMasqBackend: 'pf' }, 2, 'ipMasqBackend'],
    [{ hairpinMode: true, promiscMode: true }, 7, 'hairpinMode'],
    [{ ipam: { type: 'host-local' }, disableContainerInterface: true }, 7, 'disableContainerInterface'],
    [{ vlanTrunk: [{ id: 5 }] }, 2, 'vlanTrunk'],
    [{ runtimeConfig: { mac: 'zz:00:00:00:00:00' } }, 7, 'runtimeConfig.mac'],
  ])('rejects %j with code %d naming %s', (conf, code, key) => {
    const e = thrown(() => parseBridgeConf(args(conf)));
    expect(e.code).toBe(code);
    expect(e.message).toContain(key);
  });
  it('takes a config without ipam as layer 2 only, as the reference does', () => {
    const stdin = Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'bridge' }));
    const a = { ...args({}), stdin, conf: parseNetConf(stdin) };
    expect(parseBridgeConf(a).isLayer3).toBe(false);
    expect(parseBridgeConf(args({ ipam: { type: 'host-local' } })).isLayer3).toBe(true);
  });
  it('takes the MAC from runtimeConfig over args over CNI_ARGS', () => {
    expect(parseBridgeConf(args({}, { MAC: '0a:00:00:00:00:01' })).mac).toBe('0a:00:00:00:00:01');
    expect(parseBridgeConf(args({ args: { cni: { mac: '0a:00:00:00:00:02' } } }, { MAC: '0a:00:00:00:00:01' })).mac).toBe('0a:00:00:00:00:02');
    expect(parseBridgeConf(args({ runtimeConfig: { mac: '0A:00:00:00:00:03' }, args: { cni: { mac: '0a:00:00:00:00:02' } } })).mac).toBe('0a:00:00:00:00:03');
  });
  it('refuses unknown CNI_ARGS unless IgnoreUnknown', () => {
    expect(thrown(() => parseBridgeConf(args({}, { FOO: '1' }))).code).toBe(4);
    expect(() => parseBridgeConf(args({}, { FOO: '1', IgnoreUnknown: '1' }))).not.toThrow();
  });
});
