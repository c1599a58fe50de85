// Kubernetes mode on simulated nodes: the three nodes of e2e/lib/cluster.ts (node3 behind a router), dual stack
// (an IPv4 and an IPv6 pod CIDR per Node, over the IPv4 underlay), the shipped manifest's vxlan template, `tscni k8s install` and `tscni k8s run` on each node as the DaemonSet runs them. The
// API server is a stand-in (e2e/fixtures/fake-kube-apiserver.js, HTTPS with a token, in the router namespace):
// there is no Kubernetes here. The kind e2e (e2e/kind/run.sh) runs the same paths on a real cluster elsewhere.
import * as fs from 'fs';
import * as path from 'path';
import { configMapData } from '../pkg/fabric/testdata/k8s/manifest';
import { RTPROT_TSCNI } from '../pkg/fabric/types';
import { run } from '../pkg/exec';
import { buildCluster, type Cluster, type ClusterNode } from './lib/cluster';
import { background, makeTls, type Background } from './lib/etcd';
import { waitFor } from './lib/wait';
import { addPod, ipFiles, type AddedPod } from './lib/pods';
import { CLEAN_PATH, defaultBinDir, useWorld } from './lib/world';

const world = useWorld();
jest.setTimeout(120_000);

const API_IP = '192.168.50.254';
const API_PORT = '6443';
const VTEP = 'tscni.4242';
const CLUSTER6 = 'fd00:10:244::/56';
const v6 = (n: { podCIDR: string }) => `fd00:10:244:${n.podCIDR.split('.')[2]}::/64`;
const ip6Of = (p: AddedPod) => p.ip6;

interface NodeState {
  name: string;
  podCIDRs: string[];
  internalIP: string;
}

