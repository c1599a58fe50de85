// Cluster mode without Kubernetes on a real etcd (Debian's etcd-server; scripts/deps.sh installs it, and these
// tests fail without it): `tscni etcd run` on the three simulated nodes of e2e/lib/cluster.ts (node3 behind a
// router), vxlan, etcd members on the switch. Each agent leases a subnet, renders its conflist from the shipped
// template and its peers from the others' records, and follows them through etcd.
import * as fs from 'fs';
import * as path from 'path';
import { RTPROT_TSCNI } from '../pkg/fabric/types';
import { buildCluster, type Cluster, type ClusterNode } from './lib/cluster';
import { background, etcdctl, makeTls, restartEtcd, startEtcd, type Background, type EtcdMember, type TlsFiles } from './lib/etcd';
import { waitFor } from './lib/wait';
import { addPod } from './lib/pods';
import { defaultBinDir, useWorld } from './lib/world';

const world = useWorld();
jest.setTimeout(120_000);
const TTL = 3;

/** A cluster with `members` etcd members on its switch (192.168.50.100, .101, ...) and an agent per node. */
function etcdCluster(tag: string, members: number, o: { tls?: boolean; mode?: 'vxlan' | 'host-gw'; nodes?: string[] } = {}) {
  const t = {
    tls: undefined as TlsFiles | undefined,
    c: undefined as unknown as Cluster,
    etcd: [] as EtcdMember[],
    agents: new Map<string, Background>(),
    dirs: new Map<string, string>(),
    prefix: `/tscni-e2e-${tag}-${process.pid}`,
    start(n: ClusterNode, extra: Record<string, unknown> = {}): Background {
      const a = background(world, n.ns, [path.join(defaultBinDir(), 'tscni'), 'etcd', 'run', '--conf', agentConf(n, extra)], { TSCNI_RUN_DIR: world.runDir });
      t.agents.set(n.name, a);
      return a;
    },
    conflistOf: (n: ClusterNode) => path.join(t.dirs.get(n.name)!, 'net.d', '10-tscni.conflist'),
    podCIDROf: (n: ClusterNode) => JSON.parse(fs.readFileSync(t.conflistOf(n), 'utf8')).plugins[0].podCIDR as string,
    pluginConf(n: ClusterNode) {
      const l = JSON.parse(fs.readFileSync(t.conflistOf(n), 'utf8'));
      return { cniVersion: l.cniVersion, name: l.name, ...l.plugins[0] };
    },
    routeDsts: async (n: ClusterNode) => (await n.ns.ipJson<any[]>(['route', 'show', 'proto', String(RTPROT_TSCNI)])).map((r) => r.dst as string),
    async routesAll() {
      for (const n of t.c.nodes) {
        const others = t.c.nodes.filter((x) => x !== n && t.dirs.has(x.name)).map(t.podCIDROf);
        await waitFor(async () => (await t.routeDsts(n)).filter((d) => others.includes(d)).length === others.length, 10_000, `${n.name} routes`);
      }
    },
  };

  function agentConf(n: ClusterNode, extra: Record<string, unknown>): string {
    const dir = t.dirs.get(n.name) ?? world.tmpDir(`etcd-${n.name}`);
    t.dirs.set(n.name, dir);
    // the shipped template (conf/etcd/), without its portmap and with a private IPAM store
    const shipped = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'conf', 'etcd', `${o.mode ?? 'vxlan'}.conflist.tmpl`), 'utf8'));
    shipped.plugins = [{ ...shipped.plugins[0], ipam: { type: 'host-local', dataDir: path.join(dir, 'ipam') } }];
    const template = path.join(dir, 'template.conflist');
    fs.writeFileSync(template, JSON.stringify(shipped));
    const file = path.join(dir, 'agent.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        endpoints: t.etcd.map((m) => m.clientURL),
        prefix: t.prefix,
        clusterCIDR: '10.244.0.0/16',
        subnetLen: 24,
        leaseTTL: TTL,
        nodeName: n.name,
        nodeIP: n.ip,
        template,
        conflist: path.join(dir, 'net.d', '10-tscni.conflist'),
        peersFile: path.join(dir, 'peers.json'),
        stateFile: path.join(dir, 'state', 'subnet'),
        waitSeconds: 20,
        resyncSeconds: 30,
        ...(t.tls ? { tls: { ca: t.tls.ca, cert: t.tls.clientCert, key: t.tls.clientKey } } : {}),
        ...extra,
      }),
    );
    return file;
  }

  beforeAll(async () => {
    t.c = await buildCluster(world, { tag });
    const spots = [];
    for (let i = 0; i < members; i++) {
      const m = await world.node(`${tag}-etcd${i}`);
      const l = await world.link(m, t.c.switch, { aIf: 'eth0', bIf: `p-etcd${i}`, mtu: t.c.underlayMtu });
      await t.c.switch.ip(['link', 'set', l.bIf, 'master', 'br0']);
      await m.ip(['addr', 'add', `192.168.50.${100 + i}/24`, 'dev', 'eth0']);
      await m.ip(['route', 'add', '192.168.60.0/24', 'via', '192.168.50.254']);
      spots.push({ ns: m, ip: `192.168.50.${100 + i}` });
    }
    if (o.tls)
      t.tls = await makeTls(
        world.tmpDir('tls'),
        spots.map((s) => s.ip),
      );
    t.etcd = await startEtcd(world, spots, { tls: t.tls });
    // host-gw reaches on-link peers only: node3, behind the router, stays out of it
    if (o.nodes) t.c.nodes = t.c.nodes.filter((n) => o.nodes!.includes(n.name));
    for (const n of t.c.nodes) t.start(n);
    await waitFor(() => t.c.nodes.every((n) => fs.existsSync(t.conflistOf(n))), 20_000, 'every conflist').catch((e: Error) => {
      throw new Error(`${e.message}\n${[...t.agents].map(([k, a]) => `${k}: ${a.output()}`).join('\n')}`);
    });
  });
  return t;
}

