// host-gw and vxlan on a simulated three-node cluster: real packets between pods of different nodes, no NAT
// inside the cluster, NAT to the outside, full-size DF packets at the fabric MTU, peers added and removed.
import * as fs from 'fs';
import * as path from 'path';
import { ErrCode } from '../pkg/cni/errors';
import { RTPROT_TSCNI } from '../pkg/fabric/types';
import { stableMac } from '../pkg/ip/mac';
import { buildCluster, fabricConf, pingDF, tscni, writeConflist, type Cluster, type ClusterNode } from './lib/cluster';
import { attachmentTraces, Cnictl, delAfterNetnsGone } from './lib/cnictl';
import { addPod } from './lib/pods';
import { defaultBinDir, useWorld, type Netns } from './lib/world';
import { waitFor } from './lib/wait';

const world = useWorld();
jest.setTimeout(60_000);

interface Pod {
  ns: Netns;
  id: string;
  ip: string;
  node: ClusterNode;
  result: any;
  conf: Record<string, unknown>;
}

async function addFabricPod(n: ClusterNode, conf: Record<string, unknown>, label: string): Promise<Pod> {
  return { ...(await addPod(world, n.ns, conf, `pod${++podCount}-${label}`, { lo: true, idLabel: label })), node: n, conf };
}

let podCount = 0;

async function routes(n: ClusterNode): Promise<{ dst: string; gateway?: string; dev: string }[]> {
  return world.ipJson(n.ns, ['route', 'show', 'proto', String(RTPROT_TSCNI)]);
}

async function bothWays(a: Pod, b: Pod, port: number): Promise<void> {
  expect(await world.ping(a.ns, b.ip, { count: 2 })).toBe(true);
  expect(await world.ping(b.ns, a.ip, { count: 2 })).toBe(true);
  // the receiving pod sees the sender's own address: no NAT inside the cluster
  expect(await world.tcp(a.ns, b.ns, b.ip, port)).toBe(a.ip);
  expect(await world.tcp(b.ns, a.ns, a.ip, port + 1)).toBe(b.ip);
}

