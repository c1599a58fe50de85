// `tscni doctor` on real wiring: healthy bridge, ptp, host-gw and vxlan nodes report nothing and exit 0; each break
// injected by hand (route, FDB, neighbour, VTEP MTU, bridge port, pod route, ptp host route, proxy_arp, masquerade,
// ip_forward) is named, and the world is restored before the next. Also the per-call log of a `log` block.
import * as fs from 'fs';
import * as path from 'path';
import { RTPROT_TSCNI } from '../pkg/fabric/types';
import { stableMac } from '../pkg/ip/mac';
import { hostVethName } from '../pkg/wiring/names';
import { buildCluster, fabricConf, tscni, writeConflist, type Cluster, type ClusterNode } from './lib/cluster';
import { run } from '../pkg/exec';
import { addPod } from './lib/pods';
import { CLEAN_PATH, defaultBinDir, useWorld, type Netns } from './lib/world';

const world = useWorld();
jest.setTimeout(90_000);

interface Pod {
  ns: Netns;
  id: string;
  ip: string;
  result: any;
}

let podCount = 0;

const addDoctorPod = (node: Netns, conf: Record<string, unknown>, label: string) =>
  addPod(world, node, conf, `d${++podCount}-${label}`, { lo: true, idLabel: label });

async function doctor(node: Netns, file: string, ...args: string[]) {
  const r = await tscni(node, ['doctor', '--conf', file, ...args], 60_000);
  return { ...r, lines: r.stdout.trim().split('\n') };
}

/** doctor exits 1 and one finding line matches `re`; returns the finding lines. */
async function expectFinding(node: Netns, file: string, re: RegExp): Promise<string[]> {
  const r = await doctor(node, file);
  expect(r.stderr).toBe('');
  expect(r.lines.slice(0, -1)).toEqual(expect.arrayContaining([expect.stringMatching(re)]));
  expect(r.lines[r.lines.length - 1]).toMatch(/: \d+ problem\(s\)$/);
  expect(r.exitCode).toBe(1);
  return r.lines.slice(0, -1);
}

