// bridge `macspoofchk` on a real kernel: a pod that changes its MAC or sends from an address it was not given
// reaches nobody, its neighbour is unaffected, CHECK sees a tampered table, DEL (netns gone) and GC remove exactly
// their own elements, and a config without macspoofchk makes no table at all.
import { run } from '../pkg/exec';
import { addPod, type AddedPod as Pod } from './lib/pods';
import { useWorld, type Netns } from './lib/world';

const world = useWorld();
jest.setTimeout(60_000);
const TABLE = ['bridge', 'tscni-macspoof'];

function bridgeConf(name: string, dataDir: string, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name,
    type: 'bridge',
    bridge: 'spoofbr0',
    isGateway: true,
    macspoofchk: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.91.0.0/24' }], [{ subnet: 'fd91::/64' }]] },
    ...extra,
  };
}

/** The table's elements as `set key` lines, and the drop counters of its four rules. */
async function table(node: Netns): Promise<{ exists: boolean; elements: string[]; drops: number[] }> {
  const r = await node.exec(['nft', '-j', 'list', 'table', ...TABLE], { allowFailure: true });
  if (r.exitCode !== 0) return { exists: false, elements: [], drops: [] };
  const elements: string[] = [];
  const drops: number[] = [];
  for (const it of JSON.parse(r.stdout).nftables as any[]) {
    for (const e of it.set?.elem ?? []) elements.push(`${it.set.name} ${JSON.stringify(e.elem.val)}`);
    if (it.rule) drops.push(it.rule.expr.find((x: any) => x.counter)?.counter.packets ?? -1);
  }
  return { exists: true, elements, drops };
}

const mine = (els: string[], host: string) => els.filter((e) => e.includes(`"${host}"`));