describe('host-gw between node1 and node2 (one L2 segment)', () => {
  let c: Cluster;
  let a: Pod;
  let b: Pod;
  let outsideNodeIp: string;
  const dataDir = () => world.tmpDir('ipam');

  beforeAll(async () => {
    c = await buildCluster(world, { tag: 'hg' });
    c.writePeers([c.node('node1'), c.node('node2')]);
    outsideNodeIp = (await world.outside(c.node('node1').ns, { name: 'hg-out' })).nodeIp;
    a = await addFabricPod(c.node('node1'), fabricConf(c, c.node('node1'), 'host-gw', dataDir()), 'a');
    b = await addFabricPod(c.node('node2'), fabricConf(c, c.node('node2'), 'host-gw', dataDir()), 'b');
  });

  it('routes the peer pod CIDR via the peer node, with our protocol number, and enables forwarding', async () => {
    expect(await routes(c.node('node1'))).toEqual([expect.objectContaining({ dst: '10.244.2.0/24', gateway: '192.168.50.2', dev: 'eth0' })]);
    expect(await c.node('node1').ns.sysctl('net.ipv4.ip_forward')).toBe('1');
    expect(await c.node('node1').ns.sysctl('net.ipv4.conf.all.rp_filter')).toBe('1');
  });

  it('pods reach each other both ways without NAT (ping and TCP)', async () => {
    await bothWays(a, b, 7001);
  });

  it('a pod reaching the outside is masqueraded to the node address', async () => {
    const out = world.get('hg-out');
    expect(await world.tcp(a.ns, out, '203.0.113.2', 7010)).toBe(outsideNodeIp);
  });

  it('pods get the underlay MTU and a full-size DF packet passes', async () => {
    expect(a.result.interfaces[2].mtu).toBe(c.underlayMtu);
    expect(await pingDF(a.ns, b.ip, c.underlayMtu - 28)).toBe(true);
    expect(await pingDF(a.ns, b.ip, c.underlayMtu - 27)).toBe(false);
  });

  it('CHECK passes, and names a missing peer route', async () => {
    const conf = a.conf;
    const ok = await world.cni(c.node('node1').ns, { command: 'CHECK', containerId: a.id, netns: a.ns, config: { ...conf, prevResult: a.result } });
    expect(ok.stdout + ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    await c.node('node1').ns.ip(['route', 'del', '10.244.2.0/24', 'proto', String(RTPROT_TSCNI)]);
    const bad = await world.cni(c.node('node1').ns, { command: 'CHECK', containerId: a.id, netns: a.ns, config: { ...conf, prevResult: a.result } });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.json.msg).toMatch(/route 10\.244\.2\.0\/24 via 192\.168\.50\.2 dev eth0 missing/);
    // the next sync puts it back
    const s = await tscni(c.node('node1').ns, ['fabric', 'sync', '--conf', writeConflist(world.tmpDir('conf'), conf)]);
    expect(s.stderr).toBe('');
    expect(s.stdout).toMatch(/1 change/);
    expect(await world.ping(a.ns, b.ip)).toBe(true);
  });

  it('without nodeIP, takes the address of the default-route interface: the same fabric', async () => {
    const n1 = c.node('node1');
    // this node's default route leads to the outside namespace: for a moment it goes over the underlay
    await n1.ns.ip(['route', 'replace', 'default', 'via', '192.168.50.254', 'dev', 'eth0']);
    try {
      const { nodeIP, ...conf } = a.conf;
      expect(nodeIP).toBe('192.168.50.1');
      const s = await tscni(n1.ns, ['fabric', 'sync', '--conf', writeConflist(world.tmpDir('conf'), conf)]);
      expect(s.stderr).toBe('');
      expect(s.stdout).toMatch(/fabric host-gw: 1 peer\(s\).*unchanged/);
    } finally {
      await n1.ns.ip(['route', 'replace', 'default', 'via', '203.0.113.2', 'dev', 'uplink']);
    }
  });

  it('leaves out a peer on another subnet, naming it (sync, CHECK): the pod and the other peers are wired', async () => {
    c.writePeers(c.nodes);
    const n1 = c.node('node1');
    const ns = await world.pod('hg-leftout');
    const conf = fabricConf(c, n1, 'host-gw', world.tmpDir('ipam'));
    const id = world.containerId('lo');
    const why = /peer node node3 left out: nodeIP 192\.168\.60\.3 is not on-link on eth0/;
    try {
      const r = await world.cni(n1.ns, { command: 'ADD', containerId: id, netns: ns, config: conf });
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect((await routes(n1)).map((x: any) => x.dst)).toEqual(['10.244.2.0/24']);
      expect(await world.ping(ns, b.ip)).toBe(true);
      const chk = await world.cni(n1.ns, { command: 'CHECK', containerId: id, netns: ns, config: { ...conf, prevResult: r.json } });
      expect(chk.json.code).toBe(ErrCode.CheckFailed);
      expect(chk.json.msg).toMatch(why);
      const s = await tscni(n1.ns, ['fabric', 'sync', '--conf', writeConflist(world.tmpDir('conf'), conf)]);
      expect(s.exitCode).toBe(0);
      expect(s.stdout).toMatch(/1 peer\(s\).*1 left out/);
      expect(s.stderr).toMatch(new RegExp(`^tscni fabric: warning: ${why.source}`));
    } finally {
      expect((await world.cni(n1.ns, { command: 'DEL', containerId: id, netns: ns, config: conf })).exitCode).toBe(0);
      c.writePeers([c.node('node1'), c.node('node2')]);
    }
  });
});

