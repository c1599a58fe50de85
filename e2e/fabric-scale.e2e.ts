// The fabric at scale on one node namespace: 1000 synthetic peers (their nodes need not exist for routes,
// neighbours and FDB entries), changed by ten out and ten in; what a reconcile must leave alone; and the
// stamp that lets a pod's ADD skip an unchanged fabric while CHECK still compares all of it.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../pkg/exec';
import { RTPROT_TSCNI } from '../pkg/fabric/types';
import { stableMac } from '../pkg/ip/mac';
import { CLEAN_PATH, defaultBinDir, useWorld, type Netns } from './lib/world';

const world = useWorld();
jest.setTimeout(120_000);

/** peer i: node 172.16.(i / 200 + 1).(i % 200 + 1) on the node's /12, pod CIDR 10.(i / 256 + 1).(i % 256).0/24 */
const peer = (i: number) => ({ node: `n${i}`, nodeIP: `172.16.${Math.floor(i / 200) + 1}.${(i % 200) + 1}`, podCIDR: `10.${(i >> 8) + 1}.${i & 255}.0/24` });
const gatewayOf = (podCIDR: string) => podCIDR.replace(/\/24$/, '');

describe('vxlan with 1000 peers: exactly the expected routes, neighbours and FDB entries, and nothing of others', () => {
  let node: Netns;
  let dir: string;
  let confFile: string;
  let peersFile: string;
  let conf: Record<string, unknown>;
  let present: number[];

  const writePeers = (ids: number[]) => {
    fs.writeFileSync(`${peersFile}.tmp`, JSON.stringify(ids.map(peer)));
    fs.renameSync(`${peersFile}.tmp`, peersFile);
    present = ids;
  };
  const sync = () =>
    run(
      'ip',
      [
        'netns',
        'exec',
        node.name,
        'env',
        '-i',
        `PATH=${CLEAN_PATH}`,
        `TSCNI_RUN_DIR=${world.runDir}`,
        path.join(defaultBinDir(), 'tscni'),
        'fabric',
        'sync',
        '--conf',
        confFile,
      ],
      {
        allowFailure: true,
        timeout: 60_000,
      },
    );

  async function fabric() {
    const routes = (await node.ipJson<any[]>(['route', 'show', 'proto', String(RTPROT_TSCNI)])).map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`);
    const neighs = (await node.ipJson<any[]>(['neigh', 'show', 'dev', 'tscni.1', 'nud', 'permanent'])).map((n) => `${n.dst} ${n.lladdr}`);
    const fdb = JSON.parse((await node.exec(['bridge', '-j', 'fdb', 'show', 'dev', 'tscni.1'])).stdout)
      .filter((e: any) => e.flags?.includes('self') && e.dst)
      .map((e: any) => `${e.mac} ${e.dst}`);
    return { routes: routes.sort(), neighs: neighs.sort(), fdb: fdb.sort() };
  }

  const expected = (ids: number[]) => ({
    routes: ids.map((i) => `${peer(i).podCIDR} via ${gatewayOf(peer(i).podCIDR)} dev tscni.1`).sort(),
    neighs: ids.map((i) => `${gatewayOf(peer(i).podCIDR)} ${stableMac(peer(i).nodeIP)}`).sort(),
    fdb: ids.map((i) => `${stableMac(peer(i).nodeIP)} ${peer(i).nodeIP}`).sort(),
  });

  beforeAll(async () => {
    node = await world.node('scale', { forwarding: true });
    await node.ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0-peer']);
    await node.ip(['addr', 'add', '172.16.0.1/12', 'dev', 'eth0']);
    await node.ip(['link', 'set', 'eth0', 'up']);
    await node.ip(['link', 'set', 'eth0-peer', 'up']);
    await node.ip(['route', 'add', 'default', 'via', '172.16.0.254']);
    // routes of other owners: one static, one of another protocol number, through the underlay
    await node.ip(['route', 'add', '192.0.2.0/24', 'via', '172.16.0.254', 'proto', 'static']);
    await node.ip(['route', 'add', '198.51.100.0/24', 'via', '172.16.0.254', 'proto', '77']);
    dir = world.tmpDir('scale');
    peersFile = path.join(dir, 'peers.json');
    confFile = path.join(dir, 'conf.json');
    conf = {
      cniVersion: '1.1.0',
      name: 'scale',
      type: 'vxlan',
      nodeIP: '172.16.0.1',
      podCIDR: '10.0.0.0/24',
      clusterCIDR: '10.0.0.0/8',
      peersFile,
      ipMasq: false,
      ipam: { type: 'host-local', dataDir: path.join(dir, 'ipam') },
    };
    fs.writeFileSync(confFile, JSON.stringify(conf));
    writePeers(Array.from({ length: 1000 }, (_, i) => i));
    const r = await sync();
    expect([r.exitCode, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(/1000 peer\(s\)/);
  });

  it('holds one route, neighbour and FDB entry per peer', async () => {
    expect(await fabric()).toEqual(expected(present));
  });

  it('ten peers out and ten in: exactly the new set, in one sync that changes only those', async () => {
    const ids = [...present.filter((i) => i % 100 !== 7), ...Array.from({ length: 10 }, (_, k) => 1000 + k)];
    expect(ids.length).toBe(1000);
    writePeers(ids);
    const r = await sync();
    expect(r.exitCode).toBe(0);
    // out: route, neighbour, FDB entry each; in: the same (3 x 10 + 3 x 10)
    expect(r.stdout).toMatch(/60 change\(s\)/);
    expect(await fabric()).toEqual(expected(ids));
  });

  it('routes of other owners and protocols stay as they were', async () => {
    const others = (await node.ipJson<any[]>(['route', 'show'])).filter((r) => ['192.0.2.0/24', '198.51.100.0/24'].includes(r.dst));
    expect(others.map((r) => `${r.dst} ${r.protocol}`).sort()).toEqual(['192.0.2.0/24 static', '198.51.100.0/24 77']);
  });

  it("a peer's pod CIDR routed by another owner is left alone and named; the other peers, a new one included, are programmed", async () => {
    const victim = peer(present[5]);
    await node.ip(['route', 'del', victim.podCIDR]);
    await node.ip(['route', 'add', victim.podCIDR, 'via', '172.16.0.254', 'proto', 'static']);
    writePeers([...present, 2000]);
    const r = await sync();
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(`route ${victim.podCIDR} via 172.16.0.254 dev eth0 proto static is not tscni's`);
    const routes = (await fabric()).routes;
    expect(routes.some((x) => x.startsWith(`${peer(2000).podCIDR} `))).toBe(true);
    expect(routes.some((x) => x.startsWith(`${victim.podCIDR} `))).toBe(false);
    await node.ip(['route', 'del', victim.podCIDR]);
    writePeers(present.filter((i) => i !== 2000));
    expect((await sync()).exitCode).toBe(0);
    expect(await fabric()).toEqual(expected(present));
  });

  it('a pod ADD after an unchanged sync leaves the fabric alone (stamp); CHECK still finds what is missing; a new peers file brings it back', async () => {
    const lost = peer(present[0]);
    await node.ip(['route', 'del', lost.podCIDR]);
    const ns = await world.pod('sp');
    const id = world.containerId('sp');
    const add = await world.cni(node, { command: 'ADD', containerId: id, netns: ns, config: conf });
    expect(add.exitCode).toBe(0);
    expect((await fabric()).routes.some((x) => x.startsWith(`${lost.podCIDR} `))).toBe(false);
    const check = await world.cni(node, { command: 'CHECK', containerId: id, netns: ns, config: { ...conf, prevResult: add.json } });
    expect(check.json?.msg).toContain(`route ${lost.podCIDR} via ${gatewayOf(lost.podCIDR)} dev tscni.1 onlink missing`);
    writePeers(present);
    const ns2 = await world.pod('sp2');
    expect((await world.cni(node, { command: 'ADD', containerId: world.containerId('sp2'), netns: ns2, config: conf })).exitCode).toBe(0);
    expect(await fabric()).toEqual(expected(present));
  });
});
