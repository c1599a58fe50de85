// Dataplane figure of issue 4: pod-to-pod TCP throughput (iperf3, 1 and 4 streams) and ping RTT for bridge,
// ptp, host-gw and vxlan, each wired (a) by our installed plugins and (b) by hand with iproute2, side by side.
// Run through bench/dataplane.sh (bundles this file with esbuild). Everything lives in tscni-t-* namespaces of
// one World, deleted at the end, on error and on SIGINT/SIGTERM/SIGHUP.
// Env: BENCH_SECS (iperf3 -t, default 2), BENCH_REPS (default 6), BENCH_MODES (e.g. "bridge,vxlan"),
// BENCH_JSON (write the results there), BENCH_HOLD (seconds to keep the wired worlds up before measuring), TSCNI_BIN_DIR (default build/bin), TSCNI_BENCH_STATE (see dataplane.sh).
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../pkg/exec';
import { buildCluster, type Cluster, type ClusterNode } from '../e2e/lib/cluster';
import { CLEAN_PATH, World, defaultBinDir, ipJson, sweepStale, type Netns } from '../e2e/lib/world';

const SECS = Number(process.env.BENCH_SECS ?? 2);
// even, so ours and hand-built go first equally often
const REPS = Number(process.env.BENCH_REPS ?? 6);
const STREAMS = [1, 4];
const TARGET = 0.97;
/** RECIPES.md: differences under 10-15% are noise on this machine */
const NOISE = 0.12;
const PORT = 5201;
/** underlay of the simulated cluster: 1500 as in RECIPES' baseline ("host-gw, pods at 1500") */
const UNDERLAY_MTU = 1500;
const ENV = { PATH: CLEAN_PATH };
/** the checkout (the bundle runs from a temp dir, so not __dirname) */
const ROOT = process.env.TSCNI_REPO ?? process.cwd();

type SideName = 'ours' | 'hand';

/** One wired topology: traffic goes client pod -> server pod. */
interface Built {
  client: Netns;
  server: Netns;
  serverIp: string;
  /** node namespaces whose state is reported (sysctls, veths, NAT, conntrack) */
  nodes: Netns[];
  /** the pods' MTU */
  mtu: number;
  /** what this side was made of, one line */
  how: string;
}

interface Mode {
  name: string;
  ours(w: World): Promise<Built>;
  /** built after ours, with ours' pod MTU so both sides match */
  hand(w: World, mtu: number): Promise<Built>;
}

const world = new World();
const state = process.env.TSCNI_BENCH_STATE;
const note = (line: string) => state && fs.appendFileSync(state, line + '\n');
note(`prefix ${world.prefix}`);

// ---------- our plugins, from the shipped example conflists ----------

/** The first plugin of conf/<file> as a single-plugin config, with a private IPAM dataDir. */
function example(file: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const list = JSON.parse(fs.readFileSync(path.join(ROOT, 'conf', file), 'utf8'));
  const p = list.plugins[0];
  return { cniVersion: list.cniVersion, name: list.name, ...p, ...extra, ipam: { ...p.ipam, dataDir: world.tmpDir('ipam') } };
}

async function ourPod(node: Netns, conf: Record<string, unknown>, label: string): Promise<{ ns: Netns; ip: string; mtu: number }> {
  const ns = await world.pod(label, { lo: true });
  const r = await world.cni(node, { command: 'ADD', containerId: world.containerId(label), netns: ns, config: conf });
  if (r.exitCode !== 0) throw new Error(`${conf.type} ADD ${label}: ${r.stdout}${r.stderr}`);
  const v4 = (r.json.ips as { address: string }[]).find((x) => !x.address.includes(':'))!;
  const link = await ns.ipJson<{ mtu: number }[]>(['link', 'show', 'eth0']);
  return { ns, ip: v4.address.split('/')[0], mtu: link[0].mtu };
}

async function ourSameNode(w: World, tag: string, conf: Record<string, unknown>): Promise<Built> {
  const node = await w.node(`${tag}-o`);
  const srv = await ourPod(node, conf, `${tag}-o-srv`);
  const cli = await ourPod(node, conf, `${tag}-o-cli`);
  return { client: cli.ns, server: srv.ns, serverIp: srv.ip, nodes: [node], mtu: cli.mtu, how: `${conf.type} plugin, conf/ example keys` };
}