/** The stand-in API server in the router namespace, serving `state` over HTTPS with a token; sa: the agents' service account. */
async function startApi(c: Cluster, state: NodeState[]) {
  const apiDir = world.tmpDir('api');
  const sa = world.tmpDir('sa');
  const tls = await makeTls(apiDir, [API_IP]);
  fs.copyFileSync(tls.cert, path.join(apiDir, 'server.pem'));
  fs.copyFileSync(tls.key, path.join(apiDir, 'server-key.pem'));
  fs.copyFileSync(tls.ca, path.join(sa, 'ca.crt'));
  fs.writeFileSync(path.join(apiDir, 'token'), 'e2e-token\n');
  fs.writeFileSync(path.join(sa, 'token'), 'e2e-token\n');
  const writeState = (nodes: NodeState[]) => {
    fs.writeFileSync(path.join(apiDir, 'state.json.tmp'), JSON.stringify(nodes));
    fs.renameSync(path.join(apiDir, 'state.json.tmp'), path.join(apiDir, 'state.json'));
  };
  writeState(state);
  const api = background(world, c.router, [process.execPath, path.join(__dirname, 'fixtures', 'fake-kube-apiserver.js'), apiDir, API_IP, API_PORT]);
  await waitFor(() => fs.existsSync(path.join(apiDir, 'ready')) || api.proc.exitCode !== null, 20_000, 'API stand-in listening');
  if (api.proc.exitCode !== null) throw new Error(`API stand-in exited: ${api.output()}`);
  const requests = () =>
    fs
      .readFileSync(path.join(apiDir, 'requests.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { method: string; url: string; body?: string });
  return { sa, writeState, requests };
}

/** A node's host paths, in its own directory. */
function nodeFiles(dir: string) {
  return {
    dir,
    templates: path.join(dir, 'templates'),
    bin: path.join(dir, 'opt/cni/bin'),
    conflist: path.join(dir, 'etc/cni/net.d/10-tscni.conflist'),
    fabricConf: path.join(dir, 'etc/cni/tscni-fabric.json'),
    peers: path.join(dir, 'etc/cni/tscni-peers.json'),
    ipam: path.join(dir, 'var/lib/cni/networks'),
    run: path.join(dir, 'run'),
  };
}

/** The shipped ConfigMap's templates with the host paths moved into the node's directory. */
function writeTemplates(f: ReturnType<typeof nodeFiles>): void {
  fs.mkdirSync(f.templates);
  for (const [k, v] of Object.entries(configMapData())) {
    const text = v
      .replace('/etc/cni/tscni-peers.json', f.peers)
      .replace('"ipam": { "type": "tscni-host-local" }', `"ipam": { "type": "tscni-host-local", "dataDir": "${f.ipam}" }`);
    fs.writeFileSync(path.join(f.templates, k), text);
  }
}

/** `tscni k8s <args>` in the node with the DaemonSet's environment, to its end. */
function k8sIn(n: ClusterNode, env: Record<string, string>, args: string[]) {
  const vars = [`PATH=${CLEAN_PATH}`, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
  return run('ip', ['netns', 'exec', n.ns.name, 'env', '-i', ...vars, path.join(defaultBinDir(), 'tscni'), 'k8s', ...args], {
    allowFailure: true,
    timeout: 60_000,
  });
}

describe('Kubernetes mode on simulated nodes (stand-in API server)', () => {
  let c: Cluster;
  let sa: string;
  const dirs = new Map<string, string>();
  const agents = new Map<string, Background>();
  const pods = new Map<string, AddedPod>();
  let state: NodeState[];

  const files = (n: ClusterNode) => nodeFiles(dirs.get(n.name)!);
  const env = (n: ClusterNode) => ({
    KUBERNETES_SERVICE_HOST: API_IP,
    KUBERNETES_SERVICE_PORT: API_PORT,
    TSCNI_SERVICEACCOUNT_DIR: sa,
    NODE_NAME: n.name,
    TSCNI_RUN_DIR: files(n).run,
  });
  const k8sArgs = (n: ClusterNode) => [
    '--mode',
    'vxlan',
    '--templates',
    files(n).templates,
    '--conflist',
    files(n).conflist,
    '--fabric-conf',
    files(n).fabricConf,
    '--cluster-cidr',
    `${c.clusterCIDR},${CLUSTER6}`,
  ];
  const k8s = (n: ClusterNode, verb: string[], extra: string[] = []) => k8sIn(n, env(n), [...verb, ...extra]);
  const startAgent = (n: ClusterNode) => {
    const a = background(world, n.ns, [path.join(defaultBinDir(), 'tscni'), 'k8s', 'run', ...k8sArgs(n)], env(n));
    agents.set(n.name, a);
    return a;
  };
  let api: Awaited<ReturnType<typeof startApi>>;
  const writeState = () => api.writeState(state);
  const requests = () => api.requests();
  const conflistOf = (n: ClusterNode) => JSON.parse(fs.readFileSync(files(n).conflist, 'utf8'));
  const pluginConf = (n: ClusterNode) => {
    const l = conflistOf(n);
    return { cniVersion: l.cniVersion, name: l.name, ...l.plugins[0] };
  };
  const routeDsts = async (n: ClusterNode) => (await n.ns.ipJson<any[]>(['route', 'show', 'proto', String(RTPROT_TSCNI)])).map((r) => r.dst as string).sort();
  const addOn = (n: ClusterNode, name: string) => addPod(world, n.ns, pluginConf(n), name, { binDir: files(n).bin });

  beforeAll(async () => {
    c = await buildCluster(world, { tag: 'k8' });
    state = c.nodes.map((n) => ({ name: n.name, podCIDRs: [n.podCIDR, v6(n)], internalIP: n.ip }));
    api = await startApi(c, state);
    sa = api.sa;
    for (const n of c.nodes) {
      dirs.set(n.name, world.tmpDir(`k8s-${n.name}`));
      writeTemplates(files(n));
      const r = await k8s(n, ['install'], [...k8sArgs(n), '--bin-dir', files(n).bin, '--wait', '30']);
      if (r.exitCode !== 0) throw new Error(`k8s install on ${n.name}: ${r.stderr}`);
      startAgent(n);
    }
    for (const n of c.nodes) {
      const others = c.nodes.filter((x) => x !== n).map((x) => x.podCIDR);
      await waitFor(async () => JSON.stringify(await routeDsts(n)) === JSON.stringify(others.sort()), 30_000, `${n.name} routes to its peers`);
    }
    for (const n of c.nodes) pods.set(n.name, await addOn(n, `k8-${n.name}-a`));
  });

  it('install renders each node from its Node object, under tscni- names, and the agents program the mesh', async () => {
    for (const n of c.nodes) {
      const l = conflistOf(n);
      expect(l.plugins.map((p: { type: string }) => p.type)).toEqual(['tscni-vxlan', 'portmap']);
      expect([l.plugins[0].podCIDR, l.plugins[0].nodeIP, l.plugins[0].clusterCIDR]).toEqual([[n.podCIDR, v6(n)], n.ip, [c.clusterCIDR, CLUSTER6]]);
      expect(fs.readdirSync(files(n).bin).sort()).toEqual([
        'tscni',
        'tscni-bridge',
        'tscni-host-gw',
        'tscni-host-local',
        'tscni-ipip',
        'tscni-ptp',
        'tscni-vxlan',
      ]);
      expect((await n.ns.ipJson<any[]>(['-d', 'link', 'show', VTEP]))[0].linkinfo.info_data).toMatchObject({ id: 4242, port: 4789 });
    }
    const [a, b, p3] = c.nodes.map((n) => pods.get(n.name)!);
    for (const [x, y] of [
      [a, b],
      [b, p3],
      [p3, a],
    ]) {
      expect(await world.ping(x.ns, y.ip, { count: 2 })).toBe(true);
    }
    expect(await world.tcp(p3.ns, a.ns, a.ip, 7301)).toBe(p3.ip);
    // dual stack: each pod has an IPv6 address of its node's IPv6 pod CIDR, and reaches the others over IPv6
    expect(ip6Of(a)).toMatch(/^fd00:10:244:1::/);
    expect(await world.ping(a.ns, ip6Of(p3), { count: 3 })).toBe(true);
    expect(await world.tcp(b.ns, p3.ns, ip6Of(p3), 7303)).toBe(ip6Of(b));
  });

  it('each agent clears NetworkUnavailable on its Node after its first good sync; its probes pass', async () => {
    for (const n of c.nodes) {
      await waitFor(() => requests().some((r) => r.method === 'PATCH' && r.url === `/api/v1/nodes/${n.name}/status`), 10_000, `${n.name} status patch`);
      const patch = requests().find((r) => r.method === 'PATCH' && r.url === `/api/v1/nodes/${n.name}/status`)!;
      expect(JSON.parse(patch.body!).status.conditions[0]).toMatchObject({ type: 'NetworkUnavailable', status: 'False', reason: 'TscniIsUp' });
      expect((await k8s(n, ['probe', 'live'])).exitCode).toBe(0);
      expect((await k8s(n, ['probe', 'ready'], ['--conflist', files(n).conflist])).exitCode).toBe(0);
    }
    // lists come from the watch cache
    expect(
      requests()
        .filter((r) => r.url.startsWith('/api/v1/nodes?') && !r.url.includes('watch=1'))
        .every((r) => r.url === '/api/v1/nodes?resourceVersion=0'),
    ).toBe(true);
  });

  it('a bad Node record (a pod CIDR overlapping node3) is left out and named; every other peer stays, ADD works, CHECK names it', async () => {
    const [n1, n2, n3] = c.nodes;
    state.push({ name: 'ghost', podCIDRs: ['10.244.3.128/25'], internalIP: '192.168.50.77' });
    writeState();
    await waitFor(async () => JSON.stringify(await routeDsts(n1)) === JSON.stringify([n2.podCIDR]), 20_000, 'node1 leaves node3 and ghost out');
    expect(agents.get('node1')!.output()).toMatch(
      /warning: peer node ghost left out: podCIDR 10\.244\.3\.128\/25 overlaps node node3 podCIDR 10\.244\.3\.0\/24/,
    );
    expect(agents.get('node1')!.output()).toMatch(/warning: peer node node3 left out: podCIDR 10\.244\.3\.0\/24 overlaps node ghost/);
    // node1 and node2 still reach each other; a new pod on node1 is wired
    expect(await world.ping(pods.get('node1')!.ns, pods.get('node2')!.ip, { count: 2 })).toBe(true);
    const fresh = await addOn(n1, 'k8-node1-b');
    expect(await world.ping(fresh.ns, pods.get('node2')!.ip, { count: 2 })).toBe(true);
    const chk = await world.cni(n1.ns, {
      command: 'CHECK',
      containerId: fresh.id,
      netns: fresh.ns,
      config: { ...pluginConf(n1), prevResult: fresh.result },
      binDir: files(n1).bin,
    });
    expect(chk.json.msg).toMatch(/peer node ghost left out: podCIDR 10\.244\.3\.128\/25 overlaps node node3/);
    expect((await world.cni(n1.ns, { command: 'DEL', containerId: fresh.id, netns: fresh.ns, config: pluginConf(n1), binDir: files(n1).bin })).exitCode).toBe(
      0,
    );
    // the record goes: node3 is back everywhere
    state = state.filter((s) => s.name !== 'ghost');
    writeState();
    await waitFor(async () => JSON.stringify(await routeDsts(n1)) === JSON.stringify([n2.podCIDR, n3.podCIDR]), 20_000, 'node1 routes node3 again');
    expect(await world.ping(pods.get('node1')!.ns, pods.get('node3')!.ip, { count: 2 })).toBe(true);
  });

  it("a Node registered again with a new podCIDR: the agent restarts, gives the old range back, and the node's new pods work", async () => {
    const [n1, n2] = c.nodes;
    const oldPod = pods.get('node2')!;
    const oldGw = '10.244.2.1';
    expect(ipFiles(files(n2).ipam, 'tscni').sort()).toEqual([oldPod.ip, oldPod.ip6].sort());
    // the IPv4 pod CIDR changes, the IPv6 one stays
    state = state.map((s) => (s.name === 'node2' ? { ...s, podCIDRs: ['10.244.5.0/24', v6(n2)] } : s));
    writeState();
    // the agent exits so that its container restarts and renders again; the kubelet's restart is ours here
    expect(await agents.get('node2')!.exited).toBe(3);
    expect(agents.get('node2')!.output()).toMatch(/node node2 has podCIDR 10\.244\.5\.0\/24 but the conf says 10\.244\.2\.0\/24/);
    const again = startAgent(n2);
    await waitFor(
      () => /podCIDR changed from 10\.244\.2\.0\/24 to 10\.244\.5\.0\/24/.test(again.output()) && fs.existsSync(files(n2).conflist),
      20_000,
      'node2 renders again',
    );
    await waitFor(() => conflistOf(n2).plugins[0].podCIDR[0] === '10.244.5.0/24', 20_000, 'new conflist');
    expect(again.output()).toContain(`removed ${oldGw}/24 from cni0`);
    // only the old IPv4 reservation is freed: the pod's IPv6 address is still of the node's pod CIDR
    expect(ipFiles(files(n2).ipam, 'tscni')).toEqual([oldPod.ip6]);
    const cni0 = (await n2.ns.ipJson<any[]>(['addr', 'show', 'dev', 'cni0']))[0].addr_info.map((x: { local: string }) => x.local);
    expect(cni0).not.toContain(oldGw);
    // node1 follows the Node: its route to node2 now carries the new CIDR
    await waitFor(
      async () => (await routeDsts(n1)).includes('10.244.5.0/24') && !(await routeDsts(n1)).includes('10.244.2.0/24'),
      20_000,
      'node1 routes the new CIDR',
    );
    const b2 = await addOn(n2, 'k8-node2-b');
    expect(b2.ip).toMatch(/^10\.244\.5\./);
    expect(await world.ping(pods.get('node1')!.ns, b2.ip, { count: 2 })).toBe(true);
    expect(await world.tcp(b2.ns, pods.get('node1')!.ns, pods.get('node1')!.ip, 7302)).toBe(b2.ip);
    pods.set('node2', b2);
  });

  it('uninstall removes everything tscni put on the node, and leaves what is not ours', async () => {
    const n1 = c.nodes[0];
    await agents.get('node1')!.stop();
    await n1.ns.ip(['route', 'add', '198.51.100.0/24', 'via', '192.168.50.254', 'proto', 'static']);
    fs.writeFileSync(path.join(files(n1).bin, 'bridge'), '#!/bin/sh\n', { mode: 0o755 }); // a reference plugin
    const r = await k8s(n1, ['uninstall'], ['--bin-dir', files(n1).bin, '--conflist', files(n1).conflist, '--fabric-conf', files(n1).fabricConf]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/removed link cni0/);
    const links = (await n1.ns.ipJson<any[]>(['link', 'show'])).map((l) => l.ifname as string);
    expect(links.filter((l) => l === 'cni0' || l === VTEP || l.startsWith('veth'))).toEqual([]);
    expect(await routeDsts(n1)).toEqual([]);
    expect(await n1.ns.ipJson<any[]>(['-6', 'route', 'show', 'proto', String(RTPROT_TSCNI)])).toEqual([]);
    expect(await n1.ns.ipJson<any[]>(['route', 'show', '198.51.100.0/24'])).toHaveLength(1);
    expect((await n1.ns.exec(['nft', 'list', 'tables'])).stdout).not.toMatch(/tscni/);
    expect(fs.readdirSync(files(n1).ipam)).toEqual([]);
    for (const f of [files(n1).conflist, files(n1).fabricConf, files(n1).peers]) expect(fs.existsSync(f)).toBe(false);
    expect(fs.readdirSync(files(n1).bin)).toEqual(['bridge']);
    // the other nodes are untouched
    expect(fs.existsSync(files(c.nodes[1]).conflist)).toBe(true);
    // a second uninstall finds nothing and succeeds
    expect((await k8s(n1, ['uninstall'], ['--bin-dir', files(n1).bin, '--conflist', files(n1).conflist, '--fabric-conf', files(n1).fabricConf])).exitCode).toBe(
      0,
    );
  });
});

describe('Kubernetes mode with BGP routing (host-gw-bgp): the full mesh follows the Node API', () => {
  let c: Cluster;
  let api: Awaited<ReturnType<typeof startApi>>;
  const f = new Map<string, ReturnType<typeof nodeFiles>>();
  const agents = new Map<string, Background>();
  const pods = new Map<string, AddedPod>();
  const names = ['node1', 'node2'];
  const env = (n: ClusterNode) => ({
    KUBERNETES_SERVICE_HOST: API_IP,
    KUBERNETES_SERVICE_PORT: API_PORT,
    TSCNI_SERVICEACCOUNT_DIR: api.sa,
    NODE_NAME: n.name,
    TSCNI_RUN_DIR: f.get(n.name)!.run,
    TSCNI_BGP_ASN: '64512',
  });
  const args = (n: ClusterNode) => {
    const x = f.get(n.name)!;
    return ['--mode', 'host-gw-bgp', '--templates', x.templates, '--conflist', x.conflist, '--fabric-conf', x.fabricConf, '--cluster-cidr', c.clusterCIDR];
  };
  const birdRoutes = async (n: ClusterNode) => (await n.ns.ipJson<any[]>(['route', 'show', 'proto', 'bird'])).map((r) => `${r.dst} via ${r.gateway}`);

  beforeAll(async () => {
    c = await buildCluster(world, { tag: 'k8b' });
    const nodes = names.map((x) => c.node(x));
    api = await startApi(
      c,
      nodes.map((n) => ({ name: n.name, podCIDRs: [n.podCIDR], internalIP: n.ip })),
    );
    for (const n of nodes) {
      f.set(n.name, nodeFiles(world.tmpDir(`k8b-${n.name}`)));
      writeTemplates(f.get(n.name)!);
      const r = await k8sIn(n, env(n), ['install', ...args(n), '--bin-dir', f.get(n.name)!.bin, '--wait', '30']);
      if (r.exitCode !== 0) throw new Error(`k8s install on ${n.name}: ${r.stderr}`);
      agents.set(n.name, background(world, n.ns, [path.join(defaultBinDir(), 'tscni'), 'k8s', 'run', ...args(n)], env(n)));
    }
    for (const [a, b] of [nodes, [...nodes].reverse()]) {
      await waitFor(async () => (await birdRoutes(a)).includes(`${b.podCIDR} via ${b.ip}`), 30_000, `${a.name} learns ${b.name} over BGP`).catch((e) => {
        throw new Error(`${e.message}\n${agents.get(a.name)!.output().slice(-3000)}`);
      });
    }
    for (const n of nodes) {
      const l = JSON.parse(fs.readFileSync(f.get(n.name)!.conflist, 'utf8'));
      pods.set(
        n.name,
        await addPod(world, n.ns, { cniVersion: l.cniVersion, name: l.name, ...l.plugins[0] }, `k8b-pod-${n.name}`, { binDir: f.get(n.name)!.bin }),
      );
    }
  });
  // `tscni k8s run` stops its BIRD on SIGTERM; the world's cleanup would SIGKILL it
  afterAll(async () => {
    await Promise.all([...agents.values()].map((a) => a.stop('SIGTERM')));
    for (const x of f.values()) await run('pkill', ['-f', path.join(x.run, 'bird', 'bird.conf')], { allowFailure: true });
  });

  it('each node learns the other pod CIDR from BIRD, not from the static fabric; pods talk without NAT', async () => {
    const [a, b] = names.map((x) => c.node(x));
    expect(await birdRoutes(a)).toEqual([`${b.podCIDR} via ${b.ip}`]);
    expect(await a.ns.ipJson<any[]>(['route', 'show', 'proto', String(RTPROT_TSCNI)])).toEqual([]);
    expect(JSON.parse(fs.readFileSync(f.get('node1')!.conflist, 'utf8')).plugins[0]).toMatchObject({ routing: 'bgp', bgp: { asn: 64512 } });
    expect(await world.tcp(pods.get('node1')!.ns, pods.get('node2')!.ns, pods.get('node2')!.ip, 7601)).toBe(pods.get('node1')!.ip);
  });

  it('a Node deleted from the API leaves the mesh: its session and route go', async () => {
    const [a, b] = names.map((x) => c.node(x));
    api.writeState([{ name: a.name, podCIDRs: [a.podCIDR], internalIP: a.ip }]);
    await waitFor(async () => (await birdRoutes(a)).length === 0, 15_000, `${a.name} drops ${b.name}`);
    api.writeState(names.map((x) => ({ name: x, podCIDRs: [c.node(x).podCIDR], internalIP: c.node(x).ip })));
    await waitFor(async () => (await birdRoutes(a)).includes(`${b.podCIDR} via ${b.ip}`), 15_000, `${a.name} learns ${b.name} again`);
  });
  it('uninstall with BGP: BIRD stopped first (the DaemonSet gone), its persisted routes and its directory go too', async () => {
    const a = c.node('node2');
    const x = f.get('node2')!;
    await agents.get('node2')!.stop('SIGTERM');
    expect(await birdRoutes(a)).toHaveLength(1); // persist: BIRD's routes outlive it
    const r = await k8sIn(a, env(a), ['uninstall', '--bin-dir', x.bin, '--conflist', x.conflist, '--fabric-conf', x.fabricConf]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/BGP-learned ones \(bird\)/);
    expect(await birdRoutes(a)).toEqual([]);
    expect(fs.existsSync(path.join(x.run, 'bird'))).toBe(false);
  });
});