describe('tscni etcd run: vxlan on three nodes, one etcd member', () => {
  const t = etcdCluster('et', 1);

  it('nodes join and hold distinct subnets of the cluster CIDR, remembered in their state files', () => {
    const cidrs = t.c.nodes.map(t.podCIDROf);
    expect(new Set(cidrs).size).toBe(3);
    for (const [i, n] of t.c.nodes.entries()) {
      expect(cidrs[i]).toMatch(/^10\.244\.\d+\.0\/24$/);
      expect(fs.readFileSync(path.join(t.dirs.get(n.name)!, 'state', 'subnet'), 'utf8').trim()).toBe(cidrs[i]);
    }
  });

  it("every node routes the others' subnets, and pods ping across nodes (node3 behind the router)", async () => {
    await t.routesAll();
    const pods = [];
    for (const n of t.c.nodes) pods.push(await addPod(world, n.ns, t.pluginConf(n), `ep-${n.name}`, { lo: true }));
    expect(await world.ping(pods[0].ns, pods[2].ip, { count: 2 })).toBe(true);
    expect(await world.ping(pods[2].ns, pods[1].ip, { count: 2 })).toBe(true);
  });

  it('a stopped node loses its lease: the others remove its route within TTL + 1 s; restarted, it gets its subnet back', async () => {
    const [n1, , n3] = t.c.nodes;
    const cidr3 = t.podCIDROf(n3);
    const t0 = Date.now();
    await t.agents.get(n3.name)!.stop('SIGKILL');
    const gone = await waitFor(async () => !(await t.routeDsts(n1)).includes(cidr3), (TTL + 3) * 1000, 'node3 route removed');
    expect(Date.now() - t0).toBeLessThanOrEqual((TTL + 1) * 1000 + 500);
    console.log(`etcd e2e: node3's route gone from node1 ${gone} ms after its agent was killed (TTL ${TTL} s)`);
    t.start(n3);
    const back = await waitFor(async () => (await t.routeDsts(n1)).includes(cidr3), 15_000, 'node3 route back');
    expect(t.podCIDROf(n3)).toBe(cidr3);
    console.log(`etcd e2e: node3 restarted, its subnet ${cidr3} routed on node1 again after ${back} ms`);
  });

  it('stops cleanly on SIGTERM', async () => {
    expect(await t.agents.get(t.c.nodes[1].name)!.stop('SIGTERM')).toBe(0);
  });
});

