import { candidates, isPlanSubnet, subnetCount, subnetPlan } from './subnets';
import { decodeRecord, encodeRecord, peersOf, subnetKey } from './records';

describe('subnets of a cluster CIDR', () => {
  it('counts and lists them from a node-dependent start, the previous one first, taken ones left out', () => {
    const p = subnetPlan('10.244.0.0/16', 24);
    expect(subnetCount(p)).toBe(256n);
    const c = candidates(p, new Set(['10.244.5.0/24', '10.244.6.0/24']), 5, '10.244.9.0/24', 4);
    expect(c).toEqual(['10.244.9.0/24', '10.244.7.0/24', '10.244.8.0/24', '10.244.10.0/24']);
  });

  it('an exhausted cluster has no candidate; a previous subnet outside the plan is not tried', () => {
    const p = subnetPlan('10.0.0.0/30', 30);
    expect(candidates(p, new Set(['10.0.0.0/30']), 0)).toEqual([]);
    expect(candidates(subnetPlan('10.244.0.0/16', 24), new Set(), 0, '10.245.0.0/24', 1)).toEqual(['10.244.0.0/24']);
    expect(isPlanSubnet(subnetPlan('10.244.0.0/16', 24), '10.244.1.0/25')).toBe(false);
  });

  it('refuses a subnet larger than the cluster, a bad CIDR, and a subnet with no room for pods', () => {
    expect(() => subnetPlan('10.244.0.0/16', 8)).toThrow(/subnetLen: \/8 is larger than the cluster CIDR 10.244.0.0\/16/);
    expect(() => subnetPlan('10.244.0.0', 24)).toThrow(/clusterCIDR/);
    expect(() => subnetPlan('10.244.0.0/16', 31)).toThrow(/no room for pods/);
  });
});

describe('records', () => {
  const prefix = '/tscni';
  it('round-trip under the key of their subnet; peers are every record but ours', () => {
    const r = { node: 'n1', nodeIP: '192.168.50.1', podCIDR: '10.244.3.0/24' };
    const key = subnetKey(prefix, r.podCIDR);
    expect(key).toBe('/tscni/subnets/10.244.3.0-24');
    expect(decodeRecord(prefix, key, encodeRecord(r))).toEqual(r);
    expect(peersOf([r, { ...r, node: 'n2', podCIDR: '10.244.4.0/24' }], 'n1')).toEqual([
      { nodeIP: '192.168.50.1', podCIDR: '10.244.4.0/24', name: 'n2', key: 'node n2' },
    ]);
  });

  it('skip what does not parse or does not match its key, with the reason', () => {
    const key = subnetKey(prefix, '10.244.3.0/24');
    expect(decodeRecord(prefix, key, '{')).toEqual({ skip: `${key}: not JSON` });
    expect(decodeRecord(prefix, key, '{"node":"x","nodeIP":"300.1.1.1","podCIDR":"10.244.3.0/24"}')).toEqual({ skip: expect.stringMatching(/nodeIP/) });
    expect(decodeRecord(prefix, key, '{"node":"x","nodeIP":"1.1.1.1","podCIDR":"10.244.4.0/24"}')).toEqual({
      skip: expect.stringMatching(/not the subnet its key names/),
    });
  });
});
