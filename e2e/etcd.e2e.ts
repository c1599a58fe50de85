// Cluster mode without Kubernetes on a real etcd (Debian's etcd-server): `tscni etcd run` on three simulated nodes
// leases their subnets, renders their conflists and peers, and follows the others through etcd. The seeds' cluster
// of e2e/lib/cluster.ts (node3 behind a router), vxlan, an etcd member on the switch.
import * as fs from 'fs';
import * as path from 'path';
import { RTPROT_TSCNI } from '../pkg/fabric/types';
import { buildCluster, type Cluster, type ClusterNode } from './lib/cluster';
import { background, startEtcd, waitFor, type Background, type EtcdMember } from './lib/etcd';
import { addPod } from './lib/pods';
import { defaultBinDir, useWorld } from './lib/world';

const world = useWorld();
jest.setTimeout(90_000);
const TTL = 3;

// scripts/deps.sh installs etcd-server: without it these tests fail (they do not skip)
describe('tscni etcd run: vxlan on three nodes, one etcd member', () => {
  let c: Cluster;
  let etcd: EtcdMember[];
  const agents = new Map<string, Background>();
  const dirs = new Map<string, string>();
  const prefix = `/tscni-e2e-${process.pid}`;

  function agentConf(n: ClusterNode): string {
    const dir = dirs.get(n.name) ?? world.tmpDir(`etcd-${n.name}`);
    dirs.set(n.name, dir);
    // the shipped template (conf/etcd/), without its portmap and with a private IPAM store
    const shipped = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'conf', 'etcd', 'vxlan.conflist.tmpl'), 'utf8'));
    shipped.plugins = [{ ...shipped.plugins[0], ipam: { type: 'host-local', dataDir: path.join(dir, 'ipam') } }];
    const template = path.join(dir, 'template.conflist');
    fs.writeFileSync(template, JSON.stringify(shipped));
    const file = path.join(dir, 'agent.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        endpoints: etcd.map((m) => m.clientURL),
        prefix,
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
      }),
    );
    return file;
  }

  function start(n: ClusterNode): Background {
    const a = background(world, n.ns, [path.join(defaultBinDir(), 'tscni'), 'etcd', 'run', '--conf', agentConf(n)], { TSCNI_RUN_DIR: world.runDir });
    agents.set(n.name, a);
    return a;
  }

  const conflistOf = (n: ClusterNode) => path.join(dirs.get(n.name)!, 'net.d', '10-tscni.conflist');
  const podCIDROf = (n: ClusterNode) => JSON.parse(fs.readFileSync(conflistOf(n), 'utf8')).plugins[0].podCIDR as string;
  const pluginConf = (n: ClusterNode) => {
    const l = JSON.parse(fs.readFileSync(conflistOf(n), 'utf8'));
    return { cniVersion: l.cniVersion, name: l.name, ...l.plugins[0] };
  };
  const routeDsts = async (n: ClusterNode) => (await n.ns.ipJson<any[]>(['route', 'show', 'proto', String(RTPROT_TSCNI)])).map((r) => r.dst as string);

  beforeAll(async () => {
    c = await buildCluster(world, { tag: 'et' });
    const m = await world.node('et-etcd0');
    const l = await world.link(m, c.switch, { aIf: 'eth0', bIf: 'p-etcd0', mtu: c.underlayMtu });
    await c.switch.ip(['link', 'set', l.bIf, 'master', 'br0']);
    await m.ip(['addr', 'add', '192.168.50.100/24', 'dev', 'eth0']);
    await m.ip(['route', 'add', '192.168.60.0/24', 'via', '192.168.50.254']);
    etcd = await startEtcd(world, [{ ns: m, ip: '192.168.50.100' }]);
    for (const n of c.nodes) start(n);
    await waitFor(() => c.nodes.every((n) => fs.existsSync(conflistOf(n))), 20_000, 'three conflists').catch((e: Error) => {
      throw new Error(`${e.message}\n${[...agents].map(([k, a]) => `${k}: ${a.output()}`).join('\n')}`);
    });
  });

  it('nodes join and hold distinct subnets of the cluster CIDR, remembered in their state files', () => {
    const cidrs = c.nodes.map(podCIDROf);
    expect(new Set(cidrs).size).toBe(3);
    for (const [i, n] of c.nodes.entries()) {
      expect(cidrs[i]).toMatch(/^10\.244\.\d+\.0\/24$/);
      expect(fs.readFileSync(path.join(dirs.get(n.name)!, 'state', 'subnet'), 'utf8').trim()).toBe(cidrs[i]);
    }
  });

  it("every node routes the others' subnets, and pods ping across nodes (node3 behind the router)", async () => {
    const [n1, n2, n3] = c.nodes;
    for (const n of c.nodes) {
      const others = c.nodes.filter((x) => x !== n).map(podCIDROf);
      await waitFor(
        async () => {
          const held = await routeDsts(n);
          return others.every((o) => held.includes(o));
        },
        10_000,
        `${n.name} routes`,
      );
    }
    const pods = [];
    for (const n of [n1, n2, n3]) pods.push(await addPod(world, n.ns, pluginConf(n), `ep-${n.name}`, { lo: true }));
    expect(await world.ping(pods[0].ns, pods[2].ip, { count: 2 })).toBe(true);
    expect(await world.ping(pods[2].ns, pods[1].ip, { count: 2 })).toBe(true);
  });

  it('a stopped node loses its lease: the others remove its route within TTL + 1 s; restarted, it gets its subnet back', async () => {
    const [n1, , n3] = c.nodes;
    const cidr3 = podCIDROf(n3);
    const t0 = Date.now();
    await agents.get(n3.name)!.stop('SIGKILL');
    const gone = await waitFor(async () => !(await routeDsts(n1)).includes(cidr3), (TTL + 3) * 1000, 'node3 route removed');
    expect(Date.now() - t0).toBeLessThanOrEqual((TTL + 1) * 1000 + 500);
    console.log(`etcd e2e: node3's route gone from node1 ${gone} ms after its agent was killed (TTL ${TTL} s)`);
    start(n3);
    const back = await waitFor(async () => (await routeDsts(n1)).includes(cidr3), 15_000, 'node3 route back');
    expect(podCIDROf(n3)).toBe(cidr3);
    console.log(`etcd e2e: node3 restarted, its subnet ${cidr3} routed on node1 again after ${back} ms`);
  });

  it('stops cleanly on SIGTERM', async () => {
    const a = agents.get(c.nodes[1].name)!;
    expect(await a.stop('SIGTERM')).toBe(0);
  });
});