describe('tscni etcd run: three etcd members, one lost, then all of them', () => {
  const t = etcdCluster('eu', 3);
  let pods: Awaited<ReturnType<typeof addPod>>[] = [];

  beforeAll(async () => {
    await t.routesAll();
    pods = [];
    for (const n of t.c.nodes) pods.push(await addPod(world, n.ns, t.pluginConf(n), `eupod-${n.name}`, { lo: true }));
  });

  it('with one member killed, a node that stops still loses its route, and gets its subnet back', async () => {
    await t.etcd[0].proc.stop('SIGKILL');
    const [n1, , n3] = t.c.nodes;
    const cidr3 = t.podCIDROf(n3);
    await t.agents.get(n3.name)!.stop('SIGKILL');
    const gone = await waitFor(async () => !(await t.routeDsts(n1)).includes(cidr3), (TTL + 6) * 1000, 'node3 route removed');
    t.start(n3);
    const back = await waitFor(async () => (await t.routeDsts(n1)).includes(cidr3), 20_000, 'node3 route back');
    expect(t.podCIDROf(n3)).toBe(cidr3);
    console.log(`etcd e2e (2 of 3 members): node3's route gone after ${gone} ms, back ${back} ms after its restart`);
    expect(await world.ping(pods[0].ns, pods[2].ip, { count: 2 })).toBe(true);
  });

  it('with all of etcd stopped, pods keep talking and a new pod starts; once etcd is back, a new node is picked up', async () => {
    for (const m of t.etcd) await m.proc.stop('SIGKILL');
    const n1 = t.c.nodes[0];
    expect(await world.ping(pods[0].ns, pods[1].ip, { count: 2 })).toBe(true);
    const fresh = await addPod(world, n1.ns, t.pluginConf(n1), 'eupod-fresh', { lo: true });
    expect(await world.ping(fresh.ns, pods[2].ip, { count: 2 })).toBe(true);
    // a quorum again (two of three members, on their data)
    await restartEtcd(world, t.etcd.slice(1));
    const t0 = Date.now();
    await etcdctl(t.etcd.slice(1), [
      'put',
      `${t.prefix}/subnets/10.244.250.0-24`,
      JSON.stringify({ node: 'node9', nodeIP: '192.168.50.9', podCIDR: '10.244.250.0/24' }),
    ]);
    await waitFor(async () => (await t.routeDsts(n1)).includes('10.244.250.0/24'), 20_000, 'new node routed');
    console.log(`etcd e2e: after etcd came back, a new node's route on node1 ${Date.now() - t0} ms after its record`);
  });
});

describe('tscni etcd run over TLS (client certificates required)', () => {
  const t = etcdCluster('ev', 1, { tls: true });

  it('nodes join over TLS with distinct subnets, and pods ping across nodes', async () => {
    expect(t.etcd[0].clientURL).toMatch(/^https:/);
    expect(new Set(t.c.nodes.map(t.podCIDROf)).size).toBe(3);
    await t.routesAll();
    const [a, b] = [
      await addPod(world, t.c.nodes[0].ns, t.pluginConf(t.c.nodes[0]), 'evpod1', { lo: true }),
      await addPod(world, t.c.nodes[2].ns, t.pluginConf(t.c.nodes[2]), 'evpod3', { lo: true }),
    ];
    expect(await world.ping(a.ns, b.ip, { count: 2 })).toBe(true);
  });

  it('a missing CA file, or a CA that did not sign the server, ends the agent with exit 1 and the reason', async () => {
    const n = t.c.nodes[1];
    await t.agents.get(n.name)!.stop('SIGTERM');
    const missing = t.start(n, { tls: { ca: '/nonexistent/ca.pem', cert: t.tls!.clientCert, key: t.tls!.clientKey } });
    expect(await missing.exited).toBe(1);
    expect(missing.output()).toContain('tls.ca: /nonexistent/ca.pem: ENOENT');
    const other = await makeTls(world.tmpDir('tls-other'), ['192.168.50.100']);
    const wrong = t.start(n, { tls: { ca: other.ca, cert: t.tls!.clientCert, key: t.tls!.clientKey }, waitSeconds: 2 });
    expect(await wrong.exited).toBe(1);
    expect(wrong.output()).toMatch(/joining: /);
  });
});

