// Live IPIP: this machine's kernel may have no ipip module, so the whole cluster runs inside a guest kernel
// (e2e/lib/guest.ts: QEMU with Debian's kernel, or user-mode-linux, whichever boots here): nodes, router and pods
// are namespaces of the guest, our built `ipip` executable wires pods from inside a node
// (`ip netns exec nodeN env -i ... ipip`), and each check is one recorded step.
// Topology (seed 001): node1 and node2 on one L2 segment (a bridge in `lan`), node3 on another subnet behind
// `router`. Nodes start with forwarding off and rp_filter=1. Masquerade is off, so the scenario is the same on
// every backend: the UML kernel has neither NF_TABLES_INET nor a nat chain type (masquerade is tested on the
// host kernel by the other e2e files).
import * as fs from 'fs';
import * as path from 'path';
import { buildCnictl } from './lib/cnictl';
import { describeVerdict, guestVerdict, runInGuest, stepOf, type GuestRun } from './lib/guest';
import { defaultBinDir } from './lib/world';

// Chosen once per run by the e2e globalSetup, which boots a trivial guest on each backend in turn. Skipped only
// when none boots and none was forced (TSCNI_GUEST); a guest that booted there and fails here is a failure.
const verdict = guestVerdict();
const BIN = defaultBinDir();
if (verdict) console.log(`ipip e2e: ${describeVerdict(verdict)}`);
const skip = verdict !== undefined && !verdict.backend && !verdict.forced;
const describeGuest = skip ? describe.skip : describe;
// jest's limits: the guest's own, plus the time to parse what it left
const jestMs = (guestMs: number) => guestMs + 10_000;
/** pingp sends three echoes: two back is a working path (see pingp in the guest script) */
const TWO_OF_THREE = /\b[23] received/;
const KEEP = process.env.TSCNI_GUEST_KEEP === '1';

const NODES = {
  node1: { ip: '192.168.10.11', pod: '10.244.1.0/24' },
  node2: { ip: '192.168.10.12', pod: '10.244.2.0/24' },
  node3: { ip: '192.168.20.13', pod: '10.244.3.0/24' },
} as const;
type NodeName = keyof typeof NODES;
const UNDERLAY_MTU = 1500;
const TUNNEL_MTU = UNDERLAY_MTU - 20;
const DEV = 'tscni.ipip';
const PROTO = '252';

function peersFile(nodes: NodeName[]): string {
  return JSON.stringify(nodes.map((n) => ({ nodeIP: NODES[n].ip, podCIDR: NODES[n].pod })));
}

// The shipped example conflist's plugin, made into each node's config: the example's keys are what runs here.
const EXAMPLE = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'conf', '60-tscni-ipip.conflist'), 'utf8'));

function conf(scratch: string, node: NodeName, crossSubnet: boolean): string {
  const plugin = EXAMPLE.plugins.find((p: { type: string }) => p.type === 'ipip');
  return JSON.stringify({
    cniVersion: EXAMPLE.cniVersion,
    name: EXAMPLE.name,
    ...plugin,
    nodeIP: NODES[node].ip,
    podCIDR: NODES[node].pod,
    peersFile: path.join(scratch, 'peers.json'),
    crossSubnet,
    ipMasq: false,
    // host-local's range defaults to podCIDR; one store per node (the guest's nodes share one filesystem)
    ipam: { ...plugin.ipam, dataDir: `/run/tscni-ipam/${node}` },
  });
}

