import { parseNetConf } from '../../pkg/cni/skel';
import type { CmdArgs } from '../../pkg/cni/types';
import { CniError } from '../../pkg/cni/errors';
import { parsePtpConf } from './config';
import { thrown } from '../../pkg/testing';

function args(conf: Record<string, unknown>, drop: string[] = []): CmdArgs {
  const o: Record<string, unknown> = { cniVersion: '1.0.0', name: 'net1', type: 'ptp', ipam: { type: 'host-local' }, ...conf };
  for (const k of drop) delete o[k];
  const stdin = Buffer.from(JSON.stringify(o));
  return { command: 'ADD', containerId: 'c1', netns: '/var/run/netns/p', ifName: 'eth0', args: {}, path: [], stdin, conf: parseNetConf(stdin) };
}

describe('ptp config', () => {
  it('applies the reference defaults', () => {
    expect(parsePtpConf(args({}))).toEqual({ ipMasq: false, ipMasqBackend: undefined, mtu: undefined, dns: undefined });
  });
  it('reads every key', () => {
    const c = parsePtpConf(args({ ipMasq: true, ipMasqBackend: 'iptables', mtu: 1400, dns: { nameservers: ['10.0.0.10'], search: ['svc'] } }));
    expect(c).toEqual({ ipMasq: true, ipMasqBackend: 'iptables', mtu: 1400, dns: { nameservers: ['10.0.0.10'], search: ['svc'] } });
  });
  it('treats mtu 0 and an empty dns as unset', () => {
    expect(parsePtpConf(args({ mtu: 0, dns: {} }))).toMatchObject({ mtu: undefined, dns: undefined });
  });
  it.each([
    [{ ipMasq: 'yes' }, 7, 'ipMasq'],
    [{ ipMasqBackend: 'pf' }, 2, 'ipMasqBackend'],
    [{ ipMasqBackend: 3 }, 2, 'ipMasqBackend'],
    [{ mtu: 'big' }, 7, 'mtu'],
    [{ mtu: 1.5 }, 7, 'mtu'],
    [{ mtu: 20 }, 7, 'mtu'],
    [{ mtu: 70000 }, 7, 'mtu'],
    [{ dns: { nameservers: '8.8.8.8' } }, 7, 'dns.nameservers'],
    [{ dns: { search: [1] } }, 7, 'dns.search[0]'],
    [{ dns: { domain: 5 } }, 7, 'dns.domain'],
    [{ ipam: {} }, 7, 'ipam.type'],
    [{ ipam: { type: '' } }, 7, 'ipam.type'],
  ])('rejects %j with code %d naming %s', (conf, code, key) => {
    const e = thrown(() => parsePtpConf(args(conf)));
    expect(e).toBeInstanceOf(CniError);
    expect(e.code).toBe(code);
    expect(e.message).toContain(key);
  });
  it('requires ipam', () => {
    const e = thrown(() => parsePtpConf(args({}, ['ipam'])));
    expect(e.code).toBe(7);
    expect(e.message).toBe('invalid config: ipam: is required');
  });
});