describe('tscni etcd run: twenty agents joining at once', () => {
  const t = etcdCluster('ew', 1);

  it('get twenty distinct subnets (and the three nodes keep theirs)', async () => {
    const base = t.c.nodes.map(t.podCIDROf);
    const extra: ClusterNode[] = [];
    for (let i = 0; i < 20; i++) {
      const ns = await world.node(`ew-x${i}`);
      const l = await world.link(ns, t.c.switch, { aIf: 'eth0', bIf: `p-x${i}`, mtu: t.c.underlayMtu });
      await t.c.switch.ip(['link', 'set', l.bIf, 'master', 'br0']);
      await ns.ip(['addr', 'add', `192.168.50.${10 + i}/24`, 'dev', 'eth0']);
      extra.push({ name: `x${i}`, ns, ip: `192.168.50.${10 + i}`, podCIDR: '', dev: 'eth0' });
    }
    const t0 = Date.now();
    for (const n of extra) t.start(n);
    await waitFor(() => extra.every((n) => fs.existsSync(t.conflistOf(n))), 60_000, 'twenty conflists');
    console.log(`etcd e2e: twenty agents started at once all rendered their conflists within ${Date.now() - t0} ms`);
    const cidrs = extra.map(t.podCIDROf);
    expect(new Set([...cidrs, ...base]).size).toBe(23);
    const keys = (await etcdctl(t.etcd, ['get', '--prefix', '--keys-only', `${t.prefix}/subnets/`])).split('\n').filter(Boolean);
    expect(keys.length).toBe(23);
    expect(t.c.nodes.map(t.podCIDROf)).toEqual(base);
  });
});

describe('tscni etcd run: bad input and unreachable etcd', () => {
  const t = etcdCluster('ex', 1);

  it('a record someone else wrote that does not parse is skipped and logged, never applied', async () => {
    const n1 = t.c.nodes[0];
    await t.routesAll();
    const before = await t.routeDsts(n1);
    await etcdctl(t.etcd, ['put', `${t.prefix}/subnets/10.244.251.0-24`, '{"node": "intruder", "nodeIP": "not an IP", "podCIDR": "10.244.251.0/24"}']);
    const a = t.agents.get(n1.name)!;
    await waitFor(() => /skipped a record: .*10\.244\.251\.0-24: nodeIP "not an IP" is not an IP address/.test(a.output()), 10_000, 'skip logged');
    expect(await t.routeDsts(n1)).toEqual(before);
    expect(fs.readFileSync(path.join(t.dirs.get(n1.name)!, 'peers.json'), 'utf8')).not.toContain('intruder');
  });

  it('an exhausted cluster CIDR ends a joining agent with exit 1 naming it', async () => {
    const n2 = t.c.nodes[1];
    await t.agents.get(n2.name)!.stop('SIGTERM');
    // a cluster of one /24, already held by node1's record under this other prefix
    const prefix = `${t.prefix}-full`;
    await etcdctl(t.etcd, ['put', `${prefix}/subnets/10.99.0.0-24`, JSON.stringify({ node: 'other', nodeIP: '192.168.50.77', podCIDR: '10.99.0.0/24' })]);
    const a = t.start(n2, { prefix, clusterCIDR: '10.99.0.0/24', stateFile: path.join(world.tmpDir('full'), 'subnet'), waitSeconds: 1 });
    expect(await a.exited).toBe(1);
    expect(a.output()).toContain('clusterCIDR 10.99.0.0/24 has no free /24 left');
  });

  it('an etcd nobody answers at first start: retried for waitSeconds, then exit 1 with the reason', async () => {
    const n3 = t.c.nodes[2];
    await t.agents.get(n3.name)!.stop('SIGTERM');
    const t0 = Date.now();
    const a = t.start(n3, { endpoints: ['http://192.168.50.199:2379'], waitSeconds: 2, stateFile: path.join(world.tmpDir('gone'), 'subnet') });
    expect(await a.exited).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    // the last line is the reason it gave up with
    expect(a.output().trim().split('\n').pop()).toMatch(/^tscni etcd: joining: .*(no answer within 2 s|UNAVAILABLE|EHOSTUNREACH)/);
  });
});

