// A simulated cluster on top of World (seed 001's topology): node1 and node2 on one L2 segment (a bridge in a
// "switch" namespace), node3 on another subnet behind a router namespace. Nodes start with forwarding off and
// rp_filter=1, as strict distributions ship them.
//
//   node1 192.168.50.1 ─┐                          ┌─ router 192.168.60.254 ── node3 192.168.60.3
//   node2 192.168.50.2 ─┴─ switch (br0) ── router 192.168.50.254
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';
import { CLEAN_PATH, defaultBinDir, type Netns, type World } from './world';

export interface ClusterNode {
  name: string;
  ns: Netns;
  /** underlay address */
  ip: string;
  podCIDR: string;
  /** the underlay interface inside the node */
  dev: string;
}

export interface Cluster {
  nodes: ClusterNode[];
  switch: Netns;
  router: Netns;
  underlayMtu: number;
  clusterCIDR: string;
  /** a peers file shared by all nodes (each skips its own entry) */
  peersFile: string;
  writePeers(nodes: ClusterNode[]): void;
  node(name: string): ClusterNode;
}

/** A fabric plugin's config for node `n`: its node IP and pod CIDR, the cluster CIDR, the shared peers file. */
export function fabricConf(c: Cluster, n: ClusterNode, type: string, dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    name: `tscni-${type}`,
    type,
    nodeIP: n.ip,
    podCIDR: n.podCIDR,
    clusterCIDR: c.clusterCIDR,
    peersFile: c.peersFile,
    ipam: { type: 'host-local', dataDir },
    ...extra,
  };
}

/** A single-plugin config as a conflist file in `dir`, as an operator hands it to `tscni fabric|doctor|bgp`. */
export function writeConflist(dir: string, conf: Record<string, unknown>): string {
  const f = path.join(dir, 'net.conflist');
  const { cniVersion, name, ...plugin } = conf;
  fs.writeFileSync(f, JSON.stringify({ cniVersion, name, plugins: [plugin] }));
  return f;
}

export interface ClusterOptions {
  /** namespace name prefix, so several clusters live in one World; default 'c' */
  tag?: string;
  /** MTU of every underlay link; default 1450 */
  mtu?: number;
  rpFilter?: 0 | 1 | 2;
}

export async function buildCluster(world: World, o: ClusterOptions = {}): Promise<Cluster> {
  const tag = o.tag ?? 'c';
  const mtu = o.mtu ?? 1450;
  const sw = await world.node(`${tag}-sw`, { forwarding: false });
  const router = await world.node(`${tag}-rt`, { forwarding: true });
  await sw.ip(['link', 'add', 'br0', 'mtu', String(mtu), 'type', 'bridge']);
  await sw.ip(['link', 'set', 'br0', 'up']);
  const specs = [
    { name: 'node1', ip: '192.168.50.1', podCIDR: '10.244.1.0/24', seg: 'a' },
    { name: 'node2', ip: '192.168.50.2', podCIDR: '10.244.2.0/24', seg: 'a' },
    { name: 'node3', ip: '192.168.60.3', podCIDR: '10.244.3.0/24', seg: 'b' },
  ];
  // router: one leg on the switch, one straight to node3
  const rtLeg = await world.link(router, sw, { aIf: 'eth-a', bIf: 'p-rt', mtu });
  await sw.ip(['link', 'set', rtLeg.bIf, 'master', 'br0']);
  await router.ip(['addr', 'add', '192.168.50.254/24', 'dev', 'eth-a']);
  const nodes: ClusterNode[] = [];
  for (const s of specs) {
    const ns = await world.node(`${tag}-${s.name}`, { forwarding: false, rpFilter: o.rpFilter ?? 1 });
    if (s.seg === 'a') {
      const l = await world.link(ns, sw, { aIf: 'eth0', bIf: `p-${s.name}`, mtu });
      await sw.ip(['link', 'set', l.bIf, 'master', 'br0']);
      await ns.ip(['addr', 'add', `${s.ip}/24`, 'dev', 'eth0']);
      await ns.ip(['route', 'add', '192.168.60.0/24', 'via', '192.168.50.254', 'dev', 'eth0']);
    } else {
      await world.link(ns, router, { aIf: 'eth0', bIf: 'eth-b', mtu, subnet: '192.168.60.0/24', aIp: s.ip, bIp: '192.168.60.254' });
      await ns.ip(['route', 'add', '192.168.50.0/24', 'via', '192.168.60.254', 'dev', 'eth0']);
    }
    nodes.push({ name: s.name, ns, ip: s.ip, podCIDR: s.podCIDR, dev: 'eth0' });
  }
  const dir = world.tmpDir('cluster');
  const peersFile = path.join(dir, 'peers.json');
  const writePeers = (ns: ClusterNode[]) => {
    // write-then-rename, as a controller would: readers never see half a file
    fs.writeFileSync(`${peersFile}.tmp`, JSON.stringify(ns.map((n) => ({ node: n.name, nodeIP: n.ip, podCIDR: n.podCIDR }))));
    fs.renameSync(`${peersFile}.tmp`, peersFile);
  };
  writePeers(nodes);
  return {
    nodes,
    switch: sw,
    router,
    underlayMtu: mtu,
    clusterCIDR: '10.244.0.0/16',
    peersFile,
    writePeers,
    node: (name) => nodes.find((n) => n.name === name)!,
  };
}

/** `tscni <args>` inside a node, with a clean environment, as an operator or a DaemonSet would run it. */
export async function tscni(node: Netns, args: string[], timeoutMs = 20_000): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return run('ip', ['netns', 'exec', node.name, 'env', '-i', `PATH=${CLEAN_PATH}`, path.join(defaultBinDir(), 'tscni'), ...args], {
    allowFailure: true,
    timeout: timeoutMs,
    env: { PATH: CLEAN_PATH },
  });
}

/** `ping -M do -s <size>`: one echo with DF set; true when the reply came back whole. */
export async function pingDF(from: Netns, ip: string, size: number): Promise<boolean> {
  const r = await from.exec(['ping', '-n', '-q', '-c', '1', '-W', '2', '-M', 'do', '-s', String(size), ip], { allowFailure: true, env: { PATH: CLEAN_PATH } });
  return r.exitCode === 0;
}