describe('vxlan across three nodes (node3 behind a router)', () => {
  let c: Cluster;
  const pods: Record<string, Pod> = {};
  const confs: Record<string, Record<string, unknown>> = {};

  beforeAll(async () => {
    c = await buildCluster(world, { tag: 'vx' });
    await world.outside(c.node('node3').ns, { name: 'vx-out' });
    for (const n of c.nodes) {
      confs[n.name] = fabricConf(c, n, 'vxlan', world.tmpDir('ipam'));
      pods[n.name] = await addFabricPod(n, confs[n.name], n.name);
    }
  });

  it('builds one VTEP per node: VNI, port, nolearning, MTU underlay - 50, MAC from the node IP', async () => {
    const [l] = await world.ipJson(c.node('node1').ns, ['-d', 'link', 'show', 'tscni.1']);
    expect(l.mtu).toBe(c.underlayMtu - 50);
    expect(l.address).toBe(stableMac('192.168.50.1'));
    expect(l.linkinfo.info_data).toMatchObject({ id: 1, port: 8472, learning: false, local: '192.168.50.1', link: 'eth0' });
    expect(pods.node1.result.interfaces[2].mtu).toBe(c.underlayMtu - 50);
    const fdb = JSON.parse((await c.node('node1').ns.exec(['bridge', '-json', 'fdb', 'show', 'dev', 'tscni.1'])).stdout);
    expect(fdb).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ mac: stableMac('192.168.50.2'), dst: '192.168.50.2' }),
        expect.objectContaining({ mac: stableMac('192.168.60.3'), dst: '192.168.60.3' }),
      ]),
    );
    expect(await routes(c.node('node1'))).toEqual(
      expect.arrayContaining([expect.objectContaining({ dst: '10.244.3.0/24', gateway: '10.244.3.0', dev: 'tscni.1', flags: ['onlink'] })]),
    );
  });

  it('pods on every pair of nodes reach each other both ways without NAT', async () => {
    await bothWays(pods.node1, pods.node2, 7101);
    await bothWays(pods.node1, pods.node3, 7111);
    await bothWays(pods.node2, pods.node3, 7121);
  });

  it('a full-size DF packet passes at the VTEP MTU, one byte more does not', async () => {
    const mtu = c.underlayMtu - 50;
    expect(await pingDF(pods.node1.ns, pods.node3.ip, mtu - 28)).toBe(true);
    expect(await pingDF(pods.node1.ns, pods.node3.ip, mtu - 27)).toBe(false);
  });

  it('a pod reaching the outside is masqueraded', async () => {
    expect(await world.tcp(pods.node3.ns, world.get('vx-out'), '203.0.113.2', 7130)).toBe('203.0.113.1');
  });

  it('a second ADD with an unchanged peer set changes nothing on the fabric', async () => {
    const n2 = c.node('node2');
    const before = JSON.stringify([await routes(n2), await world.ipJson(n2.ns, ['neigh', 'show', 'dev', 'tscni.1'])]);
    const p = await addFabricPod(n2, confs.node2, 'node2b');
    expect(JSON.stringify([await routes(n2), await world.ipJson(n2.ns, ['neigh', 'show', 'dev', 'tscni.1'])])).toBe(before);
    expect(await world.ping(p.ns, pods.node3.ip)).toBe(true);
  });

  it('removing a peer from the peers file and syncing removes its route, neighbour and FDB entry; adding it back restores it', async () => {
    const n1 = c.node('node1');
    const file = writeConflist(world.tmpDir('conf'), confs.node1);
    c.writePeers([c.node('node1'), c.node('node2')]);
    const s = await tscni(n1.ns, ['fabric', 'sync', '--conf', file]);
    expect(s.stderr).toBe('');
    expect(s.exitCode).toBe(0);
    expect((await routes(n1)).map((r) => r.dst)).toEqual(['10.244.2.0/24']);
    expect((await world.ipJson(n1.ns, ['neigh', 'show', 'dev', 'tscni.1'])).map((x: any) => x.dst)).not.toContain('10.244.3.0');
    const fdb = (await n1.ns.exec(['bridge', 'fdb', 'show', 'dev', 'tscni.1'])).stdout;
    expect(fdb).not.toContain('192.168.60.3');
    expect(await world.ping(pods.node1.ns, pods.node3.ip)).toBe(false);
    // unchanged: a second sync writes nothing
    expect((await tscni(n1.ns, ['fabric', 'sync', '--conf', file])).stdout).toMatch(/unchanged/);

    c.writePeers(c.nodes);
    expect((await tscni(n1.ns, ['fabric', 'sync', '--conf', file])).exitCode).toBe(0);
    expect(await routes(n1)).toContainEqual(expect.objectContaining({ dst: '10.244.3.0/24', dev: 'tscni.1' }));
  });

  it('watch re-syncs when the peers file changes and exits cleanly on SIGTERM', async () => {
    const n2 = c.node('node2');
    const file = writeConflist(world.tmpDir('conf'), confs.node2);
    const { spawn } = await import('child_process');
    const w = spawn('ip', ['netns', 'exec', n2.ns.name, path.join(defaultBinDir(), 'tscni'), 'fabric', 'watch', '--conf', file, '--interval', '30'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    w.stdout.on('data', (d) => (out += d));
    w.stderr.on('data', (d) => (out += d));
    try {
      await waitFor(() => /fabric vxlan/.test(out), 5000);
      c.writePeers([c.node('node1'), c.node('node2')]);
      await waitFor(async () => !(await routes(n2)).some((r) => r.dst === '10.244.3.0/24'), 5000);
      c.writePeers(c.nodes);
      await waitFor(async () => (await routes(n2)).some((r) => r.dst === '10.244.3.0/24'), 5000);
      expect(await world.ping(pods.node2.ns, pods.node3.ip)).toBe(true);
    } finally {
      w.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((r) => w.on('exit', (c) => r(c)));
    expect(code).toBe(0);
  });

  it('CHECK passes, then names a neighbour and the VTEP MTU that were changed', async () => {
    const n1 = c.node('node1');
    const conf = { ...confs.node1, prevResult: pods.node1.result };
    const ok = await world.cni(n1.ns, { command: 'CHECK', containerId: pods.node1.id, netns: pods.node1.ns, config: conf });
    expect(ok.stdout + ok.stderr).toBe('');
    await n1.ns.ip(['neigh', 'del', '10.244.2.0', 'dev', 'tscni.1']);
    await n1.ns.ip(['link', 'set', 'tscni.1', 'mtu', '1300']);
    await n1.ns.exec(['bridge', 'fdb', 'del', stableMac('192.168.60.3'), 'dev', 'tscni.1', 'dst', '192.168.60.3', 'self']);
    const bad = await world.cni(n1.ns, { command: 'CHECK', containerId: pods.node1.id, netns: pods.node1.ns, config: conf });
    expect(bad.exitCode).toBe(1);
    expect(bad.json.msg).toMatch(/tscni\.1 has MTU 1300, expected 1400/);
    expect(bad.json.msg).toMatch(/neighbour 10\.244\.2\.0 missing on tscni\.1/);
    expect(bad.json.msg).toContain(`FDB entry ${stableMac('192.168.60.3')} dst 192.168.60.3 missing on tscni.1`);
    // a config naming another VNI for the same device
    const vni = await world.cni(n1.ns, {
      command: 'CHECK',
      containerId: pods.node1.id,
      netns: pods.node1.ns,
      config: { ...conf, vtepName: 'tscni.1', vni: 2 },
    });
    expect(vni.json.msg).toContain('tscni.1 has VNI 1, expected 2');
    expect((await tscni(n1.ns, ['fabric', 'sync', '--conf', writeConflist(world.tmpDir('conf'), confs.node1)])).exitCode).toBe(0);
    const again = await world.cni(n1.ns, { command: 'CHECK', containerId: pods.node1.id, netns: pods.node1.ns, config: conf });
    expect(again.exitCode).toBe(0);
  });

  it('DEL of the last pod on a node leaves the fabric in place', async () => {
    const n3 = c.node('node3');
    const r = await world.cni(n3.ns, { command: 'DEL', containerId: pods.node3.id, netns: pods.node3.ns, config: confs.node3 });
    expect(r.exitCode).toBe(0);
    expect((await routes(n3)).map((x) => x.dst).sort()).toEqual(['10.244.1.0/24', '10.244.2.0/24']);
    expect((await world.ipJson(n3.ns, ['link', 'show', 'tscni.1'])).length).toBe(1);
    expect((await world.ipJson(n3.ns, ['neigh', 'show', 'dev', 'tscni.1', 'nud', 'permanent'])).length).toBe(2);
  });

  it('bad input leaves the fabric as it was: overlapping peers, bad VNI, missing peers file', async () => {
    const n1 = c.node('node1');
    const snapshot = async () =>
      JSON.stringify([
        await routes(n1),
        await world.ipJson(n1.ns, ['-d', 'link', 'show', 'tscni.1']),
        await world.ipJson(n1.ns, ['neigh', 'show', 'dev', 'tscni.1', 'nud', 'permanent']),
        (await n1.ns.exec(['bridge', 'fdb', 'show', 'dev', 'tscni.1'])).stdout,
      ]);
    const before = await snapshot();
    const add = (conf: Record<string, unknown>) =>
      world.cni(n1.ns, { command: 'ADD', containerId: world.containerId('bad'), netns: pods.node1.ns, config: conf });
    let r = await add({ ...confs.node1, vni: 0 });
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(/^invalid config: vni: 0 is out of range/) });
    r = await add({ ...confs.node1, peersFile: '/nonexistent/peers.json' });
    expect(r.json).toMatchObject({ code: 7, msg: 'invalid config: peersFile: cannot read /nonexistent/peers.json: no such file or directory (ENOENT)' });
    const f = path.join(world.tmpDir('bad'), 'peers.json');
    fs.writeFileSync(f, '[{"nodeIP": "192.168.50.2",');
    r = await add({ ...confs.node1, peersFile: f });
    expect(r.json.msg).toMatch(/^invalid config: peersFile .*: not valid JSON/);
    expect(await snapshot()).toBe(before);
    const sync = (conf: Record<string, unknown>) => tscni(n1.ns, ['fabric', 'sync', '--conf', writeConflist(world.tmpDir('conf'), conf)]);
    const bads: [Record<string, unknown>, RegExp][] = [
      [{ ...confs.node1, peersFile: f }, /^tscni fabric: invalid config: peersFile .*: not valid JSON/],
      [
        { ...confs.node1, peersFile: '/nonexistent/peers.json' },
        /^tscni fabric: invalid config: peersFile: cannot read \/nonexistent\/peers\.json: no such file or directory \(ENOENT\)/,
      ],
      [{ ...confs.node1, vni: 16777216 }, /^tscni fabric: invalid config: vni: 16777216 is out of range/],
      [{ ...confs.node1, port: 0 }, /^tscni fabric: invalid config: port: 0 is out of range/],
    ];
    for (const [conf, msg] of bads) {
      const s = await sync(conf);
      expect({ exit: s.exitCode, stdout: s.stdout }).toEqual({ exit: 1, stdout: '' });
      expect(s.stderr).toMatch(msg);
    }
    expect(await snapshot()).toBe(before);
  });

  it('a route to a peer pod CIDR that someone else holds is not taken over: sync and CHECK name it, ADD still wires its pod', async () => {
    const n1 = c.node('node1');
    const file = writeConflist(world.tmpDir('conf'), confs.node1);
    await n1.ns.ip(['route', 'del', '10.244.3.0/24', 'proto', String(RTPROT_TSCNI)]);
    await n1.ns.ip(['route', 'add', '10.244.3.0/24', 'via', '192.168.50.2', 'dev', 'eth0', 'proto', 'static']);
    try {
      const s = await tscni(n1.ns, ['fabric', 'sync', '--conf', file]);
      expect(s.exitCode).toBe(0);
      expect(s.stderr).toContain("warning: route 10.244.3.0/24 via 192.168.50.2 dev eth0 proto static is not tscni's");
      const held = await world.ipJson(n1.ns, ['route', 'show', '10.244.3.0/24']);
      expect(held).toEqual([expect.objectContaining({ gateway: '192.168.50.2', protocol: 'static' })]);
      // the other peer keeps its route, and a pod on this node is wired; its CHECK names the conflict
      expect(await routes(n1)).toContainEqual(expect.objectContaining({ dst: '10.244.2.0/24', dev: 'tscni.1' }));
      const ns = await world.pod('vx-conflict');
      const id = world.containerId('conflict');
      const r = await world.cni(n1.ns, { command: 'ADD', containerId: id, netns: ns, config: confs.node1 });
      expect(r.exitCode).toBe(0);
      const chk = await world.cni(n1.ns, { command: 'CHECK', containerId: id, netns: ns, config: { ...confs.node1, prevResult: r.json } });
      expect(chk.json).toMatchObject({ code: ErrCode.CheckFailed, msg: expect.stringContaining('10.244.3.0/24 via 192.168.50.2 dev eth0 proto static') });
      expect((await world.cni(n1.ns, { command: 'DEL', containerId: id, netns: ns, config: confs.node1 })).exitCode).toBe(0);
    } finally {
      await n1.ns.ip(['route', 'del', '10.244.3.0/24', 'proto', 'static']);
    }
    expect((await tscni(n1.ns, ['fabric', 'sync', '--conf', file])).exitCode).toBe(0);
    expect(await routes(n1)).toContainEqual(expect.objectContaining({ dst: '10.244.3.0/24', dev: 'tscni.1' }));
  });

  it('a new VNI replaces the VTEP: the old device goes with its entries, and back', async () => {
    const n1 = c.node('node1');
    const dev = async (name: string) => (await world.ipJson(n1.ns, ['link', 'show'])).some((l: any) => l.ifname === name);
    const s = await tscni(n1.ns, ['fabric', 'sync', '--conf', writeConflist(world.tmpDir('conf'), { ...confs.node1, vni: 2 })]);
    expect(s.stderr).toBe('');
    expect(await dev('tscni.2')).toBe(true);
    expect(await dev('tscni.1')).toBe(false);
    expect((await routes(n1)).map((r) => r.dev)).toEqual(['tscni.2', 'tscni.2']);
    const back = await tscni(n1.ns, ['fabric', 'sync', '--conf', writeConflist(world.tmpDir('conf'), confs.node1)]);
    expect(back.stderr).toBe('');
    expect(await dev('tscni.2')).toBe(false);
    expect(await world.ping(pods.node1.ns, pods.node2.ip)).toBe(true);
  });
});

