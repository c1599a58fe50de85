import { parseAgentConf } from './etcd-cmd';

const base = {
  endpoints: ['http://192.168.50.100:2379'],
  clusterCIDR: '10.244.0.0/16',
  template: '/etc/tscni/etcd.conflist',
  conflist: '/etc/cni/net.d/10-tscni.conflist',
  peersFile: '/run/tscni/peers.json',
};
const parse = (o: Record<string, unknown>) => parseAgentConf(JSON.stringify(o), '/etc/tscni/etcd.json');

describe('the etcd agent config', () => {
  it('takes defaults for what it can: prefix, subnet length, TTL, node name, state file', () => {
    const c = parse(base);
    expect(c).toMatchObject({ prefix: '/tscni', subnetLen: 24, leaseTTL: 60, stateFile: '/var/lib/tscni/etcd-subnet', waitSeconds: 60 });
    expect(c.nodeName.length).toBeGreaterThan(0);
  });

  it.each([
    [{ endpoints: [] }, /endpoints: must be a list/],
    [{ endpoints: ['192.168.50.100:2379'] }, /endpoints: must be a list of http\(s\):\/\/host:port/],
    [{ subnetLen: 8 }, /subnetLen: \/8 is larger than the cluster CIDR 10.244.0.0\/16/],
    [{ clusterCIDR: '10.244.0.0' }, /clusterCIDR: "10.244.0.0" is not a CIDR/],
    [{ leaseTTL: 0 }, /leaseTTL: must be a positive number/],
    [{ conflist: 'net.d/x.conflist' }, /conflist: net.d\/x.conflist is not an absolute path/],
    [{ tls: { ca: '/ca.pem', cert: '/c.pem' } }, /tls: cert and key go together/],
    [{ template: undefined }, /template: must be a non-empty string/],
  ])('refuses %j naming the key', (extra, msg) => {
    expect(() => parse({ ...base, ...extra })).toThrow(msg);
  });

  it('a file that is not JSON is named', () => {
    expect(() => parseAgentConf('{', '/etc/tscni/etcd.json')).toThrow(/\/etc\/tscni\/etcd.json: not JSON/);
  });
});