describe('bridge macspoofchk', () => {
  let node: Netns;
  let dataDir: string;
  let conf: ReturnType<typeof bridgeConf>;
  let a: Pod;
  let b: Pod;
  const hostOf = (p: Pod) => p.result.interfaces[1].name as string;
  const macOf = (p: Pod) => p.result.interfaces[2].mac as string;
  const ping = (from: Pod, ip: string, extra: string[] = []) =>
    from.ns.exec(['ping', '-n', '-q', '-c', '1', '-W', '1', ...extra, ip], { allowFailure: true }).then((r) => r.exitCode === 0);

  beforeAll(async () => {
    node = await world.node('node');
    dataDir = world.tmpDir('ipam');
    conf = bridgeConf('spoofnet', dataDir);
    a = await addPod(world, node, conf, 'a', { lo: true });
    b = await addPod(world, node, conf, 'b', { lo: true });
  });

  it('ADD tags each pod port with its MAC and addresses; pods reach each other over IPv4 and IPv6', async () => {
    const t = await table(node);
    expect(t.exists).toBe(true);
    expect(mine(t.elements, hostOf(a))).toEqual(
      expect.arrayContaining([
        `macs {"concat":["${hostOf(a)}","${macOf(a)}"]}`,
        `addrs4 {"concat":["${hostOf(a)}","${a.ip}"]}`,
        `addrs6 {"concat":["${hostOf(a)}","${a.ip6}"]}`,
      ]),
    );
    expect(await ping(a, b.ip)).toBe(true);
    expect(await ping(b, a.ip)).toBe(true);
    // neighbour discovery from :: and the link-local passes the IPv6 source check
    expect(await ping(a, b.ip6, ['-6'])).toBe(true);
    expect((await table(node)).drops).toEqual([0, 0, 0, 0]);
  });

  it('a pod that takes another MAC reaches nobody; its neighbour still reaches the gateway; back to its MAC, it works', async () => {
    await a.ns.ip(['link', 'set', 'eth0', 'address', '0a:00:00:00:00:99']);
    await Promise.all([a.ns.ip(['neigh', 'flush', 'all']), b.ns.ip(['neigh', 'flush', 'all'])]);
    try {
      expect(await ping(a, b.ip)).toBe(false);
      expect(await ping(a, '10.91.0.1')).toBe(false);
      expect((await table(node)).drops[0]).toBeGreaterThan(0);
      expect(await ping(b, '10.91.0.1')).toBe(true);
    } finally {
      await a.ns.ip(['link', 'set', 'eth0', 'address', macOf(a)]);
    }
    expect(await ping(a, b.ip)).toBe(true);
  });

  it('a pod sending from an address it was not given is dropped (IP and ARP); from its own it passes', async () => {
    await a.ns.ip(['addr', 'add', '10.91.0.200/32', 'dev', 'eth0']);
    await b.ns.ip(['neigh', 'flush', 'all']);
    const before = (await table(node)).drops;
    try {
      expect(await ping(a, b.ip, ['-I', '10.91.0.200'])).toBe(false);
      const after = (await table(node)).drops;
      // the ARP sender or the IPv4 source rule dropped it
      expect(after[1] + after[2]).toBeGreaterThan(before[1] + before[2]);
      expect(await ping(a, b.ip)).toBe(true);
    } finally {
      await a.ns.ip(['addr', 'del', '10.91.0.200/32', 'dev', 'eth0']);
    }
  });

  it('CHECK passes, then names a removed MAC element and a flushed chain', async () => {
    const check = (p: Pod) => world.cni(node, { command: 'CHECK', containerId: p.id, netns: p.ns, config: { ...conf, prevResult: p.result } });
    const ok = await check(a);
    expect(ok.stdout + ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    const key = `"${hostOf(a)}" . ${macOf(a)}`;
    await node.exec(['nft', `delete element bridge tscni-macspoof macs { ${key} }`]);
    const bad = await check(a);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.json.msg).toContain(`macspoofchk: nftables set macs has no element ${key}`);
    await node.exec(['nft', 'flush chain bridge tscni-macspoof prerouting']);
    expect((await check(b)).json.msg).toMatch(/macspoofchk: nftables chain bridge tscni-macspoof prerouting is missing or changed/);
    // the table is the node's: removed, the next ADDs make it again
    const del = await world.cni(node, { command: 'DEL', containerId: a.id, netns: a.ns, config: conf });
    expect(del.exitCode).toBe(0);
    await world.cni(node, { command: 'DEL', containerId: b.id, netns: b.ns, config: conf });
    await node.exec(['nft', 'delete table bridge tscni-macspoof']);
    a = await readd(a);
    b = await readd(b);
    expect((await check(a)).exitCode).toBe(0);
    expect((await check(b)).exitCode).toBe(0);
  });

  async function readd(p: Pod): Promise<Pod> {
    const r = await world.cni(node, { command: 'ADD', containerId: p.id, netns: p.ns, config: conf });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    return { ...p, result: r.json };
  }

  it('DEL with the netns gone removes exactly the pod elements; GC removes the stale ones of its network only', async () => {
    const other = await addPod(
      world,
      node,
      bridgeConf('othernet', world.tmpDir('ipam2'), {
        bridge: 'spoofbr1',
        ipam: { type: 'host-local', dataDir: world.tmpDir('ipam3'), subnet: '10.92.0.0/24' },
      }),
      'o',
      { lo: true },
    );
    await run('ip', ['netns', 'del', a.ns.name]);
    const del = await world.cni(node, { command: 'DEL', containerId: a.id, netns: a.ns.path, config: { ...conf, prevResult: a.result } });
    expect(del.stderr).toBe('');
    expect(del.exitCode).toBe(0);
    let t = await table(node);
    expect(mine(t.elements, hostOf(a))).toEqual([]);
    expect(mine(t.elements, hostOf(b)).length).toBeGreaterThan(0);
    // b's pod is gone without a DEL (a runtime crashed): GC with no valid attachment of spoofnet removes its elements
    const gc = await world.cni(node, { command: 'GC', config: { ...conf, 'cni.dev/valid-attachments': [] } });
    expect(gc.stdout + gc.stderr).toBe('');
    expect(gc.exitCode).toBe(0);
    t = await table(node);
    expect(mine(t.elements, hostOf(b))).toEqual([]);
    // the other network's pod (IPv4 only): port, MAC, IPv4 port, address
    expect(mine(t.elements, other.result.interfaces[1].name).length).toBe(4);
  });
});

describe('bridge without macspoofchk', () => {
  it('makes no macspoof table', async () => {
    const node = await world.node('plain');
    const p = await addPod(world, node, bridgeConf('plainnet', world.tmpDir('ipam'), { macspoofchk: false }), 'plainpod', { lo: true });
    expect(p.ip).toMatch(/^10\.91\.0\./);
    expect((await table(node)).exists).toBe(false);
  });
});