describe.each(['vxlan', 'host-gw'])('dual stack %s: a pod CIDR per family over the IPv4 underlay', (type) => {
  let c: Cluster;
  const v6 = (n: ClusterNode) => `fd00:10:244:${n.podCIDR.split('.')[2]}::/64`;
  const pods = new Map<string, Pod>();
  // host-gw keeps to the segment: node1 and node2; vxlan spans the router to node3
  const names = type === 'host-gw' ? ['node1', 'node2'] : ['node1', 'node3'];
  const conf = (n: ClusterNode) =>
    fabricConf(c, n, type, world.tmpDir('ipam'), { podCIDR: [n.podCIDR, v6(n)], clusterCIDR: [c.clusterCIDR, 'fd00:10:244::/56'] });

  // host-gw routes IPv6 pods via the peers' IPv6 addresses: its segment gets some
  const ip6 = (n: ClusterNode) => `fd00:50::${n.name.slice(-1)}`;

  beforeAll(async () => {
    c = await buildCluster(world, { tag: type === 'vxlan' ? 'd6v' : 'd6h' });
    const nodes = names.map((x) => c.node(x));
    if (type === 'host-gw') for (const n of nodes) await n.ns.ip(['-6', 'addr', 'add', `${ip6(n)}/64`, 'dev', 'eth0', 'nodad']);
    // one entry per pod family: vxlan's IPv6 pods ride the IPv4 tunnel, host-gw's go via IPv6 next hops
    const entries = nodes.flatMap((n) => [
      { node: n.name, nodeIP: n.ip, podCIDR: n.podCIDR },
      { node: n.name, nodeIP: type === 'host-gw' ? ip6(n) : n.ip, podCIDR: v6(n) },
    ]);
    fs.writeFileSync(c.peersFile, JSON.stringify(entries));
    for (const n of nodes) pods.set(n.name, await addFabricPod(n, conf(n), `ds-${n.name}`));
  });

  it('each pod has an address of each family; the node routes the peer IPv6 pod CIDR', async () => {
    const [a, b] = names.map((x) => pods.get(x)!);
    expect(a.ip).toMatch(/^10\.244\.1\./);
    expect(a.result.ips.map((x: { address: string }) => x.address)).toEqual([
      expect.stringMatching(/^10\.244\.1\.\d+\/24$/),
      expect.stringMatching(/^fd00:10:244:1::[0-9a-f]+\/64$/),
    ]);
    const r6 = await c.node(names[0]).ns.ipJson<any[]>(['-6', 'route', 'show', 'proto', String(RTPROT_TSCNI)]);
    const peer = c.node(names[1]);
    expect(r6).toEqual([
      type === 'host-gw'
        ? expect.objectContaining({ dst: v6(peer), gateway: ip6(peer), dev: 'eth0' })
        : expect.objectContaining({ dst: v6(peer), gateway: v6(peer).replace('/64', ''), dev: 'tscni.1' }),
    ]);
    expect(b.ip).toBeTruthy();
  });

  it('pods reach each other over IPv6 and IPv4, without NAT; CHECK passes', async () => {
    const [a, b] = names.map((x) => pods.get(x)!);
    const ip6 = (p: Pod) => p.result.ips.map((x: { address: string }) => x.address.split('/')[0]).find((x: string) => x.includes(':'));
    expect(await world.ping(a.ns, ip6(b), { count: 3 })).toBe(true);
    expect(await world.ping(b.ns, ip6(a), { count: 3 })).toBe(true);
    expect(await world.ping(a.ns, b.ip, { count: 2 })).toBe(true);
    expect(await world.tcp(a.ns, b.ns, ip6(b), 7401)).toBe(ip6(a));
    for (const x of names) {
      const p = pods.get(x)!;
      const chk = await world.cni(c.node(x).ns, { command: 'CHECK', containerId: p.id, netns: p.ns, config: { ...p.conf, prevResult: p.result } });
      expect(chk.stdout + chk.stderr).toBe('');
    }
  });
});