async function ourFabric(type: 'host-gw' | 'vxlan', file: string, to: string): Promise<Built> {
  const c = await buildCluster(world, { tag: `${type === 'vxlan' ? 'vx' : 'hg'}-o`, mtu: UNDERLAY_MTU });
  // host-gw only spans one L2 segment: node3 is left out of its peer set, as an operator would
  if (type === 'host-gw') c.writePeers([c.node('node1'), c.node('node2')]);
  const conf = (n: ClusterNode) => example(file, { nodeIP: n.ip, podCIDR: n.podCIDR, peersFile: c.peersFile });
  const n1 = c.node('node1');
  const nt = c.node(to);
  const cli = await ourPod(n1.ns, conf(n1), `${type}-o-cli`);
  const srv = await ourPod(nt.ns, conf(nt), `${type}-o-srv`);
  return { client: cli.ns, server: srv.ns, serverIp: srv.ip, nodes: [n1.ns, nt.ns], mtu: cli.mtu, how: `${type} plugin, conf/${file} keys` };
}

// ---------- the same topologies by hand (RECIPES "Dataplane baseline", seeds 001/002) ----------

async function batch(ns: Netns, lines: string[]): Promise<void> {
  await ns.ip(['-batch', '-'], { input: lines.join('\n') + '\n' });
}

async function sysctl(ns: Netns, kv: string[]): Promise<void> {
  await ns.exec(['sysctl', '-q', '-w', ...kv], { env: ENV });
}

/** The masquerade ours installs, as one plain rule in an inet table as ours: same nat hook, so conntrack runs on both sides. */
async function handMasq(node: Netns, podNet: string, keep: string): Promise<void> {
  const rules = `table inet hand {\n chain post {\n  type nat hook postrouting priority srcnat;\n  ip saddr ${podNet} ip daddr != ${keep} masquerade\n }\n}\n`;
  await node.exec(['nft', '-f', '-'], { input: rules, env: ENV });
}

let handVeths = 0;

/** A veth vh<N> from the node into a fresh pod; the pod end gets `addr` and `podCmds`. */
async function handVeth(node: Netns, label: string, mtu: number, nodeCmds: (dev: string) => string[], addr: string, podCmds: string[]): Promise<Netns> {
  const pod = await world.pod(label, { lo: true });
  const dev = `vh${++handVeths}`;
  await batch(node, [`link add ${dev} mtu ${mtu} type veth peer name eth0 mtu ${mtu} netns ${pod.name}`, `link set ${dev} up`, ...nodeCmds(dev)]);
  await batch(pod, [`addr add ${addr} dev eth0`, 'link set eth0 up', ...podCmds]);
  return pod;
}

/** cni0 with the gateway address and `n` pods on it, each at gw+9+i. */
async function handBridge(node: Netns, tag: string, gwCidr: string, mtu: number, labels: string[]): Promise<{ pods: Netns[]; ips: string[] }> {
  const [gw, len] = gwCidr.split('/');
  await batch(node, ['link add cni0 type bridge', `addr add ${gwCidr} dev cni0`, 'link set cni0 up']);
  const base = gw.split('.').slice(0, 3).join('.');
  const pods: Netns[] = [];
  const ips: string[] = [];
  for (const [i, l] of labels.entries()) {
    const ip = `${base}.${10 + i}`;
    pods.push(
      await handVeth(node, `${tag}-${l}`, mtu, (d) => [`link set ${d} master cni0`, `link set ${d} type bridge_slave hairpin on`], `${ip}/${len}`, [
        `route add default via ${gw}`,
      ]),
    );
    ips.push(ip);
  }
  return { pods, ips };
}

async function handBridgeNode(w: World, mtu: number): Promise<Built> {
  const node = await w.node('bridge-h');
  await sysctl(node, ['net.ipv4.ip_forward=1']);
  const { pods, ips } = await handBridge(node, 'bridge-h', '10.22.0.1/16', mtu, ['srv', 'cli']);
  await handMasq(node, '10.22.0.0/16', '10.22.0.0/16');
  return { client: pods[1], server: pods[0], serverIp: ips[0], nodes: [node], mtu, how: 'iproute2: cni0 + veth (hairpin), nft masquerade rule' };
}

