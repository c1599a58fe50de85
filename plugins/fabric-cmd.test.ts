import { loadFabricConf } from './fabric-cmd';

describe('tscni fabric: config files', () => {
  it('reads the fabric plugin out of the example conflists', () => {
    const vx = loadFabricConf(`${__dirname}/../conf/50-tscni-vxlan.conflist`);
    expect(vx).toMatchObject({
      mode: { name: 'vxlan' },
      podCIDR: '10.244.1.0/24',
      clusterCIDR: '10.244.0.0/16',
      opts: { vni: 1, port: 8472, directRouting: true },
    });
    expect(loadFabricConf(`${__dirname}/../conf/40-tscni-host-gw.conflist`).mode.name).toBe('host-gw');
    expect(() => loadFabricConf(`${__dirname}/../conf/10-tscni-bridge.conflist`)).toThrow(/no host-gw\/vxlan\/ipip plugin/);
  });
});