describe('vxlan with directRouting: node1-node2 direct, node3 through the tunnel (rp_filter=1)', () => {
  let c: Cluster;
  const pods: Record<string, Pod> = {};

  beforeAll(async () => {
    c = await buildCluster(world, { tag: 'dr' });
    for (const n of c.nodes) pods[n.name] = await addFabricPod(n, fabricConf(c, n, 'vxlan', world.tmpDir('ipam'), { directRouting: true }), n.name);
  });

  it('routes on-link peers over the underlay and the others over the VTEP, on both sides', async () => {
    const r1 = await routes(c.node('node1'));
    expect(r1).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: '10.244.2.0/24', gateway: '192.168.50.2', dev: 'eth0' }),
        expect.objectContaining({ dst: '10.244.3.0/24', gateway: '10.244.3.0', dev: 'tscni.1' }),
      ]),
    );
    expect(await routes(c.node('node2'))).toEqual(
      expect.arrayContaining([expect.objectContaining({ dst: '10.244.1.0/24', gateway: '192.168.50.1', dev: 'eth0' })]),
    );
    expect(await routes(c.node('node3'))).toEqual(expect.arrayContaining([expect.objectContaining({ dst: '10.244.1.0/24', dev: 'tscni.1' })]));
  });

  it('pods reach each other both ways on the direct and the tunnelled paths', async () => {
    await bothWays(pods.node1, pods.node2, 7201);
    await bothWays(pods.node1, pods.node3, 7211);
    await bothWays(pods.node3, pods.node2, 7221);
  });
});

