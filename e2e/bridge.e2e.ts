// The bridge plugin on a real kernel: pods in namespaces on a simulated node, real packets.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../pkg/exec';
import { ipFiles, natRuleset, nodeLinks } from './lib/pods';
import { useWorld, type Netns } from './lib/world';

const world = useWorld();

function bridgeConf(dataDir: string, extra: Record<string, unknown> = {}, ipam: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: 'tscni-br',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: true,
    ...extra,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.22.0.0/24' }]], ...ipam },
  };
}

describe('bridge on one node', () => {
  let node: Netns;
  let dataDir: string;
  let conf: ReturnType<typeof bridgeConf>;
  const pods: { ns: Netns; id: string; result: any }[] = [];

  beforeAll(async () => {
    node = await world.node('node');
    dataDir = world.tmpDir('ipam');
    conf = bridgeConf(dataDir);
    await world.outside(node, { mtu: 1400 });
    for (const name of ['a', 'b']) {
      const ns = await world.pod(name);
      const id = world.containerId(name);
      const r = await world.cni(node, { command: 'ADD', containerId: id, netns: ns, config: conf });
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      pods.push({ ns, id, result: r.json });
    }
  });

  it('returns bridge, node veth and pod interface, with the pod address on interface 2', () => {
    const r = pods[0].result;
    expect(r.cniVersion).toBe('1.1.0');
    expect(r.interfaces).toHaveLength(3);
    expect(r.interfaces[0].name).toBe('cni0');
    expect(r.interfaces[2]).toMatchObject({ name: 'eth0', sandbox: pods[0].ns.path });
    expect(r.ips[0]).toMatchObject({ interface: 2, gateway: '10.22.0.1' });
    expect(r.ips[0].address).toMatch(/^10\.22\.0\.\d+\/24$/);
    expect(r.routes).toContainEqual({ dst: '0.0.0.0/0', gw: '10.22.0.1' });
  });

  it('takes the MTU of the default-route interface', async () => {
    expect(pods[0].result.interfaces[2].mtu).toBe(1400);
    const l = await world.ipJson<{ mtu: number }[]>(pods[0].ns, ['link', 'show', 'eth0']);
    expect(l[0].mtu).toBe(1400);
  });

  it('enables forwarding in the node, which started with it off', async () => {
    expect(await node.sysctl('net.ipv4.ip_forward')).toBe('1');
  });

  it('lets two pods ping each other and the gateway', async () => {
    const ipB = pods[1].result.ips[0].address.split('/')[0];
    expect(await world.ping(pods[0].ns, '10.22.0.1')).toBe(true);
    expect(await world.ping(pods[0].ns, ipB)).toBe(true);
  });

  it('masquerades a pod reaching outside: the outside sees the node address', async () => {
    const out = world.get('outside');
    const seen = await world.tcp(pods[0].ns, out, '203.0.113.2', 8080);
    expect(seen).toBe('203.0.113.1');
    // pod to pod stays unmasqueraded
    const ipA = pods[0].result.ips[0].address.split('/')[0];
    const ipB = pods[1].result.ips[0].address.split('/')[0];
    expect(await world.tcp(pods[0].ns, pods[1].ns, ipB, 8081)).toBe(ipA);
  });

  it('CHECK passes on a healthy pod and fails once its route or address is gone', async () => {
    const p = pods[1];
    const check = () => world.cni(node, { command: 'CHECK', containerId: p.id, netns: p.ns, config: { ...conf, prevResult: p.result } });
    const ok = await check();
    expect(ok.stdout).toBe('');
    expect(ok.exitCode).toBe(0);
    await p.ns.ip(['route', 'del', 'default']);
    const bad = await check();
    expect(bad.exitCode).toBe(1);
    expect(bad.json).toMatchObject({ code: 102 });
    expect(bad.json.msg).toContain('0.0.0.0/0');
    await p.ns.ip(['route', 'add', 'default', 'via', '10.22.0.1']);
    expect((await check()).exitCode).toBe(0);
    await p.ns.ip(['addr', 'del', p.result.ips[0].address, 'dev', 'eth0']);
    const bad2 = await check();
    expect(bad2.json.code).toBe(102);
    expect(bad2.json.msg).toContain(p.result.ips[0].address);
  });

  it('CHECK notices a removed masquerade rule and a changed MTU', async () => {
    const p = pods[0];
    const ip = p.result.ips[0].address.split('/')[0];
    const check = () => world.cni(node, { command: 'CHECK', containerId: p.id, netns: p.ns, config: { ...conf, prevResult: p.result } });
    await node.exec(['nft', 'delete', 'element', 'inet', 'tscni', 'masq4', `{ ${ip} }`]);
    const r = await check();
    expect(r.json?.code).toBe(102);
    expect(r.json.msg).toContain(ip);
    await p.ns.ip(['link', 'set', 'eth0', 'mtu', '1300']);
    expect((await check()).json.msg).toMatch(/eth0 has MTU 1300, expected 1400/);
  });

  it('a repeated ADD of a live pod rewires it: same address, rules back, the pod talks again', async () => {
    const p = pods[0];
    const again = await world.cni(node, { command: 'ADD', containerId: p.id, netns: p.ns, config: conf });
    expect(again.stderr).toBe('');
    expect(again.exitCode).toBe(0);
    expect(again.json.ips[0].address).toBe(p.result.ips[0].address);
    expect(again.json.interfaces[1].name).toBe(p.result.interfaces[1].name);
    p.result = again.json;
    expect((await world.cni(node, { command: 'CHECK', containerId: p.id, netns: p.ns, config: { ...conf, prevResult: p.result } })).exitCode).toBe(0);
    expect(await world.ping(p.ns, '10.22.0.1')).toBe(true);
    expect(await world.tcp(p.ns, world.get('outside'), '203.0.113.2', 8082)).toBe('203.0.113.1');
    expect(ipFiles(dataDir, 'tscni-br')).toHaveLength(2);
  });

  it('CHECK holds a pod to the MTU ADD gave it (prevResult), not to a default route that changed since', async () => {
    const p = pods[0];
    await node.ip(['link', 'set', 'uplink', 'mtu', '1300']);
    try {
      const r = await world.cni(node, { command: 'CHECK', containerId: p.id, netns: p.ns, config: { ...conf, prevResult: p.result } });
      expect(r.stdout).toBe('');
      expect(r.exitCode).toBe(0);
    } finally {
      await node.ip(['link', 'set', 'uplink', 'mtu', '1400']);
    }
  });

  it('DEL removes veth, address and rules; twice, and with the netns gone, still succeeds', async () => {
    const [a, b] = pods;
    const before = await nodeLinks(node);
    const rulesBefore = await natRuleset(node);
    for (const p of pods) expect(rulesBefore).toContain(p.result.ips[0].address.split('/')[0]);
    const vethA = a.result.interfaces[1].name;
    expect(before).toContain(vethA);
    const del = (p: typeof a, netns: Netns | string) =>
      world.cni(node, { command: 'DEL', containerId: p.id, netns, config: { ...conf, prevResult: p.result } });
    expect((await del(a, a.ns)).exitCode).toBe(0);
    expect((await del(a, a.ns)).exitCode).toBe(0);
    expect(await nodeLinks(node)).not.toContain(vethA);
    // b's netns disappears first, as after a crashed runtime
    await run('ip', ['netns', 'del', b.ns.name]);
    expect((await del(b, b.ns.path)).exitCode).toBe(0);
    expect((await del(b, '')).exitCode).toBe(0);
    expect(ipFiles(dataDir, 'tscni-br')).toEqual([]);
    const rules = await natRuleset(node);
    for (const p of pods) expect(rules).not.toContain(p.result.ips[0].address.split('/')[0]);
    expect(await nodeLinks(node)).toContain('cni0');
  });

  it('an address handed to a new pod comes back with its MAC (0a:58:<address>): a neighbour that cached it talks at once', async () => {
    const [c, d, e] = await Promise.all(['c', 'd', 'e'].map((n) => world.pod(n)));
    const ids = { c: world.containerId('c'), d: world.containerId('d'), e: world.containerId('e') };
    const add = async (ns: Netns, id: string, cniArgs?: Record<string, string>) => {
      const r = await world.cni(node, { command: 'ADD', containerId: id, netns: ns, config: conf, cniArgs });
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      return r.json;
    };
    const [rc, rd] = [await add(c, ids.c), await add(d, ids.d)];
    const ipC = rc.ips[0].address.split('/')[0];
    const macC = rc.interfaces[2].mac;
    expect(macC).toBe(
      '0a:58:' +
        ipC
          .split('.')
          .map((o: string) => Number(o).toString(16).padStart(2, '0'))
          .join(':'),
    );
    // d caches c's address, then c goes and a new pod e gets that address
    expect(await world.ping(d, ipC)).toBe(true);
    const cached = async () => (await world.ipJson<{ dst: string; lladdr?: string }[]>(d, ['neigh', 'show', ipC]))[0]?.lladdr;
    expect(await cached()).toBe(macC);
    expect((await world.cni(node, { command: 'DEL', containerId: ids.c, netns: c, config: { ...conf, prevResult: rc } })).exitCode).toBe(0);
    const re = await add(e, ids.e, { IP: ipC });
    expect(re.ips[0].address.split('/')[0]).toBe(ipC);
    expect(re.interfaces[2].mac).toBe(macC);
    // no gratuitous ARP did it: the pod does not send one, and d's entry was never replaced
    expect((await e.exec(['cat', '/proc/sys/net/ipv4/conf/eth0/arp_notify'])).stdout.trim()).toBe('0');
    expect(await cached()).toBe(macC);
    expect(await world.ping(d, ipC)).toBe(true);
    for (const [ns, id, r] of [
      [d, ids.d, rd],
      [e, ids.e, re],
    ] as const) {
      expect((await world.cni(node, { command: 'DEL', containerId: id, netns: ns, config: { ...conf, prevResult: r } })).exitCode).toBe(0);
    }
  });

  it('DEL of a container never seen succeeds', async () => {
    const r = await world.cni(node, { command: 'DEL', containerId: world.containerId('ghost'), netns: '', config: conf });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('');
  });
});