async function handPtpNode(w: World, mtu: number): Promise<Built> {
  const node = await w.node('ptp-h');
  await sysctl(node, ['net.ipv4.ip_forward=1']);
  const mk = async (label: string, ip: string) =>
    handVeth(
      node,
      `ptp-h-${label}`,
      mtu,
      (d) => [`link set ${d} address ee:ee:ee:ee:ee:ee`, `route add ${ip}/32 dev ${d} scope link`],
      `${ip}/32`,
      // the permanent neighbour stands in for a proxy-ARP reply (the node has no other interface to route 169.254.1.1 to)
      [
        'route add 169.254.1.1 dev eth0 scope link',
        'route add default via 169.254.1.1 dev eth0',
        'neigh replace 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent',
      ],
    );
  const srv = await mk('srv', '10.24.0.10');
  const cli = await mk('cli', '10.24.0.11');
  for (const d of [`vh${handVeths - 1}`, `vh${handVeths}`]) await sysctl(node, [`net.ipv4.conf.${d}.proxy_arp=1`, `net.ipv4.neigh.${d}.proxy_delay=0`]);
  await handMasq(node, '10.24.0.0/16', '10.24.0.0/16');
  return {
    client: cli,
    server: srv,
    serverIp: '10.24.0.10',
    nodes: [node],
    mtu,
    how: 'iproute2: /32 pods, 169.254.1.1 via ee:ee:.. neighbour, proxy_arp, nft masquerade rule',
  };
}

const vtepMac = (n: ClusterNode) => `0e:00:00:00:00:${n.ip.split('.')[3].padStart(2, '0')}`;
const podGw = (n: ClusterNode) => n.podCIDR.replace(/0\/24$/, '1');
const podNet = (n: ClusterNode) => n.podCIDR.split('/')[0];
const sameSubnet = (a: ClusterNode, b: ClusterNode) => a.ip.split('.').slice(0, 3).join('.') === b.ip.split('.').slice(0, 3).join('.');

/** Seed 002's host-gw / vxlan by hand on a cluster like ours: cni0 per node, routes (and VTEP, neigh, FDB) per peer. */
async function handFabric(type: 'host-gw' | 'vxlan', to: string, mtu: number): Promise<Built> {
  const c: Cluster = await buildCluster(world, { tag: `${type === 'vxlan' ? 'vx' : 'hg'}-h`, mtu: UNDERLAY_MTU });
  const members = type === 'host-gw' ? [c.node('node1'), c.node('node2')] : c.nodes;
  const pods: Record<string, { ns: Netns; ip: string }> = {};
  for (const n of members) {
    await sysctl(n.ns, ['net.ipv4.ip_forward=1']);
    const lines: string[] = [];
    if (type === 'vxlan') {
      lines.push(
        `link add vx0 type vxlan id 1 dstport 8472 local ${n.ip} dev eth0 nolearning`,
        `link set vx0 address ${vtepMac(n)} mtu ${UNDERLAY_MTU - 50}`,
        `addr add ${podNet(n)}/32 dev vx0`,
        'link set vx0 up',
      );
    }
    for (const p of members.filter((m) => m !== n)) {
      // as our example's directRouting: same-subnet peers direct, the others through the VTEP
      if (sameSubnet(n, p)) lines.push(`route add ${p.podCIDR} via ${p.ip} dev eth0`);
      else lines.push(`route add ${p.podCIDR} via ${podNet(p)} dev vx0 onlink`, `neigh add ${podNet(p)} lladdr ${vtepMac(p)} dev vx0 nud permanent`);
    }
    await batch(n.ns, lines);
    if (type === 'vxlan') {
      for (const p of members.filter((m) => m !== n && !sameSubnet(n, m))) {
        await run('bridge', ['-n', n.ns.name, 'fdb', 'append', vtepMac(p), 'dev', 'vx0', 'dst', p.ip]);
      }
      // ours sets the VTEP loose too
      await sysctl(n.ns, ['net.ipv4.conf.vx0.rp_filter=2']);
    }
    const b = await handBridge(n.ns, `${type}-h-${n.name}`, `${podGw(n)}/24`, mtu, ['pod']);
    pods[n.name] = { ns: b.pods[0], ip: b.ips[0] };
    await handMasq(n.ns, n.podCIDR, c.clusterCIDR);
  }
  const how =
    type === 'vxlan'
      ? 'iproute2: cni0, VTEP vx0 (id 1, 8472, nolearning, underlay-50) + route/neigh/fdb per peer, nft masquerade rule'
      : 'iproute2: cni0, route per peer via its node IP, nft masquerade rule';
  return { client: pods.node1.ns, server: pods[to].ns, serverIp: pods[to].ip, nodes: [c.node('node1').ns, c.node(to).ns], mtu, how };
}

