// Requests of kernel ops: the headers and attributes `ip` would send for the same command line (its defaults
// for scope, protocol and table included). Device indexes and netns descriptors come from a fake lookup; the
// kernel's answers to these requests are tested in e2e/netlink.e2e.ts.
import type { KernelOp } from '../ip/ops';
import { cstr, decodeAttrs } from './nl';
import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  IFA,
  IFA_F_NODAD,
  IFF_PROMISC,
  IFF_UP,
  IFLA,
  IFLA_INFO,
  NDA,
  NTF_SELF,
  RTA,
  requestOf,
  RTM_DELROUTE,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
  RT_SCOPE,
} from './rtnl';

const lookup = {
  index: (name: string) => {
    const i = ['lo', 'eth0', 'cni0', 'tscni.1'].indexOf(name) + 1;
    if (!i) throw new Error(`no device ${name}`);
    return i;
  },
  netnsFd: (path: string) => (path === '/var/run/netns/pod' ? 42 : -1),
};
const req = (o: Exclude<KernelOp, { op: 'sysctl' }>) => requestOf(o, lookup);

/** the fixed header of a request and its attributes */
function parts(body: Buffer, head: number) {
  return { head: body.subarray(0, head), attrs: decodeAttrs(body, head) };
}

const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;

describe('routes', () => {
  it('an IPv4 route via an IPv6 next hop carries RTA_VIA (family + address), as ip route replace ... via inet6 sends', () => {
    const r = req({ op: 'route-replace', route: { dst: '10.244.2.0/24', gw: 'fd00:50::2', dev: 'eth0', proto: 252 } });
    const { head, attrs } = parts(r.body, 12);
    expect([head[0], head[1]]).toEqual([AF_INET, 24]);
    expect(attrs.has(RTA.GATEWAY)).toBe(false);
    expect([...attrs.get(RTA.VIA)!]).toEqual([AF_INET6, 0, 0xfd, 0, 0, 0x50, ...Array(11).fill(0), 2]);
  });

  it('without a gateway: scope link; protocol boot, main table, unicast, as ip route replace sends', () => {
    const r = req({ op: 'route-replace', route: { dst: '10.1.0.5', dev: 'cni0' } });
    expect([r.type, r.flags]).toEqual([RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE]);
    const { head, attrs } = parts(r.body, 12);
    expect([...head]).toEqual([AF_INET, 32, 0, 0, 254, 3, RT_SCOPE.link, 1, 0, 0, 0, 0]);
    expect([...attrs.get(RTA.DST)!]).toEqual([10, 1, 0, 5]);
    expect(attrs.get(RTA.OIF)!.readUInt32LE(0)).toBe(3);
    expect(attrs.has(RTA.GATEWAY)).toBe(false);
  });

  it('with a gateway: scope universe; onlink, metric, protocol, a table above 255 and metrics as asked', () => {
    const r = req({
      op: 'route-replace',
      route: { dst: '10.244.2.0/24', gw: '10.244.2.0', dev: 'tscni.1', onlink: true, metric: 7, proto: 252, table: 1000, mtu: 1400, advmss: 1360 },
    });
    const { head, attrs } = parts(r.body, 12);
    expect(head[1]).toBe(24);
    expect([head[4], head[5], head[6]]).toEqual([252 /* RT_TABLE_COMPAT: the real one is RTA_TABLE */, 252, RT_SCOPE.universe]);
    expect(head.readUInt32LE(8)).toBe(4 /* RTNH_F_ONLINK */);
    expect(attrs.get(RTA.TABLE)!.readUInt32LE(0)).toBe(1000);
    expect(attrs.get(RTA.PRIORITY)!.readUInt32LE(0)).toBe(7);
    expect([...attrs.get(RTA.GATEWAY)!]).toEqual([10, 244, 2, 0]);
    const metrics = decodeAttrs(attrs.get(RTA.METRICS)!);
    expect([metrics.get(2)!.readUInt32LE(0), metrics.get(8)!.readUInt32LE(0)]).toEqual([1400, 1360]);
  });

  it('the default route and IPv6: no destination attribute for /0, 16-byte addresses', () => {
    const { head, attrs } = parts(req({ op: 'route-replace', route: { dst: '::/0', gw: 'fe80::1', dev: 'eth0' } }).body, 12);
    expect([head[0], head[1]]).toEqual([AF_INET6, 0]);
    expect(attrs.has(RTA.DST)).toBe(false);
    expect(attrs.get(RTA.GATEWAY)!.length).toBe(16);
  });

  it('a delete matches any scope and type, of the protocol given', () => {
    const r = req({ op: 'route-del', dst: '10.244.3.0/24', proto: 252 });
    const { head, attrs } = parts(r.body, 12);
    expect(r.type).toBe(RTM_DELROUTE);
    expect([head[4], head[5], head[6], head[7]]).toEqual([254, 252, RT_SCOPE.nowhere, 0]);
    expect(attrs.has(RTA.OIF)).toBe(false);
  });
});