describe('bridge failures and special modes', () => {
  let node: Netns;
  beforeAll(async () => {
    node = await world.node('node2');
  });

  it('rolls back a failed ADD: no veth, no address held', async () => {
    const dataDir = world.tmpDir('ipam');
    const pod = await world.pod('busy');
    await pod.ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'x0']);
    const before = await nodeLinks(node);
    const r = await world.cni(node, { command: 'ADD', containerId: world.containerId('busy'), netns: pod, config: bridgeConf(dataDir) });
    expect(r.exitCode).toBe(1);
    expect(r.json.msg).toMatch(/exists/i);
    const after = (await nodeLinks(node)).filter((l) => l !== 'cni0');
    expect(after).toEqual(before.filter((l) => l !== 'cni0'));
    expect(ipFiles(dataDir, 'tscni-br')).toEqual([]);
  });

  it('refuses bad input with the key named and changes nothing', async () => {
    const node = await world.node('clean');
    const dataDir = world.tmpDir('ipam');
    const pod = await world.pod('bad');
    const cases: [Record<string, unknown>, number, string][] = [
      [bridgeConf(dataDir, {}, { ranges: [[{ subnet: '10.22.0.0/24', rangeStart: '10.23.0.5' }]] }), 7, 'rangeStart'],
      [bridgeConf(dataDir, { ipMasqBackend: 'pf' }), 2, 'ipMasqBackend'],
      [bridgeConf(dataDir, { mtu: 'x' }), 7, 'mtu'],
      [bridgeConf(dataDir, {}, { ranges: [[{ subnet: '10.22.0.0/33' }]] }), 7, 'subnet'],
    ];
    for (const [config, code, key] of cases) {
      const r = await world.cni(node, { command: 'ADD', containerId: world.containerId('bad'), netns: pod, config });
      expect({ exit: r.exitCode, code: r.json?.code }).toEqual({ exit: 1, code });
      expect(r.json.msg).toContain(key);
    }
    expect(await nodeLinks(node)).toEqual(['lo']);
    expect(ipFiles(dataDir, 'tscni-br')).toEqual([]);
  });

  it('serves a dual-stack pod: IPv4 and IPv6 to the gateway and between pods', async () => {
    const n = await world.node('ds');
    const dataDir = world.tmpDir('ipam');
    const conf = bridgeConf(dataDir, { ipMasq: false }, { ranges: [[{ subnet: '10.30.0.0/24' }], [{ subnet: 'fd00:30::/64' }]] });
    const res: any[] = [];
    const nss: Netns[] = [];
    for (const name of ['d1', 'd2']) {
      const ns = await world.pod(name);
      const r = await world.cni(n, { command: 'ADD', containerId: world.containerId(name), netns: ns, config: conf });
      expect(r.exitCode).toBe(0);
      res.push(r.json);
      nss.push(ns);
    }
    expect(res[0].ips.map((i: any) => i.address)).toEqual([expect.stringMatching(/^10\.30\.0\./), expect.stringMatching(/^fd00:30::/)]);
    expect(res[0].routes).toContainEqual({ dst: '::/0', gw: 'fd00:30::1' });
    expect(await world.ping(nss[0], 'fd00:30::1')).toBe(true);
    expect(await world.ping(nss[0], res[1].ips[1].address.split('/')[0])).toBe(true);
    expect(await world.ping(nss[0], res[1].ips[0].address.split('/')[0])).toBe(true);
    expect(await n.sysctl('net.ipv6.conf.all.forwarding')).toBe('1');
  });

  it('L2-only mode: no IPAM, interfaces only, the pod link up', async () => {
    const n = await world.node('l2');
    const pod = await world.pod('l2pod');
    const r = await world.cni(n, {
      command: 'ADD',
      containerId: world.containerId('l2'),
      netns: pod,
      config: { cniVersion: '1.0.0', name: 'l2', type: 'bridge', bridge: 'br-l2', ipam: {} },
    });
    expect(r.exitCode).toBe(0);
    expect(r.json.ips).toBeUndefined();
    expect(r.json.interfaces.map((i: any) => i.name)).toEqual(['br-l2', expect.stringMatching(/^veth/), 'eth0']);
    const l = await world.ipJson<{ flags: string[] }[]>(pod, ['link', 'show', 'eth0']);
    expect(l[0].flags).toContain('UP');
  });

  it('ADD, CHECK and DEL run with a PATH holding only ip, bridge, nsenter and sysctl: no node anywhere on it', async () => {
    const tools = world.tmpDir('path');
    for (const t of ['ip', 'bridge', 'nsenter', 'sysctl']) {
      const r = await run('sh', ['-c', 'command -v "$0"', t]);
      fs.symlinkSync(r.stdout.trim(), path.join(tools, t));
    }
    expect(fs.existsSync(path.join(tools, 'node'))).toBe(false);
    const n = await world.node('nopath');
    const pod = await world.pod('nopath-pod');
    const id = world.containerId('nopath');
    const c = bridgeConf(world.tmpDir('ipam'));
    const env = { PATH: tools };
    const add = await world.cni(n, { command: 'ADD', containerId: id, netns: pod, config: c, env });
    expect(add.stderr).toBe('');
    expect(add.exitCode).toBe(0);
    expect(await world.ping(pod, '10.22.0.1')).toBe(true);
    const check = await world.cni(n, { command: 'CHECK', containerId: id, netns: pod, config: { ...c, prevResult: add.json }, env });
    expect(check.exitCode).toBe(0);
    expect((await world.cni(n, { command: 'DEL', containerId: id, netns: pod, config: c, env })).exitCode).toBe(0);
  });

  it('prints the result in the config version: 0.4.0 carries ips[].version', async () => {
    const n = await world.node('v040');
    const pod = await world.pod('v040pod');
    const dataDir = world.tmpDir('ipam');
    const r = await world.cni(n, {
      command: 'ADD',
      containerId: world.containerId('v'),
      netns: pod,
      config: { ...bridgeConf(dataDir, { ipMasq: false }), cniVersion: '0.4.0' },
    });
    expect(r.exitCode).toBe(0);
    expect(r.json.cniVersion).toBe('0.4.0');
    expect(r.json.ips[0]).toMatchObject({ version: '4', interface: 2 });
    expect(r.json.interfaces[2].mtu).toBeUndefined();
  });
});