const MODES: Mode[] = [
  { name: 'bridge', ours: (w) => ourSameNode(w, 'bridge', example('10-tscni-bridge.conflist')), hand: handBridgeNode },
  { name: 'ptp', ours: (w) => ourSameNode(w, 'ptp', example('30-tscni-ptp.conflist')), hand: handPtpNode },
  { name: 'host-gw', ours: () => ourFabric('host-gw', '40-tscni-host-gw.conflist', 'node2'), hand: (_w, mtu) => handFabric('host-gw', 'node2', mtu) },
  { name: 'vxlan', ours: () => ourFabric('vxlan', '50-tscni-vxlan.conflist', 'node3'), hand: (_w, mtu) => handFabric('vxlan', 'node3', mtu) },
];
const LABEL: Record<string, string> = {
  bridge: 'bridge, same node',
  ptp: 'ptp (Calico-style), same node',
  'host-gw': 'host-gw, node1->node2',
  vxlan: 'vxlan, node1->node3 via router',
};

// ---------- measuring ----------

async function startServer(b: Built, tag: string): Promise<void> {
  const pidFile = path.join(world.tmpDir('iperf'), `${tag}.pid`);
  note(`pidfile ${pidFile}`);
  await b.server.exec(['iperf3', '-s', '-D', '-p', String(PORT), '--pidfile', pidFile], { env: ENV });
  world.onCleanup(() => {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    if (pid > 0) process.kill(pid, 'SIGTERM');
  });
}

interface Sample {
  gbps: number;
  retransmits: number;
}