// TCP probe run by the guest's node (the one on the host's filesystem): `serve` prints the peer address of the
// first connection; `connect` retries until the server listens and prints the echo.
const TCP_JS = `
const net = require('net');
const [mode, a, b] = process.argv.slice(2);
if (mode === 'serve') {
  const srv = net.createServer((c) => {
    process.stdout.write(c.remoteAddress + '\\n');
    c.end('pong', () => process.exit(0));
  });
  srv.listen(Number(a), '0.0.0.0');
  setTimeout(() => process.exit(3), 40000).unref();
} else {
  // the server is a Node start away, which under TCG took more than 8 s once: keep trying for 30
  const end = Date.now() + 30000;
  const go = () => {
    const c = net.connect(Number(b), a);
    let got = '';
    c.on('data', (d) => (got += d));
    c.on('end', () => { process.stdout.write(got + '\\n'); process.exit(got === 'pong' ? 0 : 1); });
    c.on('error', () => (Date.now() < end ? setTimeout(go, 100) : process.exit(2)));
  };
  go();
}
`;

/** The scenario, in sh, run inside the guest. Paths are the host's: the guest sees the same tree. */
function scenario(scratch: string, cnictl: string): string {
  const S = scratch;
  const nodeSetup = (Object.keys(NODES) as NodeName[])
    .map((n) => `ip netns exec ${n} sysctl -qw net.ipv4.ip_forward=0 net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1`)
    .join('\n');
  return `
B=${BIN}
CNICTL=${cnictl}
S=${S}

for ns in lan router node1 node2 node3 pod1 pod1b pod1c pod2 pod3; do ip netns add $ns; done
# the L2 segment of node1, node2 and the router
ip -n lan link add br0 type bridge && ip -n lan link set br0 up
for n in node1 node2 router; do
  ip -n lan link add lan-$n type veth peer name eth0 netns $n
  ip -n lan link set lan-$n master br0 up
done
ip -n router link add eth1 type veth peer name eth0 netns node3
${nodeSetup}
ip netns exec router sysctl -qw net.ipv4.ip_forward=1
ip -n node1 addr add ${NODES.node1.ip}/24 dev eth0
ip -n node2 addr add ${NODES.node2.ip}/24 dev eth0
ip -n router addr add 192.168.10.1/24 dev eth0
ip -n router addr add 192.168.20.1/24 dev eth1
ip -n node3 addr add ${NODES.node3.ip}/24 dev eth0
for ns in router node1 node2 node3 pod1 pod1b pod2 pod3; do ip -n $ns link set lo up; done
for l in router:eth0 router:eth1 node1:eth0 node2:eth0 node3:eth0; do ip -n \${l%%:*} link set \${l#*:} up; done
ip -n node1 route add default via 192.168.10.1
ip -n node2 route add default via 192.168.10.1
ip -n node3 route add default via 192.168.20.1

cni() { # verb node pod conf
  ip netns exec "$2" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \${TRACE:+TSCNI_TRACE=1} CNI_COMMAND="$1" CNI_CONTAINERID="c-$3" \\
    CNI_NETNS="/run/netns/$3" CNI_IFNAME=eth0 CNI_PATH="$B" "$B/ipip" < "$4"
}
add() { cni ADD "$1" "$2" "$3" > "$S/res.$2"; _rc=$?; cat "$S/res.$2"; return $_rc; }
check() { # node pod conf: CHECK with the ADD result as prevResult
  _c=$(cat "$3"); printf '%s,"prevResult":%s}' "\${_c%\\}}" "$(cat "$S/res.$2")" > "$S/check.$2"
  cni CHECK "$1" "$2" "$S/check.$2"
}
podip() { ip -n "$1" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1; }
# three echoes, of which two must come back: under TCG the guest may lose the first one to its own slowness
pingp() { ip netns exec "$1" ping -c 3 -i 0.2 -W 2 "$2"; }
txp() { ip netns exec "$1" cat /sys/class/net/${DEV}/statistics/tx_packets; }
tcpp() { # from to: server in "to", client in "from"; notes what the server saw as the client address
  ip netns exec "$2" node "$S/tcp.js" serve 7000 > "$S/seen.$1.$2" 2>&1 &
  _p=$!
  ip netns exec "$1" node "$S/tcp.js" connect "$(podip "$2")" 7000; _rc=$?
  wait $_p
  note "seen.$1.$2" "$(cat "$S/seen.$1.$2")"
  return $_rc
}
spawns() { # node pod conf: ADD, CHECK and DEL with TSCNI_TRACE=1; prints the spawn lines of the three calls
  TRACE=1 add "$1" "$2" "$3" >/dev/null 2>"$S/trace.add" && TRACE=1 check "$1" "$2" "$3" 2>"$S/trace.check" &&
    TRACE=1 cni DEL "$1" "$2" "$3" 2>"$S/trace.del" || return 1
  cat "$S/trace.add" "$S/trace.check" "$S/trace.del" | grep ' spawn ' || true
}
fsync() { ip netns exec "$1" "$B/tscni" fabric sync --conf "$S/$1.$2.conf"; }
lc() { # cmd node pod: through libcni (cnictl), as containerd and podman call plugins
  ip netns exec "$2" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NETCONFPATH="$S/netconf" CNI_PATH="$B" CNI_IFNAME=eth0 \
    CNI_CONTAINERID="c-$3" CNI_CACHE_DIR=/run/cnicache "$CNICTL" "$1" tscni-ipip "/run/netns/$3"
}

# ---- phase A: every peer through the tunnel
step add-pod1 add node1 pod1 $S/node1.tunnel.conf
step add-pod1b lc add node1 pod1b
step add-pod2 add node2 pod2 $S/node2.tunnel.conf
step add-pod3 add node3 pod3 $S/node3.tunnel.conf
for p in pod1 pod1b pod2 pod3; do note ip.$p "$(podip $p)"; done
note A.forwarding.node1 "$(ip netns exec node1 sysctl -n net.ipv4.ip_forward)"
note A.rpfilter.node1 "$(ip netns exec node1 sysctl -n net.ipv4.conf.all.rp_filter)"
step A.link ip -n node1 -d -j link show ${DEV}
step A.addr ip -n node1 -j addr show dev ${DEV}
step A.routes.node1 ip -n node1 -j route show proto ${PROTO}
step A.podmtu ip -n pod1 -j link show eth0
step A.check-pod1 check node1 pod1 $S/node1.tunnel.conf
step A.spawns spawns node1 pod1c $S/node1.tunnel.conf
step A.lc-check-pod1b lc check node1 pod1b
t0=$(txp node1)
step A.ping.1-2 pingp pod1 $(podip pod2)
t1=$(txp node1)
step A.ping.1-3 pingp pod1 $(podip pod3)
t2=$(txp node1)
note A.tx.1-2 $((t1 - t0))
note A.tx.1-3 $((t2 - t1))
step A.ping.3-2 pingp pod3 $(podip pod2)
step A.ping.2-3 pingp pod2 $(podip pod3)
step A.ping.1-1b pingp pod1 $(podip pod1b)
step A.tcp.1-3 tcpp pod1 pod3
step A.tcp.3-1 tcpp pod3 pod1
step A.tcp.2-1 tcpp pod2 pod1
step A.mtu.fits ip netns exec pod1 ping -c 1 -W 2 -M do -s $((${TUNNEL_MTU} - 28)) $(podip pod3)
step A.mtu.over ip netns exec pod1 ping -c 1 -W 2 -M do -s $((${TUNNEL_MTU} - 27)) $(podip pod3)

# CHECK sees a lost route; a sync puts it back
ip -n node1 route del ${NODES.node3.pod} proto ${PROTO}
step A.check-broken check node1 pod1 $S/node1.tunnel.conf
step A.sync-repair fsync node1 tunnel
step A.check-repaired check node1 pod1 $S/node1.tunnel.conf

# a peer leaves the peers file: sync removes exactly its route; it comes back with the file
cp $S/peers.json $S/peers.full.json
cp $S/peers.no3.json $S/peers.json
step A.sync-remove fsync node1 tunnel
step A.routes.after-remove ip -n node1 -j route show proto ${PROTO}
step A.ping.after-remove ip netns exec pod1 ping -c 1 -W 1 $(podip pod3)
step A.routes.node2-untouched ip -n node2 -j route show proto ${PROTO}
cp $S/peers.full.json $S/peers.json
step A.sync-readd fsync node1 tunnel
step A.ping.after-readd pingp pod1 $(podip pod3)

# ---- phase B: crossSubnet, applied by sync on every node (node3 has no on-link peer: unchanged)
for n in node1 node2 node3; do step B.sync.$n fsync $n cross; done
step B.routes.node1 ip -n node1 -j route show proto ${PROTO}
step B.routes.node3 ip -n node3 -j route show proto ${PROTO}
step B.check-pod1 check node1 pod1 $S/node1.cross.conf
t0=$(txp node1)
step B.ping.1-2 pingp pod1 $(podip pod2)
t1=$(txp node1)
step B.ping.1-3 pingp pod1 $(podip pod3)
t2=$(txp node1)
note B.tx.1-2 $((t1 - t0))
note B.tx.1-3 $((t2 - t1))
step B.ping.2-1 pingp pod2 $(podip pod1)
step B.ping.3-1 pingp pod3 $(podip pod1)
step B.tcp.2-1 tcpp pod2 pod1
step B.tcp.1-3 tcpp pod1 pod3
step B.tcp.3-2 tcpp pod3 pod2

# ---- DEL: the pods go, their veths with them; the fabric stays for the node's next pod
# pod1b through libcni: CHECK (cached result as prevResult) fails once its default route is gone; then its netns
# goes first, as after a crash, and DEL twice must succeed and release its address
ip -n pod1b route del default
step D.lc-check-broken lc check node1 pod1b
note D.pod1b.files.before "$(grep -rl '^c-pod1b' /run/tscni-ipam/node1 | wc -l)"
ip netns del pod1b
step del-pod1b lc del node1 pod1b
step del-pod1b-again lc del node1 pod1b
note D.pod1b.files "$(grep -rl '^c-pod1b' /run/tscni-ipam/node1 | wc -l)"
note D.pod1b.cache "$(ls /run/cnicache/results | grep -c pod1b)"
step del-pod1 cni DEL node1 pod1 $S/node1.cross.conf
step del-pod1-again cni DEL node1 pod1 $S/node1.cross.conf
step del-pod2 cni DEL node2 pod2 $S/node2.cross.conf
step del-pod3 cni DEL node3 pod3 $S/node3.cross.conf
step D.veths.node1 ip -n node1 -o link show type veth
step D.veths.node3 ip -n node3 -o link show type veth
step D.pod1-eth0 ip -n pod1 -o link show eth0
step D.fabric.node1 ip -n node1 -j route show proto ${PROTO}
step D.link.node1 ip -n node1 -j link show ${DEV}
`;
}