async function expectHealthy(node: Netns, file: string, pods: number): Promise<void> {
  const r = await doctor(node, file);
  expect(r.stderr).toBe('');
  expect(r.lines).toEqual([expect.stringMatching(new RegExp(`network \\S+: node and ${pods} pod\\(s\\) checked: all as planned$`))]);
  expect(r.exitCode).toBe(0);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('usage', () => {
  it('--help documents the options; a missing --conf is a usage error (exit 2)', async () => {
    const node = await world.node('usage');
    const help = await tscni(node, ['doctor', '--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stderr).toMatch(/--conf <conflist or conf file>.*--pod <containerID>\[:<ifname>\]/s);
    expect(help.stderr).toMatch(/--json/);
    const bad = await tscni(node, ['doctor', '--pod', 'x']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--conf is required/);
    const missing = await tscni(node, ['doctor', '--conf', '/nonexistent/net.conflist']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/\/nonexistent\/net\.conflist: ENOENT/);
  });
});

describe('bridge node with two pods', () => {
  let node: Netns;
  let conf: Record<string, unknown>;
  let file: string;
  const pods: Pod[] = [];

  beforeAll(async () => {
    node = await world.node('br');
    conf = {
      cniVersion: '1.0.0',
      name: 'dnet',
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      isDefaultGateway: true,
      ipMasq: true,
      mtu: 1400,
      ipam: { type: 'host-local', subnet: '10.22.0.0/24', dataDir: world.tmpDir('ipam') },
    };
    file = writeConflist(world.tmpDir('conf'), conf);
    pods.push(await addDoctorPod(node, conf, 'a'), await addDoctorPod(node, conf, 'b'));
  });

  it('a healthy node: nothing to report, exit 0; --json lists the pods and no findings', async () => {
    await expectHealthy(node, file, 2);
    const j = await doctor(node, file, '--json');
    expect(j.exitCode).toBe(0);
    const doc = JSON.parse(j.stdout);
    expect(doc).toMatchObject({ network: 'dnet', type: 'bridge', findings: [] });
    expect(doc.pods.map((p: any) => p.id).sort()).toEqual(pods.map((p) => p.id).sort());
    expect(doc.pods[0].netns).toMatch(/^\/var\/run\/netns\/tscni-t-/);
  });

  it('names a pod veth detached from the bridge', async () => {
    const veth = hostVethName(pods[0].id, 'eth0');
    await node.ip(['link', 'set', veth, 'nomaster']);
    try {
      const lines = await expectFinding(node, file, new RegExp(`^pod \\S+ \\(${esc(pods[0].ip)}\\): node veth ${veth} is not a port of cni0$`));
      // only that pod
      expect(lines.every((l) => l.includes(pods[0].ip))).toBe(true);
    } finally {
      await node.ip(['link', 'set', veth, 'master', 'cni0']);
    }
    await expectHealthy(node, file, 2);
  });

  it("names a pod's deleted default route", async () => {
    await pods[1].ns.ip(['route', 'del', 'default']);
    try {
      await expectFinding(node, file, new RegExp(`^pod \\S+ \\(${esc(pods[1].ip)}\\): pod has no route to 0\\.0\\.0\\.0/0 via 10\\.22\\.0\\.1$`));
    } finally {
      await pods[1].ns.ip(['route', 'add', 'default', 'via', '10.22.0.1', 'dev', 'eth0']);
    }
    await expectHealthy(node, file, 2);
  });

  it('names a removed masquerade element', async () => {
    const saved = (await node.exec(['nft', 'list', 'table', 'inet', 'tscni'])).stdout;
    await node.exec(['nft', 'flush', 'map', 'inet', 'tscni', 'masq4']);
    try {
      await expectFinding(
        node,
        file,
        new RegExp(
          `^pod \\S+ \\(${esc(pods[0].ip)}\\): nftables map masq4 element ${esc(pods[0].ip)} is missing \\(tscni:\\S+ net=dnet id=${pods[0].id} if=eth0\\)$`,
        ),
      );
    } finally {
      await node.exec(['nft', 'delete', 'table', 'inet', 'tscni']);
      await node.exec(['nft', '-f', '-'], { input: saved });
    }
    await expectHealthy(node, file, 2);
  });

  it('names ip_forward turned off, and the missing gateway address', async () => {
    await node.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    await node.ip(['addr', 'del', '10.22.0.1/24', 'dev', 'cni0']);
    try {
      const lines = await expectFinding(node, file, /^node: sysctl net\.ipv4\.ip_forward is 0, expected 1$/);
      expect(lines).toContain('node: cni0 lacks gateway address 10.22.0.1/24');
    } finally {
      await node.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      await node.ip(['addr', 'add', '10.22.0.1/24', 'dev', 'cni0']);
    }
    await expectHealthy(node, file, 2);
  });

  it('--netns runs it in the node namespace from outside', async () => {
    const r = await run(path.join(defaultBinDir(), 'tscni'), ['doctor', '--netns', node.name, '--conf', file], {
      allowFailure: true,
      env: { PATH: CLEAN_PATH },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^bridge network dnet: node and 2 pod\(s\) checked: all as planned\n$/);
    expect(r.exitCode).toBe(0);
  });

  it('--pod checks only the pods named; an unknown one is reported', async () => {
    const r = await doctor(node, file, '--pod', `${pods[1].id}:eth0`);
    expect(r.lines).toEqual([expect.stringMatching(/node and 1 pod\(s\) checked: all as planned$/)]);
    const u = await doctor(node, file, '--pod', 'nosuchpod');
    expect(u.exitCode).toBe(1);
    expect(u.lines[0]).toMatch(/^pod nosuchpod: host-local holds no address for it in /);
  });
});

describe('ptp node', () => {
  let node: Netns;
  let file: string;
  let pod: Pod;
  let veth: string;

  beforeAll(async () => {
    node = await world.node('ptp');
    const conf = {
      cniVersion: '1.0.0',
      name: 'dptp',
      type: 'ptp',
      ipMasq: true,
      mtu: 1400,
      ipam: { type: 'host-local', subnet: '10.23.0.0/24', dataDir: world.tmpDir('ipam') },
    };
    file = writeConflist(world.tmpDir('conf'), conf);
    pod = await addDoctorPod(node, conf, 'p');
    veth = hostVethName(pod.id, 'eth0', 'ptp');
  });

  it('a healthy node: nothing to report', async () => {
    await expectHealthy(node, file, 1);
  });

  it('names a deleted /32 host route', async () => {
    await node.ip(['route', 'del', `${pod.ip}/32`, 'dev', veth]);
    try {
      await expectFinding(node, file, new RegExp(`^pod \\S+ \\(${esc(pod.ip)}\\): node has no route to ${esc(pod.ip)}/32 dev ${veth}$`));
    } finally {
      await node.ip(['route', 'add', `${pod.ip}/32`, 'dev', veth, 'scope', 'link']);
    }
    await expectHealthy(node, file, 1);
  });

  it('names proxy_arp turned off on the host veth', async () => {
    await node.exec(['sysctl', '-qw', `net/ipv4/conf/${veth}/proxy_arp=0`]);
    try {
      await expectFinding(node, file, new RegExp(`: sysctl net\\.ipv4\\.conf\\.${veth}\\.proxy_arp is 0, expected 1$`));
    } finally {
      await node.exec(['sysctl', '-qw', `net/ipv4/conf/${veth}/proxy_arp=1`]);
    }
    await expectHealthy(node, file, 1);
  });

  it('names ip_forward turned off', async () => {
    await node.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    try {
      await expectFinding(node, file, /^node: sysctl net\.ipv4\.ip_forward is 0, expected 1$/);
    } finally {
      await node.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      // writing ip_forward resets every interface's forwarding flag: the ptp veth needs its own back
      await node.exec(['sysctl', '-qw', `net/ipv4/conf/${veth}/forwarding=1`]);
    }
    await expectHealthy(node, file, 1);
  });
});

describe('vxlan across three nodes', () => {
  let c: Cluster;
  let n1: ClusterNode;
  let file: string;

  beforeAll(async () => {
    c = await buildCluster(world, { tag: 'dvx' });
    for (const n of c.nodes) {
      const conf = fabricConf(c, n, 'vxlan', world.tmpDir('ipam'), { cniVersion: '1.0.0', name: 'd-vxlan' });
      if (n.name === 'node1') file = writeConflist(world.tmpDir('conf'), conf);
      await addDoctorPod(n.ns, conf, n.name);
    }
    n1 = c.node('node1');
  });

  const sync = async () => expect((await tscni(n1.ns, ['fabric', 'sync', '--conf', file])).exitCode).toBe(0);

  it('a healthy node: nothing to report', async () => {
    await expectHealthy(n1.ns, file, 1);
  });

  it('names a deleted peer route and the peer', async () => {
    await n1.ns.ip(['route', 'del', '10.244.3.0/24', 'proto', String(RTPROT_TSCNI)]);
    await expectFinding(n1.ns, file, /^node: route 10\.244\.3\.0\/24 via 10\.244\.3\.0 dev tscni\.1 onlink missing \(peer node3 192\.168\.60\.3\)$/);
    await sync();
    await expectHealthy(n1.ns, file, 1);
  });

  it('names a deleted FDB entry and the peer', async () => {
    await n1.ns.exec(['bridge', 'fdb', 'del', stableMac('192.168.50.2'), 'dev', 'tscni.1', 'dst', '192.168.50.2', 'self']);
    await expectFinding(
      n1.ns,
      file,
      new RegExp(`^node: FDB entry ${stableMac('192.168.50.2')} dst 192\\.168\\.50\\.2 missing on tscni\\.1 \\(peer node2 192\\.168\\.50\\.2\\)$`),
    );
    await sync();
    await expectHealthy(n1.ns, file, 1);
  });

  it('names a peer record left out (a pod CIDR overlapping another node), by its node name', async () => {
    c.writePeers([...c.nodes, { ...c.node('node2'), name: 'ghost', ip: '192.168.50.77', podCIDR: '10.244.3.128/25' }]);
    try {
      await expectFinding(n1.ns, file, /^node: peer node ghost left out: podCIDR 10\.244\.3\.128\/25 overlaps node node3 podCIDR 10\.244\.3\.0\/24$/);
    } finally {
      c.writePeers(c.nodes);
    }
    await sync();
    await expectHealthy(n1.ns, file, 1);
  });

  it('names a deleted neighbour entry and the peer', async () => {
    await n1.ns.ip(['neigh', 'del', '10.244.3.0', 'dev', 'tscni.1']);
    await expectFinding(n1.ns, file, /^node: neighbour 10\.244\.3\.0 missing on tscni\.1 \(peer node3 192\.168\.60\.3\)$/);
    await sync();
    await expectHealthy(n1.ns, file, 1);
  });

  it('names a changed VTEP MTU and where the expected one comes from', async () => {
    await n1.ns.ip(['link', 'set', 'tscni.1', 'mtu', '1300']);
    await expectFinding(n1.ns, file, /^node: tscni\.1 has MTU 1300, expected 1400 \(underlay MTU 1450 - 50 for vxlan\)$/);
    await sync();
    await expectHealthy(n1.ns, file, 1);
  });
});

describe('host-gw between node1 and node2', () => {
  let c: Cluster;
  let n1: ClusterNode;
  let file: string;

  beforeAll(async () => {
    c = await buildCluster(world, { tag: 'dhg' });
    c.writePeers([c.node('node1'), c.node('node2')]);
    for (const n of [c.node('node1'), c.node('node2')]) {
      const conf = fabricConf(c, n, 'host-gw', world.tmpDir('ipam'), { cniVersion: '1.0.0', name: 'd-host-gw' });
      if (n.name === 'node1') file = writeConflist(world.tmpDir('conf'), conf);
      await addDoctorPod(n.ns, conf, n.name);
    }
    n1 = c.node('node1');
  });

  it('a healthy node: nothing to report; a deleted peer route is named with its peer', async () => {
    await expectHealthy(n1.ns, file, 1);
    await n1.ns.ip(['route', 'del', '10.244.2.0/24', 'proto', String(RTPROT_TSCNI)]);
    await expectFinding(n1.ns, file, /^node: route 10\.244\.2\.0\/24 via 192\.168\.50\.2 dev eth0 missing \(peer node2 192\.168\.50\.2\)$/);
    expect((await tscni(n1.ns, ['fabric', 'sync', '--conf', file])).exitCode).toBe(0);
    await expectHealthy(n1.ns, file, 1);
  });

  it('ptp pods with the host-gw fabric kept beside them (--fabric, as the Kubernetes ptp mode runs): a lost peer route is named', async () => {
    const ptp = {
      cniVersion: '1.0.0',
      name: 'd-ptp-fabric',
      type: 'ptp',
      ipam: { type: 'host-local', dataDir: world.tmpDir('ipam'), ranges: [[{ subnet: '10.244.0.0/16', rangeStart: '10.244.1.50', rangeEnd: '10.244.1.60' }]] },
    };
    await addDoctorPod(n1.ns, ptp, 'ptpf');
    const ptpFile = writeConflist(world.tmpDir('conf'), ptp);
    const healthy = await doctor(n1.ns, ptpFile, '--fabric', file);
    expect(healthy.lines).toEqual([expect.stringMatching(/^ptp network d-ptp-fabric: node and 1 pod\(s\) checked: all as planned$/)]);
    expect(healthy.exitCode).toBe(0);
    await n1.ns.ip(['route', 'del', '10.244.2.0/24', 'proto', String(RTPROT_TSCNI)]);
    const r = await doctor(n1.ns, ptpFile, '--fabric', file);
    expect(r.lines).toEqual([
      'node: route 10.244.2.0/24 via 192.168.50.2 dev eth0 missing (peer node2 192.168.50.2)',
      expect.stringMatching(/: 1 problem\(s\)$/),
    ]);
    expect(r.exitCode).toBe(1);
    // without --fabric only the ptp pods are checked
    expect((await doctor(n1.ns, ptpFile)).exitCode).toBe(0);
    expect((await tscni(n1.ns, ['fabric', 'sync', '--conf', file])).exitCode).toBe(0);
  });
});

describe('per-call log', () => {
  it('ADD, CHECK, DEL and a failing ADD each append one line; stdout stays the CNI JSON alone', async () => {
    const node = await world.node('log');
    const logFile = path.join(world.tmpDir('log'), 'tscni.log');
    const conf = {
      cniVersion: '1.0.0',
      name: 'lognet',
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      ipam: { type: 'host-local', subnet: '10.24.0.0/24', dataDir: world.tmpDir('ipam') },
      log: { file: logFile, level: 'info' },
    };
    const ns = await world.pod('log-p');
    const id = world.containerId('log');
    const add = await world.cni(node, { command: 'ADD', containerId: id, netns: ns, config: conf });
    expect(add.exitCode).toBe(0);
    expect(add.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(add.stdout).ips[0].address).toBe('10.24.0.2/24');
    const check = await world.cni(node, { command: 'CHECK', containerId: id, netns: ns, config: { ...conf, prevResult: add.json } });
    expect({ exit: check.exitCode, stdout: check.stdout }).toEqual({ exit: 0, stdout: '' });
    const del = await world.cni(node, { command: 'DEL', containerId: id, netns: ns, config: conf });
    expect(del.exitCode).toBe(0);
    expect(del.stdout).toBe('');
    const bad = await world.cni(node, { command: 'ADD', containerId: world.containerId('gone'), netns: '/var/run/netns/tscni-t-no-such-ns', config: conf });
    expect(bad.exitCode).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 3 });
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(new RegExp(`^\\S+Z bridge ADD id=${id} netns=${esc(ns.path)} if=eth0 result=ok ips=10\\.24\\.0\\.2/24 ms=\\d+\\.\\d$`));
    expect(lines[1]).toMatch(new RegExp(`^\\S+Z bridge CHECK id=${id} netns=${esc(ns.path)} if=eth0 result=ok ms=`));
    expect(lines[2]).toMatch(new RegExp(`^\\S+Z bridge DEL id=${id} netns=${esc(ns.path)} if=eth0 result=ok ms=`));
    expect(lines[3]).toMatch(
      /^\S+Z bridge ADD id=\S+ netns=\/var\/run\/netns\/tscni-t-no-such-ns if=eth0 result=error code=3 msg="netns \/var\/run\/netns\/tscni-t-no-such-ns does not exist" ms=/,
    );
  });

  it('level debug adds one line per kernel op before the call line', async () => {
    const node = await world.node('logdbg');
    const logFile = path.join(world.tmpDir('log'), 'tscni.log');
    const conf = {
      cniVersion: '1.0.0',
      name: 'lognet',
      type: 'ptp',
      ipam: { type: 'host-local', subnet: '10.25.0.0/24', dataDir: world.tmpDir('ipam') },
      log: { file: logFile, level: 'debug' },
    };
    const ns = await world.pod('logdbg-p');
    const id = world.containerId('dbg');
    const add = await world.cni(node, { command: 'ADD', containerId: id, netns: ns, config: conf });
    expect(add.exitCode).toBe(0);
    JSON.parse(add.stdout);
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n');
    // each kernel op in ip's words (in process, over netlink), where it ran, and how long it took
    const ops = lines.filter((l) => / op=/.test(l));
    expect(ops.length).toBeGreaterThanOrEqual(5);
    for (const l of ops) expect(l).toMatch(new RegExp(`^\\S+Z ptp ADD id=${id} op="(ip|bridge|sysctl) [^"]+"( netns=\\S+)? result=ok ms=\\d+\\.\\d$`));
    expect(ops.some((l) => l.includes('op="ip link add name ptp') && l.includes('type veth'))).toBe(true);
    expect(ops.some((l) => l.includes(`netns=${ns.path}`) && l.includes('op="ip route replace 169.254.1.1/32 dev eth0 scope link'))).toBe(true);
    expect(lines[lines.length - 1]).toMatch(/ ptp ADD id=\S+ netns=\S+ if=eth0 result=ok ips=10\.25\.0\.2\/32 ms=/);
  });
});
