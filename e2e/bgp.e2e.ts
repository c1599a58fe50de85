// BGP routing with real BIRD (Debian's bird2; scripts/deps.sh installs it): seed 001's topology, node1 and node2 on
// one segment, node3 on another behind a router namespace that runs BIRD as the leaf. Each node runs
// `tscni bgp run` (its own BIRD, config and control socket in its own directory); pods are host-gw pods with
// "routing": "bgp". A second cluster runs the full-mesh variant (no leaf, iBGP between the nodes of a segment).
import * as fs from 'fs';
import * as path from 'path';
import { ErrCode } from '../pkg/cni/errors';
import { run } from '../pkg/exec';
import { RTPROT_TSCNI } from '../pkg/fabric/types';
import { buildCluster, fabricConf, tscni, writeConflist, type Cluster, type ClusterNode } from './lib/cluster';
import { background, type Background } from './lib/etcd';
import { waitFor } from './lib/wait';
import { addPod, type AddedPod } from './lib/pods';
import { defaultBinDir, useWorld } from './lib/world';

const world = useWorld();
jest.setTimeout(120_000);

const HOLD = 3;
const RESTART = 5;
const LEAF_AS = 65000;
const leafOf = (n: ClusterNode) => (n.ip.startsWith('192.168.60.') ? '192.168.60.254' : '192.168.50.254');
const asOf = (n: ClusterNode) => 65000 + Number(n.name.slice(-1));

interface BgpNode {
  n: ClusterNode;
  dir: string;
  conf: Record<string, unknown>;
  file: string;
  agent?: Background;
  pod?: AddedPod;
}

function confOf(c: Cluster, n: ClusterNode, dir: string, bgp: Record<string, unknown>) {
  return fabricConf(c, n, 'host-gw', path.join(dir, 'ipam'), {
    name: 'tscni-bgp',
    routing: 'bgp',
    bgp: { holdTime: HOLD, restartTime: RESTART, dir: path.join(dir, 'bird'), ...bgp },
  });
}

function startAgent(b: BgpNode): Background {
  b.agent = background(world, b.n.ns, [path.join(defaultBinDir(), 'tscni'), 'bgp', 'run', '--conf', b.file], { TSCNI_RUN_DIR: path.join(b.dir, 'run') });
  return b.agent;
}

const birdRoutes = async (n: ClusterNode) => (await n.ns.ipJson<any[]>(['route', 'show', 'proto', 'bird'])).map((r) => `${r.dst} via ${r.gateway}`).sort();
const hasRoutesTo = async (n: ClusterNode, cidrs: string[]) => {
  const held = (await birdRoutes(n)).map((r) => r.split(' ')[0]);
  return cidrs.every((x) => held.includes(x));
};

function setup(tag: string, names: string[], bgpOf: (n: ClusterNode) => Record<string, unknown>, leaf: boolean) {
  const t = { c: undefined as unknown as Cluster, nodes: new Map<string, BgpNode>(), leaf: undefined as Background | undefined };
  beforeAll(async () => {
    t.c = await buildCluster(world, { tag });
    const members = names.map((x) => t.c.node(x));
    t.c.writePeers(members);
    if (leaf) t.leaf = await startLeaf(t.c, members);
    for (const n of members) {
      const dir = world.tmpDir(`bgp-${n.name}`);
      const conf = confOf(t.c, n, dir, bgpOf(n));
      const file = writeConflist(dir, conf);
      const b: BgpNode = { n, dir, conf, file };
      t.nodes.set(n.name, b);
      startAgent(b);
    }
    for (const n of members) {
      const others = members.filter((x) => x !== n).map((x) => x.podCIDR);
      await waitFor(() => hasRoutesTo(n, others), 30_000, `${n.name} learns ${others.join(', ')} over BGP`).catch((e) => {
        throw new Error(`${e.message}\n${t.nodes.get(n.name)!.agent!.output().slice(-3000)}`);
      });
    }
    for (const b of t.nodes.values()) b.pod = await addPod(world, b.n.ns, b.conf, `${tag}-pod-${b.n.name}`);
  });
  // the agents stop their BIRDs on SIGTERM; the world's own cleanup would SIGKILL them, and a BIRD outlives its
  // killed agent (as it should on a node): stop them first, then make sure no BIRD of ours is left
  afterAll(async () => {
    await Promise.all([...t.nodes.values()].map((b) => b.agent?.stop('SIGTERM')));
    for (const b of t.nodes.values()) await run('pkill', ['-f', `${path.join(b.dir, 'bird', 'bird.conf')}`], { allowFailure: true });
  });
  return t;
}