function json<T = any>(r: GuestRun, step: string): T {
  const s = stepOf(r, step);
  expect({ step, rc: s.rc, out: s.out }).toMatchObject({ rc: 0 });
  return JSON.parse(s.out) as T;
}

function ok(r: GuestRun, step: string): string {
  const s = stepOf(r, step);
  // the whole record in the assertion, so a failure shows the step's output
  expect({ step, rc: s.rc, out: s.out }).toMatchObject({ step, rc: 0 });
  return s.out;
}

function fails(r: GuestRun, step: string): string {
  const s = stepOf(r, step);
  expect({ step, rc: s.rc, out: s.out }).not.toMatchObject({ rc: 0 });
  return s.out;
}

interface JRoute {
  dst: string;
  gateway?: string;
  dev: string;
  flags?: string[];
}

const routeOf = (routes: JRoute[], dst: string) => routes.find((x) => x.dst === dst);

describeGuest('harness: raw IPIP between two namespaces of a guest', () => {
  it(
    'boots, loads ipip and pings through a hand-made tunnel',
    async () => {
      const r = await runInGuest({
        modules: ['ipip', 'veth'],
        timeoutMs: 120_000,
        script: `
ip netns add a; ip netns add b
ip link add va netns a type veth peer name vb netns b
ip -n a addr add 192.168.1.1/24 dev va; ip -n a link set va up
ip -n b addr add 192.168.1.2/24 dev vb; ip -n b link set vb up
step tun-a ip -n a link add name tun type ipip local 192.168.1.1
step tun-b ip -n b link add name tun type ipip local 192.168.1.2
ip -n a link set tun up; ip -n b link set tun up
ip -n a addr add 10.1.0.0/32 dev tun; ip -n b addr add 10.2.0.0/32 dev tun
ip -n a route add 10.2.0.0/24 via 192.168.1.2 dev tun onlink
ip -n b route add 10.1.0.0/24 via 192.168.1.1 dev tun onlink
step ping ip netns exec a ping -c 2 -i 0.2 -W 2 -I 10.1.0.0 10.2.0.0
step no-route ip netns exec a ping -c 1 -W 1 -I 10.1.0.0 10.3.0.0
`,
      });
      console.log(`guest harness (${r.backend}): boot ${r.bootMs} ms, whole run ${r.totalMs} ms`);
      expect(r.completed).toBe(true);
      ok(r, 'tun-a');
      ok(r, 'tun-b');
      expect(ok(r, 'ping')).toMatch(/2 received/);
      fails(r, 'no-route');
      expect(fs.existsSync(r.scratch)).toBe(false);
    },
    jestMs(120_000),
  );
});