describe('vxlan through libcni (cnictl), from the example conflist', () => {
  let c: Cluster;
  let ctl: Cnictl;
  const net = 'tscni-vxlan';

  beforeAll(async () => {
    ctl = await Cnictl.create(world);
    c = await buildCluster(world, { tag: 'lc' });
  });

  it('ADD and CHECK on two nodes, pods talk, CHECK names a lost VTEP neighbour, DEL (one with its netns gone) twice', async () => {
    const example = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'conf', '50-tscni-vxlan.conflist'), 'utf8'));
    const pods: { n: ClusterNode; ns: Netns; net: string; add: any; dataDir: string }[] = [];
    for (const n of [c.node('node1'), c.node('node3')]) {
      // Debian's libcni knows results up to 1.0.0; one conflist per node, as each node has its own podCIDR
      const list = { ...example, cniVersion: '1.0.0', name: `${net}-${n.name}` };
      const dataDir = world.tmpDir('ipam');
      list.plugins = [{ ...example.plugins[0], nodeIP: n.ip, podCIDR: n.podCIDR, peersFile: c.peersFile, ipam: { type: 'host-local', dataDir } }];
      ctl.addConflist(list);
      const pod = await world.pod(`lcpod-${n.name}`);
      const r = await ctl.add(n.ns, list.name, pod);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      // 1.0.0 results carry no interface MTU: read it from the pod
      expect((await world.ipJson(pod, ['link', 'show', 'eth0']))[0].mtu).toBe(c.underlayMtu - 50);
      pods.push({ n, ns: pod, net: list.name, add: r, dataDir });
      const chk = await ctl.run(n.ns, 'check', list.name, pod);
      expect(chk.stdout + chk.stderr).toBe('');
      expect(chk.exitCode).toBe(0);
    }
    const ip = (i: number) => pods[i].add.json.ips[0].address.split('/')[0];
    expect(await world.tcp(pods[0].ns, pods[1].ns, ip(1), 7301)).toBe(ip(0));
    expect(await world.tcp(pods[1].ns, pods[0].ns, ip(0), 7302)).toBe(ip(1));

    // CHECK through libcni (its cached result as prevResult) names a lost neighbour entry of the peer VTEP
    const peerVtep = '10.244.3.0';
    await c.node('node1').ns.ip(['neigh', 'del', peerVtep, 'dev', 'tscni.1']);
    const bad = await ctl.check(c.node('node1').ns, pods[0].net, pods[0].ns);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain(peerVtep);

    // node1's pod the ordinary way, node3's after its netns is gone; each DEL twice; nothing of theirs is left
    for (const p of pods) {
      const traces = () =>
        attachmentTraces(p.n.ns, {
          dataDir: p.dataDir,
          netName: p.net,
          containerId: Cnictl.defaultContainerId(p.ns.path),
          hostIf: p.add.json.interfaces[1].name,
          ips: [p.add.json.ips[0].address.split('/')[0]],
        });
      expect((await traces()).length).toBeGreaterThanOrEqual(3);
      const [d, again] =
        p.n.name === 'node3' ? await delAfterNetnsGone(ctl, p.n.ns, p.net, p.ns) : [await ctl.del(p.n.ns, p.net, p.ns), await ctl.del(p.n.ns, p.net, p.ns)];
      expect(d.stderr).toBe('');
      expect(d.exitCode).toBe(0);
      expect(again.exitCode).toBe(0);
      expect(await traces()).toEqual([]);
    }
    // the fabric stays for the node's next pods
    expect((await routes(c.node('node1'))).length).toBe(2);
  });
});

describe('concurrent first ADDs on a fresh node', () => {
  it('all succeed: the one that loses the race to create the VTEP re-reads and goes on', async () => {
    const c = await buildCluster(world, { tag: 'par' });
    const n1 = c.node('node1');
    const conf = fabricConf(c, n1, 'vxlan', world.tmpDir('ipam'));
    const pods = await Promise.all([1, 2, 3, 4].map((i) => addFabricPod(n1, conf, `par${i}`)));
    expect(new Set(pods.map((p) => p.ip)).size).toBe(4);
    expect((await routes(n1)).map((r) => r.dst).sort()).toEqual(['10.244.2.0/24', '10.244.3.0/24']);
    const fdb = JSON.parse((await n1.ns.exec(['bridge', '-json', 'fdb', 'show', 'dev', 'tscni.1'])).stdout);
    expect(fdb).toHaveLength(2);
  });
});