/** The leaf: BIRD in the router namespace, one eBGP session per node, installing what it learns. */
async function startLeaf(c: Cluster, members: ClusterNode[]): Promise<Background> {
  const dir = world.tmpDir('bgp-leaf');
  const sessions = members
    .map(
      (n) => `
protocol bgp ${n.name} {
    local ${leafOf(n)} as ${LEAF_AS};
    neighbor ${n.ip} as ${asOf(n)};
    hold time ${HOLD}; keepalive time 1;
    connect retry time 2;
    error wait time 1, 10;
    ipv4 { import all; export all; };
}`,
    )
    .join('\n');
  fs.writeFileSync(
    path.join(dir, 'bird.conf'),
    `router id 192.168.50.254;
protocol device { scan time 10; }
protocol kernel { ipv4 { import none; export all; }; }
${sessions}
`,
  );
  const leaf = background(world, c.router, ['bird', '-f', '-c', path.join(dir, 'bird.conf'), '-s', path.join(dir, 'bird.ctl')]);
  await waitFor(() => fs.existsSync(path.join(dir, 'bird.ctl')) || leaf.proc.exitCode !== null, 10_000, 'leaf BIRD');
  if (leaf.proc.exitCode !== null) throw new Error(`leaf BIRD exited: ${leaf.output()}`);
  return leaf;
}