describe('tscni etcd run: host-gw on the two nodes of one segment', () => {
  const t = etcdCluster('ey', 1, { mode: 'host-gw', nodes: ['node1', 'node2'] });

  it('routes each pod subnet via the other node, and pods ping across', async () => {
    const [n1, n2] = t.c.nodes;
    await t.routesAll();
    const r = await n1.ns.ipJson<any[]>(['route', 'show', t.podCIDROf(n2)]);
    expect(r).toEqual([expect.objectContaining({ gateway: n2.ip, dev: 'eth0' })]);
    const [a, b] = [await addPod(world, n1.ns, t.pluginConf(n1), 'eypod1', { lo: true }), await addPod(world, n2.ns, t.pluginConf(n2), 'eypod2', { lo: true })];
    expect(await world.ping(a.ns, b.ip, { count: 2 })).toBe(true);
  });

  it("a partition shorter than the lease TTL costs the node neither its subnet nor its peers' route to it", async () => {
    const [n1, n2] = t.c.nodes;
    const cidr2 = t.podCIDROf(n2);
    // node2 cannot reach etcd for a third of the TTL (its keepalives go every third: one or two are lost)
    await n2.ns.exec(['nft', 'add', 'table', 'inet', 'eypart']);
    await n2.ns.exec(['nft', 'add', 'chain', 'inet', 'eypart', 'out', '{ type filter hook output priority 0; }']);
    await n2.ns.exec(['nft', 'add', 'rule', 'inet', 'eypart', 'out', 'ip', 'daddr', t.etcd[0].ip, 'drop']);
    const until = Date.now() + (TTL * 1000) / 3;
    while (Date.now() < until) {
      expect(await t.routeDsts(n1)).toContain(cidr2);
      await new Promise((r) => setTimeout(r, 200));
    }
    await n2.ns.exec(['nft', 'delete', 'table', 'inet', 'eypart']);
    // a few keepalives later: still there, same subnet, no re-lease
    await new Promise((r) => setTimeout(r, TTL * 1000));
    expect(await t.routeDsts(n1)).toContain(cidr2);
    expect(t.podCIDROf(n2)).toBe(cidr2);
    expect(t.agents.get(n2.name)!.output()).not.toMatch(/lease lost/);
  });
});

describe('tscni etcd run: history compacted while an agent was cut off', () => {
  const t = etcdCluster('ez', 1);

  it('a record written meanwhile is routed once it reconnects: every (re)connection re-lists', async () => {
    const n1 = t.c.nodes[0];
    await t.routesAll();
    // node1 cut off from etcd (as a partition would) while a record is written and the history compacted
    await n1.ns.exec(['nft', 'add', 'table', 'inet', 'ezcut']);
    await n1.ns.exec(['nft', 'add', 'chain', 'inet', 'ezcut', 'out', '{ type filter hook output priority 0; }']);
    await n1.ns.exec(['nft', 'add', 'rule', 'inet', 'ezcut', 'out', 'ip', 'daddr', t.etcd[0].ip, 'tcp', 'dport', '2379', 'reject', 'with', 'tcp', 'reset']);
    await t.etcd[0].proc.stop('SIGKILL');
    await restartEtcd(world, t.etcd);
    await etcdctl(t.etcd, [
      'put',
      `${t.prefix}/subnets/10.244.252.0-24`,
      JSON.stringify({ node: 'node8', nodeIP: '192.168.50.8', podCIDR: '10.244.252.0/24' }),
    ]);
    const rev = /"revision":(\d+)/.exec(await etcdctl(t.etcd, ['get', t.prefix, '-w', 'json']))![1];
    await etcdctl(t.etcd, ['compact', rev]);
    await n1.ns.exec(['nft', 'delete', 'table', 'inet', 'ezcut']);
    await waitFor(async () => (await t.routeDsts(n1)).includes('10.244.252.0/24'), 15_000, 'record routed');
    expect(t.agents.get(n1.name)!.output()).toMatch(/watch disconnected[\s\S]*watching /);
  });
});
