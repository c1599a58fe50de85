// The ptp plugin on a real kernel: Calico-style routed pods on simulated nodes, with and without a
// default route on the node, real packets, and nothing left behind.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../pkg/exec';
import { attachmentTraces, Cnictl, delAfterNetnsGone } from './lib/cnictl';
import { addPod, ipFiles, natRuleset, nodeLinks, nodeRoutes, type AddedPod as Pod } from './lib/pods';
import { useWorld, type Netns } from './lib/world';

const world = useWorld();
const NET = 'tscni-ptp';
const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
const GW6 = 'fe80::ecee:eeff:feee:eeee';

function ptpConf(dataDir: string, extra: Record<string, unknown> = {}, ipam: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: NET,
    type: 'ptp',
    ...extra,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.22.0.0/24' }], [{ subnet: 'fd22::/64' }]], ...ipam },
  };
}

const addr = (cidr: string) => cidr.split('/')[0];

describe('ptp on a node with a default route (dual stack, ipMasq)', () => {
  let node: Netns;
  let dataDir: string;
  let conf: ReturnType<typeof ptpConf>;
  const pods: Pod[] = [];

  beforeAll(async () => {
    node = await world.node('node');
    dataDir = world.tmpDir('ipam');
    conf = ptpConf(dataDir, { ipMasq: true });
    const out = await world.outside(node, { mtu: 1400 });
    // IPv6 on the uplink by hand (World.outside's subnet6 writes `-6` into an ip batch, which ip refuses)
    await node.ip(['-batch', '-'], { input: 'addr add fd03::1/64 dev uplink nodad\nroute add ::/0 via fd03::2 dev uplink\n' });
    await out.ns.ip(['addr', 'add', 'fd03::2/64', 'dev', 'eth0', 'nodad']);
    pods.push(await addPod(world, node, conf, 'a'));
    pods.push(await addPod(world, node, conf, 'b'));
  });

  it('returns the node end and the pod interface, addresses on interface 1 via the fake gateways', () => {
    const r = pods[0].result;
    expect(r.interfaces).toHaveLength(2);
    expect(r.interfaces[0]).toEqual({ name: pods[0].host, mac: HOST_MAC });
    expect(r.interfaces[0].name).toMatch(/^ptp[0-9a-f]{12}$/);
    expect(r.interfaces[1]).toMatchObject({ name: 'eth0', sandbox: pods[0].ns.path, mtu: 1400 });
    expect(r.ips).toEqual([
      { address: expect.stringMatching(/^10\.22\.0\.\d+\/32$/), gateway: '169.254.1.1', interface: 1 },
      { address: expect.stringMatching(/^fd22::[0-9a-f]+\/128$/), gateway: GW6, interface: 1 },
    ]);
    expect(r.routes).toEqual([
      { dst: '0.0.0.0/0', gw: '169.254.1.1' },
      { dst: '::/0', gw: GW6 },
    ]);
  });

  it('wires the pod: /32 and /128, gateway route, default routes, permanent gateway neighbours', async () => {
    const p = pods[0];
    const a = await world.ipJson<any[]>(p.ns, ['addr', 'show', 'eth0']);
    const held = a[0].addr_info.filter((x: any) => x.scope === 'global').map((x: any) => `${x.local}/${x.prefixlen}`);
    expect(held.sort()).toEqual([`${p.ip}/32`, `${p.ip6}/128`].sort());
    expect(a[0].addr_info.some((x: any) => x.tentative)).toBe(false);
    const r4 = (await p.ns.ip(['route'])).stdout;
    expect(r4).toContain('default via 169.254.1.1 dev eth0');
    expect(r4).toContain('169.254.1.1 dev eth0 scope link');
    expect((await p.ns.ip(['-6', 'route'])).stdout).toContain(`default via ${GW6} dev eth0`);
    const neigh = (await p.ns.ip(['neigh', 'show', 'dev', 'eth0'])).stdout;
    expect(neigh).toContain(`169.254.1.1 lladdr ${HOST_MAC} PERMANENT`);
    expect(neigh).toContain(`${GW6} lladdr ${HOST_MAC} PERMANENT`);
  });

  it('wires the node: MAC ee:ee:..., no address but the link-local, a scope-link route to the pod, sysctls', async () => {
    const p = pods[0];
    const l = await world.ipJson<any[]>(node, ['addr', 'show', p.host]);
    expect(l[0].address).toBe(HOST_MAC);
    expect(l[0].mtu).toBe(1400);
    expect(l[0].addr_info.map((x: any) => `${x.local}/${x.prefixlen}`)).toEqual([`${GW6}/64`]);
    expect((await node.ip(['route', 'show', `${p.ip}/32`])).stdout.trim()).toBe(`${p.ip} dev ${p.host} scope link`);
    expect((await node.ip(['-6', 'route', 'show', `${p.ip6}/128`])).stdout).toContain(`${p.ip6} dev ${p.host}`);
    const want: Record<string, string> = {
      'net.ipv4.ip_forward': '1',
      'net.ipv6.conf.all.forwarding': '1',
      [`net.ipv4.conf.${p.host}.proxy_arp`]: '1',
      [`net.ipv4.neigh.${p.host}.proxy_delay`]: '0',
      [`net.ipv4.conf.${p.host}.forwarding`]: '1',
      [`net.ipv6.conf.${p.host}.proxy_ndp`]: '1',
      [`net.ipv6.conf.${p.host}.forwarding`]: '1',
      [`net.ipv6.conf.${p.host}.accept_ra`]: '0',
    };
    for (const [k, v] of Object.entries(want)) expect([k, await node.sysctl(k)]).toEqual([k, v]);
  });

  it('lets the pods ping each other and the node over IPv4 and IPv6 at the first packet', async () => {
    const [a, b] = pods;
    const first = { count: 1, timeoutSec: 1 };
    expect(await world.ping(a.ns, b.ip, first)).toBe(true);
    expect(await world.ping(b.ns, a.ip6, first)).toBe(true);
    expect(await world.ping(a.ns, '203.0.113.1', first)).toBe(true);
    expect(await world.ping(a.ns, 'fd03::1', first)).toBe(true);
  });

  it('falls back to proxy ARP (answering at once, proxy_delay=0) when the pod loses its neighbour entry', async () => {
    const a = pods[0];
    await a.ns.ip(['neigh', 'del', '169.254.1.1', 'dev', 'eth0']);
    try {
      expect(await world.ping(a.ns, pods[1].ip, { count: 1, timeoutSec: 1 })).toBe(true);
      expect((await a.ns.ip(['neigh', 'show', '169.254.1.1', 'dev', 'eth0'])).stdout).toContain(`lladdr ${HOST_MAC}`);
    } finally {
      await a.ns.ip(['neigh', 'replace', '169.254.1.1', 'lladdr', HOST_MAC, 'dev', 'eth0', 'nud', 'permanent']);
    }
  });

  it('masquerades a pod reaching outside (the outside sees the node), not pod to pod', async () => {
    const out = world.get('outside');
    expect(await world.tcp(pods[0].ns, out, '203.0.113.2', 8080)).toBe('203.0.113.1');
    expect(await world.tcp(pods[0].ns, out, 'fd03::2', 8082)).toBe('fd03::1');
    expect(await world.tcp(pods[0].ns, pods[1].ns, pods[1].ip, 8081)).toBe(pods[0].ip);
  });

  it('reaches a bridge pod on the same node, both ways', async () => {
    const brDir = world.tmpDir('ipam-br');
    const br = await world.cni(node, {
      command: 'ADD',
      containerId: world.containerId('br'),
      netns: await world.pod('br'),
      config: {
        cniVersion: '1.1.0',
        name: 'tscni-br',
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        isDefaultGateway: true,
        ipam: { type: 'host-local', dataDir: brDir, ranges: [[{ subnet: '10.23.0.0/24' }]] },
      },
    });
    expect(br.stderr).toBe('');
    expect(br.exitCode).toBe(0);
    const brIp = addr(br.json.ips[0].address);
    expect(await world.ping(pods[0].ns, brIp, { count: 1, timeoutSec: 1 })).toBe(true);
    expect(await world.ping(world.get('br'), pods[0].ip, { count: 1, timeoutSec: 1 })).toBe(true);
  });

  it('CHECK passes after ADD and fails with 102 once the node route, a neighbour or a rule is gone', async () => {
    const p = pods[1];
    const check = () => world.cni(node, { command: 'CHECK', containerId: p.id, netns: p.ns, config: { ...conf, prevResult: p.result } });
    const ok = await check();
    expect(ok.stdout).toBe('');
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);

    await node.ip(['route', 'del', `${p.ip}/32`, 'dev', p.host]);
    const bad = await check();
    expect(bad.exitCode).toBe(1);
    expect(bad.json).toMatchObject({ code: 102 });
    expect(bad.json.msg).toContain(`${p.ip}/32`);
    await node.ip(['route', 'add', `${p.ip}/32`, 'dev', p.host, 'scope', 'link']);
    expect((await check()).exitCode).toBe(0);

    await p.ns.ip(['neigh', 'del', '169.254.1.1', 'dev', 'eth0']);
    const bad2 = await check();
    expect(bad2.json.code).toBe(102);
    expect(bad2.json.msg).toContain('169.254.1.1');
    await p.ns.ip(['neigh', 'replace', '169.254.1.1', 'lladdr', HOST_MAC, 'dev', 'eth0', 'nud', 'permanent']);

    await node.exec(['sysctl', '-q', '-w', `net.ipv4.conf.${p.host}.proxy_arp=0`]);
    const bad3 = await check();
    expect(bad3.json.code).toBe(102);
    expect(bad3.json.msg).toContain('proxy_arp');
    await node.exec(['sysctl', '-q', '-w', `net.ipv4.conf.${p.host}.proxy_arp=1`]);
    expect((await check()).exitCode).toBe(0);

    await node.ip(['addr', 'del', `${GW6}/64`, 'dev', p.host]);
    const bad4 = await check();
    expect(bad4.json.code).toBe(102);
    expect(bad4.json.msg).toContain(`node veth ${p.host} lacks ${GW6}`);
    await node.ip(['addr', 'add', `${GW6}/64`, 'dev', p.host, 'nodad']);

    await node.exec(['nft', 'delete', 'element', 'inet', 'tscni', 'masq6', `{ ${p.ip6} }`]);
    const bad5 = await check();
    expect(bad5.json.code).toBe(102);
    expect(bad5.json.msg).toContain(p.ip6);
  });

  it('rolls back an ADD that fails after the pair and the rules exist: no node end, route, rule or address left', async () => {
    const before = [await nodeLinks(node), await nodeRoutes(node), ipFiles(dataDir, NET)];
    const ns = await world.pod('late-fail');
    // an MTU below IPv6's 1280: the kernel refuses the pod's IPv6 address, after the pair and the rules exist
    const r = await world.cni(node, { command: 'ADD', containerId: world.containerId('late'), netns: ns, config: { ...conf, mtu: 1200 } });
    expect(r.exitCode).toBe(1);
    expect(r.json.code).toBe(101);
    expect([await nodeLinks(node), await nodeRoutes(node), ipFiles(dataDir, NET)]).toEqual(before);
    const rules = await natRuleset(node);
    expect(rules).not.toContain('late');
    for (const p of pods) expect(rules).toContain(p.ip);
  });

  it('a repeated ADD of the same attachment replaces the stale node end', async () => {
    const ns = await world.pod('re');
    const id = world.containerId('re');
    const r1 = await world.cni(node, { command: 'ADD', containerId: id, netns: ns, config: conf });
    expect(r1.exitCode).toBe(0);
    // a new pod namespace for the same attachment: the old pair is still there and must go
    const ns2 = await world.pod('re2');
    const r2 = await world.cni(node, { command: 'ADD', containerId: id, netns: ns2, config: conf });
    expect(r2.stderr).toBe('');
    expect(r2.exitCode).toBe(0);
    expect(r2.json.interfaces[0].name).toBe(r1.json.interfaces[0].name);
    expect((await world.ipJson<any[]>(ns, ['link', 'show'])).map((l) => l.ifname)).toEqual(['lo']);
    expect(await world.ping(ns2, pods[0].ip, { count: 1, timeoutSec: 1 })).toBe(true);
    const d = await world.cni(node, { command: 'DEL', containerId: id, netns: ns2, config: conf });
    expect(d.exitCode).toBe(0);
  });

  it('DEL twice, with the netns gone, and of an unknown container succeeds and leaves nothing', async () => {
    const [a, b] = pods;
    const del = (p: Pod, netns: Netns | string) => world.cni(node, { command: 'DEL', containerId: p.id, netns, config: conf });
    for (const r of [await del(a, a.ns), await del(a, a.ns)]) {
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
    }
    // b's namespace is gone before its DEL (its pair goes with it)
    await run('ip', ['netns', 'del', b.ns.name]);
    const rb = await del(b, b.ns.path);
    expect(rb.stderr).toBe('');
    expect(rb.exitCode).toBe(0);
    expect((await del(b, '')).exitCode).toBe(0);
    const unknown = await world.cni(node, { command: 'DEL', containerId: world.containerId('nobody'), netns: '', config: conf });
    expect(unknown.exitCode).toBe(0);

    const links = await nodeLinks(node);
    expect(links).not.toContain(a.host);
    expect(links).not.toContain(b.host);
    const routes = await nodeRoutes(node);
    for (const ip of [a.ip, b.ip, a.ip6, b.ip6]) expect(routes).not.toContain(ip);
    expect(ipFiles(dataDir, NET)).toEqual([]);
    const rules = await natRuleset(node);
    for (const ip of [a.ip, b.ip, a.ip6, b.ip6]) expect(rules).not.toContain(ip);
  });
});