describe('BGP through a leaf: node1, node2 on one segment, node3 behind the router', () => {
  const t = setup('bgl', ['node1', 'node2', 'node3'], (n) => ({ asn: asOf(n), neighbors: [{ address: leafOf(n), asn: LEAF_AS }] }), true);
  const pod = (x: string) => t.nodes.get(x)!.pod!;
  const node = (x: string) => t.nodes.get(x)!;

  it('each node learns the other pod CIDRs with BIRD as their protocol; nothing static, no tunnel', async () => {
    for (const b of t.nodes.values()) {
      const learned = await birdRoutes(b.n);
      // the leaf passes on a next hop on the receiver's own segment (node1 <-> node2 go straight), else its own
      const others = t.c.nodes.filter((x) => x !== b.n).map((x) => `${x.podCIDR} via ${leafOf(x) === leafOf(b.n) ? x.ip : leafOf(b.n)}`);
      expect(learned).toEqual(others.sort());
      expect(await b.n.ns.ipJson<any[]>(['route', 'show', 'proto', String(RTPROT_TSCNI)])).toEqual([]);
      const kinds = (await b.n.ns.ipJson<any[]>(['-d', 'link', 'show'])).map((l) => l.linkinfo?.info_kind).filter(Boolean);
      expect(kinds.filter((k: string) => ['vxlan', 'ipip', 'gre'].includes(k))).toEqual([]);
    }
  });

  it('pods ping and connect over TCP across all three nodes, without NAT', async () => {
    const ring: Array<[string, string]> = [
      ['node1', 'node2'],
      ['node2', 'node3'],
      ['node3', 'node1'],
    ];
    for (const [a, b] of ring) {
      expect(await world.ping(pod(a).ns, pod(b).ip, { count: 2 })).toBe(true);
      expect(await world.tcp(pod(a).ns, pod(b).ns, pod(b).ip, 7501)).toBe(pod(a).ip);
    }
  });

  it('CHECK and the doctor pass with every session Established and every route learned', async () => {
    const b = node('node1');
    const chk = await world.cni(b.n.ns, { command: 'CHECK', containerId: b.pod!.id, netns: b.pod!.ns, config: { ...b.conf, prevResult: b.pod!.result } });
    expect(chk.stdout + chk.stderr).toBe('');
    const d = await tscni(b.n.ns, ['doctor', '--conf', b.file]);
    expect(d.stdout).toMatch(/all as planned/);
  });

  it("stopping node3's agent (and its BIRD) withdraws node3's route from node1 within the hold time; CHECK says why; it comes back", async () => {
    const n1 = node('node1');
    const n3 = node('node3');
    const t0 = Date.now();
    await n3.agent!.stop();
    const gone = await waitFor(async () => !(await hasRoutesTo(n1.n, [n3.n.podCIDR])), 30_000, 'node3 route withdrawn on node1');
    console.log(`bgp: node3 leaving: route gone from node1 after ${Date.now() - t0} ms (agent stop to withdrawal ${gone} ms)`);
    expect(Date.now() - t0).toBeLessThan((HOLD + 2) * 1000);
    // node3 keeps the routes its BIRD installed (persist)
    expect(await hasRoutesTo(n3.n, [t.c.node('node1').podCIDR])).toBe(true);
    const chk = await world.cni(n1.n.ns, { command: 'CHECK', containerId: n1.pod!.id, netns: n1.pod!.ns, config: { ...n1.conf, prevResult: n1.pod!.result } });
    expect(chk.json).toMatchObject({ code: ErrCode.CheckFailed, msg: expect.stringContaining('no route to 10.244.3.0/24 (node node3) received over BGP') });
    const t1 = Date.now();
    startAgent(n3);
    await waitFor(() => hasRoutesTo(n1.n, [n3.n.podCIDR]), 30_000, 'node3 route back on node1');
    console.log(`bgp: node3 joining: route on node1 after ${Date.now() - t1} ms from the agent's start`);
    expect(await world.ping(pod('node1').ns, pod('node3').ip, { count: 2 })).toBe(true);
  });

  it("BIRD dying is reported and restarted by the agent; the node's routes stay, and the leaf keeps its route (graceful restart)", async () => {
    const n2 = node('node2');
    const before = n2.agent!.output().length;
    const birds = async () =>
      (await n2.n.ns.exec(['pgrep', '-f', `bird -f -R -c ${path.join(n2.dir, 'bird')}`], { allowFailure: true })).stdout.trim().split('\n').filter(Boolean);
    const pids = await birds();
    expect(pids).toHaveLength(1);
    await n2.n.ns.exec(['kill', '-9', pids[0]]);
    await waitFor(() => /bird exited \(SIGKILL\): starting it again/.test(n2.agent!.output().slice(before)), 10_000, 'agent reports the death');
    expect(await hasRoutesTo(n2.n, [t.c.node('node1').podCIDR, t.c.node('node3').podCIDR])).toBe(true);
    expect(await world.ping(pod('node2').ns, pod('node1').ip, { count: 2 })).toBe(true);
    // a new BIRD: its sessions up again, CHECK clean
    await waitFor(async () => /all as planned/.test((await tscni(n2.n.ns, ['doctor', '--conf', n2.file])).stdout), 20_000, 'node2 healthy again');
    expect(await hasRoutesTo(t.c.node('node1'), [n2.n.podCIDR])).toBe(true);
    const pids2 = await birds();
    expect(pids2).toHaveLength(1);
    expect(pids2[0]).not.toBe(pids[0]);
  });

  it('a node that vanishes without closing its sessions is withdrawn within the hold time, and comes back', async () => {
    const n1 = node('node1');
    const n3 = node('node3');
    // node3 stops answering on BGP's port (as a crashed or cut-off node would) while its links stay up
    const chain = (name: string, hook: string) =>
      `  chain ${name} {\n    type filter hook ${hook} priority 0;\n    tcp sport 179 drop\n    tcp dport 179 drop\n  }\n`;
    await n3.n.ns.exec(['nft', '-f', '-'], { input: `table inet bgpcut {\n${chain('i', 'input')}${chain('o', 'output')}}\n` });
    const t0 = Date.now();
    try {
      await waitFor(async () => !(await hasRoutesTo(n1.n, [n3.n.podCIDR])), 40_000, 'node3 route withdrawn on node1');
      const ms = Date.now() - t0;
      console.log(`bgp: node3 unreachable: route gone from node1 after ${ms} ms (hold ${HOLD} s)`);
      // an expired hold timer is no graceful restart: the leaf withdraws at once
      expect(ms).toBeLessThan((HOLD + 1) * 1000);
    } finally {
      await n3.n.ns.exec(['nft', 'delete', 'table', 'inet', 'bgpcut']);
    }
    const back = await waitFor(() => hasRoutesTo(n1.n, [n3.n.podCIDR]), 30_000, 'node3 route back on node1');
    console.log(`bgp: node3 reachable again: route on node1 after ${back} ms`);
  });

  it('a peer record announcing a pod CIDR another node holds is left out and named', async () => {
    const n1 = node('node1');
    t.c.writePeers([...t.c.nodes, { ...t.c.node('node2'), name: 'ghost', ip: '192.168.50.77', podCIDR: '10.244.2.0/24' }]);
    try {
      await waitFor(() => /warning: peer node ghost left out: podCIDR 10\.244\.2\.0\/24 overlaps node node2/.test(n1.agent!.output()), 10_000, 'warning');
      const chk = await world.cni(n1.n.ns, {
        command: 'CHECK',
        containerId: n1.pod!.id,
        netns: n1.pod!.ns,
        config: { ...n1.conf, prevResult: n1.pod!.result },
      });
      expect(chk.json.msg).toMatch(/peer node ghost left out/);
    } finally {
      t.c.writePeers(t.c.nodes);
    }
  });
});