describeGuest('ipip plugin on a 3-node cluster in a guest', () => {
  let r: GuestRun;
  const ip = (pod: string) => r.notes[`ip.${pod}`];

  beforeAll(async () => {
    if (!fs.existsSync(path.join(BIN, 'ipip'))) throw new Error(`${BIN}/ipip is missing: run 'make build' first`);
    const cnictl = await buildCnictl();
    r = await runInGuest({
      // bridge: the node-local pod bridge, and the guest's L2 segment
      modules: ['ipip', 'veth', 'bridge'],
      timeoutMs: 240_000,
      keep: KEEP,
      prepare: (s) => ({
        'peers.json': peersFile(['node1', 'node2', 'node3']),
        'peers.no3.json': peersFile(['node1', 'node2']),
        'tcp.js': TCP_JS,
        // node1's conflist for libcni: Debian's libcni knows results up to 1.0.0. The same network name as the
        // direct calls: a second name would be a second host-local store handing out the same addresses on cni0
        'netconf/tscni-ipip.conflist': JSON.stringify({
          cniVersion: '1.0.0',
          name: 'tscni-ipip',
          plugins: [{ ...JSON.parse(conf(s, 'node1', false)), cniVersion: undefined, name: undefined }],
        }),
        ...Object.fromEntries(
          (Object.keys(NODES) as NodeName[]).flatMap((n) => [
            [`${n}.tunnel.conf`, conf(s, n, false)],
            [`${n}.cross.conf`, conf(s, n, true)],
          ]),
        ),
      }),
      script: (s) => scenario(s, cnictl),
    });
    console.log(`guest ipip cluster (${r.backend}): boot ${r.bootMs} ms, whole run ${r.totalMs} ms, ${r.steps.length} steps, completed=${r.completed}`);
    const slow = [...r.steps]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 6)
      .map((x) => `${x.name} ${x.ms}`);
    console.log(`guest ipip cluster: slowest steps (ms): ${slow.join(', ')}`);
    if (!r.completed) console.log(r.console.split('\n').slice(-60).join('\n'));
  }, jestMs(240_000));

  it('the guest ran the whole scenario and cleaned its scratch dir', () => {
    expect(r.completed).toBe(true);
    expect(fs.existsSync(r.scratch)).toBe(KEEP);
  });

  it('ADD wires a pod on each node, addresses from each node pod CIDR', () => {
    for (const p of ['pod1', 'pod1b', 'pod2', 'pod3']) {
      const res = JSON.parse(ok(r, `add-${p}`));
      expect(res.ips?.[0]?.address).toBeDefined();
    }
    expect(ip('pod1')).toMatch(/^10\.244\.1\./);
    expect(ip('pod1b')).toMatch(/^10\.244\.1\./);
    expect(ip('pod1b')).not.toBe(ip('pod1'));
    expect(ip('pod2')).toMatch(/^10\.244\.2\./);
    expect(ip('pod3')).toMatch(/^10\.244\.3\./);
    // nodes started with forwarding off and strict reverse-path filtering
    expect(r.notes['A.forwarding.node1']).toBe('1');
    expect(r.notes['A.rpfilter.node1']).toBe('1');
  });

  it('one ipip device (not tunl0): local nodeIP, any remote, MTU underlay - 20, the pod CIDR network /32', () => {
    const [l] = json(r, 'A.link');
    expect(l.linkinfo.info_kind).toBe('ipip');
    expect(l.linkinfo.info_data).toMatchObject({ local: NODES.node1.ip, remote: 'any' });
    expect(l.mtu).toBe(TUNNEL_MTU);
    expect(l.flags).toContain('UP');
    const [a] = json(r, 'A.addr');
    // (the kernel adds an fe80::5efe: link-local to ipip devices once ipv6 is loaded)
    const v4 = a.addr_info.filter((x: { family: string }) => x.family === 'inet');
    expect(v4.map((x: { local: string; prefixlen: number }) => `${x.local}/${x.prefixlen}`)).toEqual(['10.244.1.0/32']);
    // pods follow the fabric's MTU
    expect(json(r, 'A.podmtu')[0].mtu).toBe(TUNNEL_MTU);
  });

  it('routes peerPodCIDR via peerNodeIP dev tscni.ipip onlink, with our protocol number', () => {
    const routes = json<JRoute[]>(r, 'A.routes.node1');
    expect(routes.map((x) => x.dst).sort()).toEqual([NODES.node2.pod, NODES.node3.pod]);
    for (const n of ['node2', 'node3'] as const) {
      expect(routeOf(routes, NODES[n].pod)).toMatchObject({ gateway: NODES[n].ip, dev: DEV });
      expect(routeOf(routes, NODES[n].pod)!.flags).toContain('onlink');
    }
  });

  it('pods ping across nodes through the tunnel, same L2 and across the router, under rp_filter=1', () => {
    for (const s of ['A.ping.1-2', 'A.ping.1-3', 'A.ping.3-2', 'A.ping.2-3', 'A.ping.1-1b']) expect(ok(r, s)).toMatch(TWO_OF_THREE);
    // both went through the tunnel device (2 echo requests each at least)
    expect(Number(r.notes['A.tx.1-2'])).toBeGreaterThanOrEqual(2);
    expect(Number(r.notes['A.tx.1-3'])).toBeGreaterThanOrEqual(2);
  });

  it('TCP both ways; the receiving pod sees the sending pod IP (no NAT)', () => {
    for (const [step, from, to] of [
      ['A.tcp.1-3', 'pod1', 'pod3'],
      ['A.tcp.3-1', 'pod3', 'pod1'],
      ['A.tcp.2-1', 'pod2', 'pod1'],
    ]) {
      expect(ok(r, step)).toMatch(/pong/);
      expect(r.notes[`seen.${from}.${to}`]).toBe(ip(from));
    }
  });

  it('a full-size packet with DF set passes at underlay - 20; one byte more does not', () => {
    expect(ok(r, 'A.mtu.fits')).toMatch(/1 received/);
    fails(r, 'A.mtu.over');
  });

  it('ADD, CHECK and DEL of a pod on a node whose tunnel exists spawn no program (TSCNI_TRACE)', () => {
    expect(ok(r, 'A.spawns')).toBe('');
  });

  it('CHECK passes on a healthy pod, names a lost route, passes again after fabric sync', () => {
    ok(r, 'A.check-pod1');
    // the same through libcni, with its cached result as prevResult
    expect(ok(r, 'A.lc-check-pod1b')).toBe('');
    expect(fails(r, 'A.check-broken')).toContain(NODES.node3.pod);
    expect(ok(r, 'A.sync-repair')).toMatch(/1 change/);
    ok(r, 'A.check-repaired');
  });

  it('fabric sync removes a removed peer route only, and brings it back when the peer returns', () => {
    ok(r, 'A.sync-remove');
    const after = json<JRoute[]>(r, 'A.routes.after-remove');
    expect(after.map((x) => x.dst)).toEqual([NODES.node2.pod]);
    fails(r, 'A.ping.after-remove');
    // node2 was not synced: it keeps its routes to both peers
    expect(
      json<JRoute[]>(r, 'A.routes.node2-untouched')
        .map((x) => x.dst)
        .sort(),
    ).toEqual([NODES.node1.pod, NODES.node3.pod]);
    ok(r, 'A.sync-readd');
    expect(ok(r, 'A.ping.after-readd')).toMatch(TWO_OF_THREE);
  });

  it('crossSubnet: same-subnet peers direct over the underlay, the others tunnelled', () => {
    for (const n of ['node1', 'node2', 'node3']) ok(r, `B.sync.${n}`);
    const routes = json<JRoute[]>(r, 'B.routes.node1');
    expect(routeOf(routes, NODES.node2.pod)).toMatchObject({ gateway: NODES.node2.ip, dev: 'eth0' });
    expect(routeOf(routes, NODES.node3.pod)).toMatchObject({ gateway: NODES.node3.ip, dev: DEV });
    // node3 shares no subnet with anyone: all tunnelled, so node1<->node3 stays symmetric
    for (const x of json<JRoute[]>(r, 'B.routes.node3')) expect(x.dev).toBe(DEV);
    ok(r, 'B.check-pod1');
  });

  it('crossSubnet traffic: direct path skips the tunnel, both directions pass rp_filter=1, no NAT', () => {
    for (const s of ['B.ping.1-2', 'B.ping.1-3', 'B.ping.2-1', 'B.ping.3-1']) expect(ok(r, s)).toMatch(TWO_OF_THREE);
    expect(Number(r.notes['B.tx.1-2'])).toBe(0);
    expect(Number(r.notes['B.tx.1-3'])).toBeGreaterThanOrEqual(2);
    for (const [step, from, to] of [
      ['B.tcp.2-1', 'pod2', 'pod1'],
      ['B.tcp.1-3', 'pod1', 'pod3'],
      ['B.tcp.3-2', 'pod3', 'pod2'],
    ]) {
      expect(ok(r, step)).toMatch(/pong/);
      expect(r.notes[`seen.${from}.${to}`]).toBe(ip(from));
    }
  });

  it('through libcni: CHECK fails on a lost pod route; DEL with the netns gone, and again, releases the address', () => {
    expect(fails(r, 'D.lc-check-broken')).toMatch(/route/);
    expect(r.notes['D.pod1b.files.before']).toBe('1');
    expect(ok(r, 'del-pod1b')).toBe('');
    expect(ok(r, 'del-pod1b-again')).toBe('');
    expect(r.notes['D.pod1b.files']).toBe('0');
    expect(r.notes['D.pod1b.cache']).toBe('0');
  });

  it('DEL removes the pods and their veths (twice is fine); the fabric stays', () => {
    for (const s of ['del-pod1', 'del-pod1-again', 'del-pod2', 'del-pod3']) ok(r, s);
    // only the underlay veth is left on the nodes
    expect(ok(r, 'D.veths.node1').trim().split('\n')).toEqual([expect.stringMatching(/ eth0@/)]);
    expect(ok(r, 'D.veths.node3').trim().split('\n')).toEqual([expect.stringMatching(/ eth0@/)]);
    fails(r, 'D.pod1-eth0');
    expect(json<JRoute[]>(r, 'D.fabric.node1')).toHaveLength(2);
    expect(json(r, 'D.link.node1')[0].ifname).toBe(DEV);
  });
});