describe('links', () => {
  it('a veth made with its peer inside another netns (by descriptor), names, MACs and MTUs on both ends', () => {
    const r = req({
      op: 'link-add',
      name: 'veth1',
      mac: '02:00:00:00:00:01',
      mtu: 1450,
      link: { type: 'veth', peer: { name: 'eth0', mac: '0a:58:0a:00:00:02', mtu: 1450, netns: '/var/run/netns/pod' } },
    });
    expect([r.type, r.flags]).toEqual([RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL]);
    const { attrs } = parts(r.body, 16);
    expect(cstr(attrs.get(IFLA.IFNAME))).toBe('veth1');
    expect(attrs.get(IFLA.MTU)!.readUInt32LE(0)).toBe(1450);
    const info = decodeAttrs(attrs.get(IFLA.LINKINFO)!);
    expect(cstr(info.get(IFLA_INFO.KIND))).toBe('veth');
    // VETH_INFO_PEER: an ifinfomsg, then the peer's own attributes
    const peer = decodeAttrs(decodeAttrs(info.get(IFLA_INFO.DATA)!).get(1)!, 16);
    expect(cstr(peer.get(IFLA.IFNAME))).toBe('eth0');
    expect(peer.get(IFLA.ADDRESS)!.toString('hex')).toBe('0a580a000002');
    expect(peer.get(IFLA.NET_NS_FD)!.readUInt32LE(0)).toBe(42);
  });

  it('link-set changes only the flags it names: up on, promisc off', () => {
    const { head, attrs } = parts(req({ op: 'link-set', name: 'cni0', up: true, promisc: false, master: 'eth0' }).body, 16);
    expect(head.readUInt32LE(8)).toBe(IFF_UP);
    expect(head.readUInt32LE(12)).toBe(IFF_UP | IFF_PROMISC);
    expect(attrs.get(IFLA.MASTER)!.readUInt32LE(0)).toBe(2);
  });

  it('a device that does not exist fails the request before anything is sent', () => {
    expect(() => req({ op: 'link-set', name: 'veth1', master: 'br9' })).toThrow(/no device br9/);
  });
});

describe('addresses, neighbours, FDB', () => {
  it('an IPv6 address without DAD carries IFA_F_NODAD; an IPv4 one never does', () => {
    const v6 = parts(req({ op: 'addr-replace', dev: 'eth0', cidr: 'fd00::2/64', nodad: true }).body, 8);
    expect([v6.head[0], v6.head[1], v6.head[2]]).toEqual([AF_INET6, 64, IFA_F_NODAD]);
    expect(v6.attrs.get(IFA.FLAGS)!.readUInt32LE(0)).toBe(IFA_F_NODAD);
    const v4 = parts(req({ op: 'addr-replace', dev: 'eth0', cidr: '10.0.0.2/24', nodad: true }).body, 8);
    expect([v4.head[0], v4.head[2], v4.attrs.has(IFA.FLAGS)]).toEqual([AF_INET, 0, false]);
  });

  it('a VTEP forwarding entry is appended, permanent and noarp (as bridge sends it), on the device itself (self)', () => {
    const r = req({ op: 'fdb-append', dev: 'tscni.1', mac: '00:00:00:00:00:00', dst: '192.168.50.2' });
    expect([r.type, r.flags]).toEqual([RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND]);
    const { head, attrs } = parts(r.body, 12);
    expect([head[0], head.readInt32LE(4), head.readUInt16LE(8), head[10]]).toEqual([AF_BRIDGE, 4, 0xc0, NTF_SELF]);
    expect([...attrs.get(NDA.DST)!]).toEqual([192, 168, 50, 2]);
  });
});