async function iperf(b: Built, streams: number): Promise<Sample> {
  for (let attempt = 0; ; attempt++) {
    const r = await b.client.exec(['iperf3', '-c', b.serverIp, '-p', String(PORT), '-t', String(SECS), '-P', String(streams), '-J'], {
      allowFailure: true,
      timeout: (SECS + 20) * 1000,
      env: ENV,
    });
    let j: any;
    try {
      j = JSON.parse(r.stdout);
    } catch {
      j = { error: r.stderr.trim() || r.stdout.slice(0, 200) };
    }
    if (r.exitCode === 0 && !j.error) {
      return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent.retransmits ?? 0 };
    }
    // the daemonised server may not listen yet, or still be closing the previous test
    if (attempt >= 20) throw new Error(`iperf3 -> ${b.serverIp}: ${j.error}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** Mean RTT in microseconds of 20 echoes 10 ms apart. */
async function rtt(b: Built): Promise<number> {
  const r = await b.client.exec(['ping', '-n', '-q', '-c', '20', '-i', '0.01', '-W', '1', b.serverIp], { allowFailure: true, env: ENV });
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  if (r.exitCode !== 0 || !m) throw new Error(`ping ${b.serverIp}: ${r.stdout}${r.stderr}`);
  return Number(m[1]) * 1000;
}

/** What each side has, for the fairness line: MTU, queue lengths, GSO, NAT, conntrack, rp_filter, forwarding. */
async function describe(b: Built): Promise<Record<string, string>> {
  const uniq = (xs: unknown[]) => [...new Set(xs.map(String))].join('/') || '-';
  const pod = (await ipJson<any[]>(b.client, ['-d', 'link', 'show', 'eth0']))[0];
  const veths: any[] = [];
  const vteps: any[] = [];
  let masq = 0;
  const hooks: string[] = [];
  const ct: string[] = [];
  const rp: string[] = [];
  const fwd: string[] = [];
  for (const n of b.nodes) {
    veths.push(...(await ipJson<any[]>(n, ['-d', 'link', 'show', 'type', 'veth'])).filter((l) => l.ifname !== 'eth0'));
    const own = await ipJson<any[]>(n, ['-d', 'link', 'show', 'type', 'vxlan']);
    vteps.push(...own);
    const rules = (await n.exec(['nft', 'list', 'ruleset'], { env: ENV })).stdout.split('\n').map((l) => l.trim());
    hooks.push(...rules.flatMap((l) => /^type (\w+) hook (\w+)/.exec(l)?.slice(1, 3).join(' ') ?? []));
    masq += rules.filter((l) => /^ip .* masquerade$/.test(l)).length;
    ct.push(await n.sysctl('net.netfilter.nf_conntrack_count'));
    rp.push(await n.sysctl('net.ipv4.conf.all.rp_filter'));
    fwd.push(await n.sysctl('net.ipv4.ip_forward'));
    for (const v of own) rp.push(`vtep:${await n.sysctl(`net/ipv4/conf/${v.ifname}/rp_filter`).catch(() => '?')}`);
  }
  return {
    'pod mtu/qlen/gso': `${pod.mtu}/${pod.txqlen}/${pod.gso_max_size}`,
    'node veth mtu/qlen/gso': `${uniq(veths.map((l) => l.mtu))}/${uniq(veths.map((l) => l.txqlen))}/${uniq(veths.map((l) => l.gso_max_size))}`,
    vtep: vteps.length
      ? `mtu ${uniq(vteps.map((l) => l.mtu))} qlen ${uniq(vteps.map((l) => l.txqlen))} port ${uniq(vteps.map((l) => l.linkinfo?.info_data?.port))}`
      : '-',
    'nft base chains': uniq(hooks.sort()),
    'IPv4 masquerade rules': String(masq),
    'conntrack entries': ct.join('/'),
    rp_filter: uniq(rp),
    ip_forward: uniq(fwd),
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f2 = (x: number) => x.toFixed(2);

interface Row {
  mode: string;
  streams: number;
  ours: number[];
  hand: number[];
  oursRetr: number[];
  handRetr: number[];
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  const bin = defaultBinDir();
  if (!fs.existsSync(path.join(bin, 'tscni'))) throw new Error(`${bin}/tscni missing: run 'make build' first`);
  await sweepStale();
  const only = process.env.BENCH_MODES?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const modes = MODES.filter((m) => !only || only.includes(m.name));
  const t0 = Date.now();
  const built: Record<string, Record<SideName, Built>> = {};
  for (const m of modes) {
    const ours = await m.ours(world);
    const hand = await m.hand(world, ours.mtu);
    built[m.name] = { ours, hand };
    await startServer(ours, `${m.name}-ours`);
    await startServer(hand, `${m.name}-hand`);
  }
  if (process.env.BENCH_HOLD) {
    // keep the worlds up for a look with `ip netns exec` (Ctrl-C still cleans up)
    process.stdout.write(`dataplane: holding ${world.prefix}-* for ${process.env.BENCH_HOLD} s\n`);
    await new Promise((res) => setTimeout(res, Number(process.env.BENCH_HOLD) * 1000));
  }
  process.stdout.write(
    `dataplane: ${modes.length} modes wired in ${((Date.now() - t0) / 1000).toFixed(1)} s; iperf3 -t ${SECS}, ${REPS} rounds, ours and hand-built interleaved\n`,
  );

  const rows: Row[] = [];
  const rtts: Record<string, Record<SideName, number[]>> = {};
  for (const m of modes) {
    rtts[m.name] = { ours: [], hand: [] };
    for (const s of STREAMS) rows.push({ mode: m.name, streams: s, ours: [], hand: [], oursRetr: [], handRetr: [] });
  }
  for (let rep = 0; rep < REPS; rep++) {
    // alternate who goes first, so a drift in machine load hits both sides alike
    const order: SideName[] = rep % 2 ? ['hand', 'ours'] : ['ours', 'hand'];
    for (const m of modes) {
      for (const side of order) rtts[m.name][side].push(await rtt(built[m.name][side]));
      for (const s of STREAMS) {
        const row = rows.find((r) => r.mode === m.name && r.streams === s)!;
        for (const side of order) {
          const x = await iperf(built[m.name][side], s);
          row[side].push(x.gbps);
          row[side === 'ours' ? 'oursRetr' : 'handRetr'].push(x.retransmits);
        }
      }
    }
    process.stdout.write(`  round ${rep + 1}/${REPS} done (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
  }

  process.stdout.write('\nWhat each side has (after the runs; conntrack entries > 0 means conntrack tracked the traffic):\n');
  for (const m of modes) {
    const o = await describe(built[m.name].ours);
    const h = await describe(built[m.name].hand);
    process.stdout.write(`  ${LABEL[m.name]}\n    ours: ${built[m.name].ours.how}\n    hand: ${built[m.name].hand.how}\n`);
    for (const k of Object.keys(o)) {
      const same = o[k] === h[k] || k === 'conntrack entries';
      process.stdout.write(`    ${(k + ':').padEnd(24)} ours ${o[k].padEnd(30)} hand ${h[k]}${same ? '' : '   <- differs'}\n`);
    }
  }

  const head = ['mode', 'streams', 'ours Gbit/s', 'hand Gbit/s', 'ratio', 'paired', `paired >=${TARGET}x`, 'RTT ours', 'RTT hand', 'retr ours/hand'];
  const table: string[][] = rows.map((r) => {
    const o = median(r.ours);
    const h = median(r.hand);
    const ratio = h > 0 ? o / h : 0;
    // each round's ours/hand pair ran back to back: their ratio cancels slower drifts in machine load
    const paired = median(r.ours.map((x, i) => (r.hand[i] > 0 ? x / r.hand[i] : 0)));
    // judged on the paired ratio: other tenants' load makes single figures bimodal (4 streams: ~14 or ~30 Gbit/s
    // by whether both vCPUs are free), which moves a plain median by 20% while back-to-back pairs agree
    const verdict = paired >= TARGET ? 'ok' : paired >= 1 - NOISE ? 'below, within noise' : 'BELOW';
    return [
      LABEL[r.mode],
      String(r.streams),
      f2(o),
      f2(h),
      `${f2(ratio)}x`,
      `${f2(paired)}x`,
      verdict,
      `${median(rtts[r.mode].ours).toFixed(0)} us`,
      `${median(rtts[r.mode].hand).toFixed(0)} us`,
      `${Math.round(median(r.oursRetr))}/${Math.round(median(r.handRetr))}`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  const line = (cols: string[]) => '| ' + cols.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  process.stdout.write(`\nPod-to-pod TCP (iperf3 -t ${SECS}, median of ${REPS}), underlay MTU ${UNDERLAY_MTU}:\n`);
  process.stdout.write([line(head), line(widths.map((w) => '-'.repeat(w))), ...table.map(line)].join('\n') + '\n');
  process.stdout.write('\nEvery run (Gbit/s):\n');
  for (const r of rows) process.stdout.write(`  ${r.mode} x${r.streams}: ours ${r.ours.map(f2).join(' ')} | hand ${r.hand.map(f2).join(' ')}\n`);
  process.stdout.write(
    `ratio = median ours / median hand; paired = median of each round's ours/hand (back to back), which the target is judged on.\nDifferences under 10-15% are noise on this shared 2-core VM (RECIPES.md). Total ${((Date.now() - t0) / 1000).toFixed(0)} s.\n`,
  );
  if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify({ secs: SECS, reps: REPS, rows, rtts }, null, 2));
}

let exiting = false;
async function finish(code: number): Promise<never> {
  if (!exiting) {
    exiting = true;
    await world.cleanup().catch((e) => process.stderr.write(`cleanup: ${(e as Error).message}\n`));
  }
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`dataplane: ${sig}, cleaning up\n`);
    void finish(130);
  });
}
main().then(
  () => finish(0),
  (e) => {
    process.stderr.write(`dataplane: ${(e as Error).stack ?? e}\n`);
    return finish(1);
  },
);