describe('BGP full mesh: iBGP between the nodes of one segment, no leaf', () => {
  const t = setup('bgm', ['node1', 'node2'], () => ({ asn: 64512 }), false);

  it('each node learns the other pod CIDR straight from it; pods talk without NAT', async () => {
    const [a, b] = ['node1', 'node2'].map((x) => t.nodes.get(x)!);
    expect(await birdRoutes(a.n)).toEqual([`${b.n.podCIDR} via ${b.n.ip}`]);
    expect(await birdRoutes(b.n)).toEqual([`${a.n.podCIDR} via ${a.n.ip}`]);
    expect(await world.tcp(a.pod!.ns, b.pod!.ns, b.pod!.ip, 7502)).toBe(a.pod!.ip);
  });

  it('the mesh follows the peers file: a node taken out loses its session and its route, and comes back', async () => {
    const [a, b] = ['node1', 'node2'].map((x) => t.nodes.get(x)!);
    const before = a.agent!.output().length;
    t.c.writePeers([a.n]);
    await waitFor(async () => (await birdRoutes(a.n)).length === 0, 10_000, 'node1 drops node2');
    expect(a.agent!.output().slice(before)).toMatch(/announcing 10\.244\.1\.0\/24 to 0 neighbour\(s\)/);
    t.c.writePeers([a.n, b.n]);
    await waitFor(() => hasRoutesTo(a.n, [b.n.podCIDR]), 15_000, 'node1 learns node2 again');
    expect(await world.ping(a.pod!.ns, b.pod!.ip, { count: 2 })).toBe(true);
  });
});

describe('BGP config errors: named, nothing started', () => {
  let bad = 0;
  it.each([
    [{ asn: 0 }, /^tscni bgp: invalid config: bgp\.asn: 0 is out of range 1\.\.4294967295/],
    [{ asn: 65001, routerId: '1.2.3' }, /invalid config: bgp\.routerId: "1\.2\.3" is not an IPv4 address/],
    [{ asn: 65001, neighbors: [{ address: 'leaf', asn: 65000 }] }, /invalid config: bgp\.neighbors\[0\]\.address: "leaf" is not an IP address/],
    [{}, /invalid config: bgp\.asn: is required/],
  ])('%j', async (bgp, msg) => {
    const c = await buildCluster(world, { tag: `bge${++bad}` });
    const n = c.node('node1');
    const dir = world.tmpDir('bgp-bad');
    const conf = { ...confOf(c, n, dir, {}), bgp: { dir: path.join(dir, 'bird'), ...bgp } };
    const file = path.join(dir, 'net.conf');
    fs.writeFileSync(file, JSON.stringify(conf));
    const r = await tscni(n.ns, ['bgp', 'run', '--conf', file]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(msg);
    expect(fs.existsSync(path.join(dir, 'bird'))).toBe(false);
  });
});