describe('ptp on a node without a default route', () => {
  let node: Netns;
  let dataDir: string;
  let conf: ReturnType<typeof ptpConf>;
  const pods: Pod[] = [];

  beforeAll(async () => {
    node = await world.node('bare');
    // the node has an address (on an underlay to a peer) but no default route in either family
    const peer = await world.pod('peer', { lo: true });
    await world.link(node, peer, { subnet: '192.168.77.0/24', subnet6: 'fd77::/64', aIf: 'underlay', bIf: 'underlay' });
    dataDir = world.tmpDir('ipam-bare');
    conf = ptpConf(dataDir);
    pods.push(await addPod(world, node, conf, 'c'));
    pods.push(await addPod(world, node, conf, 'd'));
  });

  it('really has no default route', async () => {
    expect((await node.ip(['route', 'show', 'default'])).stdout.trim()).toBe('');
    expect((await node.ip(['-6', 'route', 'show', 'default'])).stdout.trim()).toBe('');
  });

  it('takes the MTU fallback of 1500 when there is no default-route interface', () => {
    expect(pods[0].result.interfaces[1].mtu).toBe(1500);
  });

  it('gives working connectivity at the first packet, IPv4 and IPv6, pod to pod and pod to node', async () => {
    const [c, d] = pods;
    const first = { count: 1, timeoutSec: 1 };
    expect(await world.ping(c.ns, d.ip, first)).toBe(true);
    expect(await world.ping(d.ns, c.ip6, first)).toBe(true);
    expect(await world.ping(c.ns, '192.168.77.1', first)).toBe(true);
    expect(await world.ping(d.ns, 'fd77::1', first)).toBe(true);
  });

  it('documents why: without the permanent neighbour, proxy ARP leaves 169.254.1.1 unresolved here', async () => {
    const c = pods[0];
    await c.ns.ip(['neigh', 'del', '169.254.1.1', 'dev', 'eth0']);
    try {
      expect(await world.ping(c.ns, pods[1].ip, { count: 1, timeoutSec: 1 })).toBe(false);
      const n = (await c.ns.ip(['neigh', 'show', '169.254.1.1', 'dev', 'eth0'])).stdout;
      expect(n).not.toContain(HOST_MAC);
    } finally {
      await c.ns.ip(['neigh', 'replace', '169.254.1.1', 'lladdr', HOST_MAC, 'dev', 'eth0', 'nud', 'permanent']);
    }
    expect(await world.ping(c.ns, pods[1].ip, { count: 1, timeoutSec: 1 })).toBe(true);
  });

  it('rolls back a failed ADD: no node end, no address kept', async () => {
    const ns = await world.pod('clash');
    // the pod already has an eth0: the pair cannot be made
    await ns.ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other']);
    const before = await nodeLinks(node);
    const id = world.containerId('clash');
    const r = await world.cni(node, { command: 'ADD', containerId: id, netns: ns, config: conf });
    expect(r.exitCode).toBe(1);
    expect(r.json.code).toBe(101);
    expect(await nodeLinks(node)).toEqual(before);
    expect(ipFiles(dataDir, NET).sort()).toEqual([...pods.map((p) => p.ip), ...pods.map((p) => p.ip6)].sort());
  });

  it.each([
    [{ mtu: 'big' }, 7, 'mtu'],
    [{ mtu: 20 }, 7, 'mtu'],
    [{ ipMasq: 'yes' }, 7, 'ipMasq'],
    [{ ipMasqBackend: 'pf' }, 2, 'ipMasqBackend'],
    [{ dns: { nameservers: '8.8.8.8' } }, 7, 'dns.nameservers'],
    [{ ipam: {} }, 7, 'ipam.type'],
    [{ ipam: undefined }, 7, 'ipam'],
  ])('refuses %j with code %d naming %s and changes nothing', async (extra, code, key) => {
    const before = [await nodeLinks(node), await nodeRoutes(node), await natRuleset(node), ipFiles(dataDir, NET)];
    const ns = await world.pod(`bad${Math.random().toString(16).slice(2, 6)}`);
    const c: Record<string, unknown> = { ...conf, ...extra };
    if ('ipam' in extra && extra.ipam === undefined) delete c.ipam;
    const r = await world.cni(node, { command: 'ADD', containerId: world.containerId('bad'), netns: ns, config: c, plugin: 'ptp' });
    expect(r.exitCode).toBe(1);
    expect(r.json.code).toBe(code);
    expect(r.json.msg).toContain(key);
    expect([await nodeLinks(node), await nodeRoutes(node), await natRuleset(node), ipFiles(dataDir, NET)]).toEqual(before);
    expect((await world.ipJson<any[]>(ns, ['link', 'show'])).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('DEL of both pods leaves no veth, route or address file', async () => {
    for (const p of pods) {
      const r = await world.cni(node, { command: 'DEL', containerId: p.id, netns: p.ns, config: conf });
      expect(r.exitCode).toBe(0);
    }
    const links = await nodeLinks(node);
    expect(links.filter((l) => l.startsWith('ptp'))).toEqual([]);
    const routes = await nodeRoutes(node);
    for (const p of pods) expect(routes).not.toContain(p.ip);
    expect(ipFiles(dataDir, NET)).toEqual([]);
  });
});

describe('ptp on a node whose new links come up without IPv6 (default.disable_ipv6=1)', () => {
  it('enables IPv6 on the node end before its IPv6 lines and wires a dual-stack pod', async () => {
    const node = await world.node('nov6');
    await node.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1']);
    const conf = ptpConf(world.tmpDir('ipam-nov6'));
    const [e, f] = [await addPod(world, node, conf, 'e'), await addPod(world, node, conf, 'f')];
    expect(await node.sysctl(`net.ipv6.conf.${e.host}.disable_ipv6`)).toBe('0');
    expect((await node.ip(['-6', 'route', 'show', `${e.ip6}/128`])).stdout).toContain(`dev ${e.host}`);
    expect(await world.ping(e.ns, f.ip6, { count: 1, timeoutSec: 1 })).toBe(true);
    expect(await world.ping(f.ns, e.ip, { count: 1, timeoutSec: 1 })).toBe(true);
  });
});

describe('ptp through libcni (cnictl), from the shipped conflist', () => {
  it('ADD, CHECK (catching a deleted node route), DEL with the netns gone and again, of two dual-stack pods', async () => {
    const list = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'conf', '30-tscni-ptp.conflist'), 'utf8'));
    const dataDir = world.tmpDir('ipam-libcni');
    list.plugins[0].ipam.dataDir = dataDir; // never the machine's /var/lib/cni/networks
    const ctl = await Cnictl.create(world);
    ctl.addConflist(list);
    const node = await world.node('lnode');
    // a dual-stack outside: the pod leaves masqueraded over IPv4 and IPv6
    const out = await world.outside(node, { name: 'loutside', subnet6: 'fd05::/64' });
    const [p, q] = [await world.pod('lp'), await world.pod('lq')];
    const addP = await ctl.add(node, list.name, p);
    expect(addP.stderr).toBe('');
    expect(addP.exitCode).toBe(0);
    const addQ = await ctl.add(node, list.name, q);
    expect(addQ.exitCode).toBe(0);
    const ips = (r: any) => (r.json.ips as { address: string }[]).map((x) => addr(x.address));
    const [qIp, qIp6] = ips(addQ);
    expect(await world.ping(p, qIp, { count: 1, timeoutSec: 1 })).toBe(true);
    expect(await world.ping(p, qIp6, { count: 1, timeoutSec: 1 })).toBe(true);
    expect(await world.tcp(p, out.ns, out.ip, 8090)).toBe(out.nodeIp);
    expect(await world.tcp(p, out.ns, out.ip6!, 8092)).toBe(out.nodeIp6);

    const ok = await ctl.check(node, list.name, q);
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    const host = addQ.json.interfaces[0].name;
    await node.ip(['route', 'del', `${qIp}/32`, 'dev', host]);
    const bad = await ctl.check(node, list.name, q);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr + bad.stdout).toContain(`node has no route to ${qIp}/32`);

    const traces = (pod: Netns, r: any) =>
      attachmentTraces(node, { dataDir, netName: list.name, containerId: Cnictl.defaultContainerId(pod.path), hostIf: r.json.interfaces[0].name, ips: ips(r) });
    // q: its netns goes first, as after a crash; p: the ordinary way, with its netns
    expect((await traces(q, addQ)).length).toBeGreaterThanOrEqual(3);
    const [del, again] = await delAfterNetnsGone(ctl, node, list.name, q);
    expect(del.stderr).toBe('');
    expect(del.exitCode).toBe(0);
    expect(again.exitCode).toBe(0);
    expect(await traces(q, addQ)).toEqual([]);
    expect((await traces(p, addP)).length).toBeGreaterThanOrEqual(4);
    for (let i = 0; i < 2; i++) {
      const d = await ctl.del(node, list.name, p);
      expect(d.stderr).toBe('');
      expect(d.exitCode).toBe(0);
    }
    expect(await traces(p, addP)).toEqual([]);
    expect((await nodeLinks(node)).filter((l) => l.startsWith('ptp'))).toEqual([]);
    expect(ipFiles(dataDir, list.name)).toEqual([]);
  }, 30_000);
});
