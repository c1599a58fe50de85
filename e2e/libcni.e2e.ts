// Every plugin through libcni (our cnictl), from the shipped conf/ examples: ADD, CHECK passing, CHECK failing once
// something is broken, the pod's netns deleted, then DEL succeeding and leaving nothing (address, node veth,
// routes, firewall elements), and DEL again succeeding. bridge and host-gw are here; ptp, vxlan and ipip run the
// same story in their own files (ptp.e2e.ts, fabric.e2e.ts, ipip.e2e.ts inside the UML guest).
import * as fs from 'fs';
import * as path from 'path';
import { buildCluster } from './lib/cluster';
import { attachmentTraces, Cnictl, delAfterNetnsGone } from './lib/cnictl';
import { useWorld, type Netns } from './lib/world';

const world = useWorld();
jest.setTimeout(60_000);

const example = (file: string) => JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'conf', file), 'utf8'));
const addrs = (r: any): string[] => (r.json.ips as { address: string }[]).map((x) => x.address.split('/')[0]);

describe('bridge through libcni, from conf/10-tscni-bridge.conflist (plus macspoofchk)', () => {
  it('ADD, CHECK, CHECK after a lost route, DEL with the netns gone and again: nothing left', async () => {
    const list = example('10-tscni-bridge.conflist');
    const dataDir = world.tmpDir('ipam');
    Object.assign(list.plugins[0], { macspoofchk: true });
    list.plugins[0].ipam.dataDir = dataDir; // never the machine's /var/lib/cni/networks
    const ctl = await Cnictl.create(world);
    ctl.addConflist(list);
    const node = await world.node('br-node');
    const out = await world.outside(node, { name: 'br-out' });
    const [p, q] = [await world.pod('br-p'), await world.pod('br-q')];
    const addP = await ctl.add(node, list.name, p);
    expect(addP.stderr).toBe('');
    expect(addP.exitCode).toBe(0);
    const addQ = await ctl.add(node, list.name, q);
    expect(addQ.exitCode).toBe(0);
    expect(await world.ping(p, addrs(addQ)[0])).toBe(true);
    expect(await world.tcp(q, out.ns, out.ip, 8091)).toBe(out.nodeIp);

    const ok = await ctl.check(node, list.name, q);
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    await q.ip(['route', 'del', 'default']);
    const bad = await ctl.check(node, list.name, q);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/route/);

    const traces = (pod: Netns, r: any) =>
      attachmentTraces(node, {
        dataDir,
        netName: list.name,
        containerId: Cnictl.defaultContainerId(pod.path),
        hostIf: r.json.interfaces[1].name,
        ips: addrs(r),
      });
    const before = await traces(q, addQ);
    // address file, node veth, masquerade and macspoof elements
    expect(before).toEqual(
      expect.arrayContaining([expect.stringMatching(/^address file/), `node link ${addQ.json.interfaces[1].name}`, expect.stringMatching(/^firewall rules/)]),
    );
    const [del, again] = await delAfterNetnsGone(ctl, node, list.name, q);
    expect(del.stderr).toBe('');
    expect(del.exitCode).toBe(0);
    expect(again.exitCode).toBe(0);
    expect(await traces(q, addQ)).toEqual([]);
    expect(fs.existsSync(ctl.cacheFile(list.name, Cnictl.defaultContainerId(q.path)))).toBe(false);

    // the other pod, untouched by all this, goes the ordinary way
    expect((await ctl.check(node, list.name, p)).exitCode).toBe(0);
    for (let i = 0; i < 2; i++) expect((await ctl.del(node, list.name, p)).exitCode).toBe(0);
    expect(await traces(p, addP)).toEqual([]);
  });
});

describe('host-gw through libcni, from conf/40-tscni-host-gw.conflist', () => {
  it('ADD on two nodes, pods talk without NAT, CHECK names a lost peer route, DEL with the netns gone and again', async () => {
    const c = await buildCluster(world, { tag: 'lh' });
    c.writePeers([c.node('node1'), c.node('node2')]);
    const ctl = await Cnictl.create(world);
    const ex = example('40-tscni-host-gw.conflist');
    const pods: { node: (typeof c.nodes)[number]; ns: Netns; net: string; add: any; dataDir: string }[] = [];
    for (const n of [c.node('node1'), c.node('node2')]) {
      const dataDir = world.tmpDir('ipam');
      // Debian's libcni knows results up to 1.0.0; one conflist per node, as each has its own podCIDR
      const list = { ...ex, cniVersion: '1.0.0', name: `${ex.name}-${n.name}` };
      list.plugins = [{ ...ex.plugins[0], nodeIP: n.ip, podCIDR: n.podCIDR, peersFile: c.peersFile, ipam: { ...ex.plugins[0].ipam, dataDir } }];
      ctl.addConflist(list);
      const ns = await world.pod(`lhpod-${n.name}`);
      const add = await ctl.add(n.ns, list.name, ns);
      expect(add.stderr).toBe('');
      expect(add.exitCode).toBe(0);
      expect(addrs(add)[0].startsWith(n.podCIDR.split('.0/')[0])).toBe(true);
      pods.push({ node: n, ns, net: list.name, add, dataDir });
    }
    const [a, b] = pods;
    expect(await world.tcp(a.ns, b.ns, addrs(b.add)[0], 7401)).toBe(addrs(a.add)[0]);
    expect(await world.tcp(b.ns, a.ns, addrs(a.add)[0], 7402)).toBe(addrs(b.add)[0]);

    const ok = await ctl.check(a.node.ns, a.net, a.ns);
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    await a.node.ns.ip(['route', 'del', b.node.podCIDR]);
    const bad = await ctl.check(a.node.ns, a.net, a.ns);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain(b.node.podCIDR);

    for (const p of pods) {
      const traces = () =>
        attachmentTraces(p.node.ns, {
          dataDir: p.dataDir,
          netName: p.net,
          containerId: Cnictl.defaultContainerId(p.ns.path),
          hostIf: p.add.json.interfaces[1].name,
          ips: addrs(p.add),
        });
      expect((await traces()).length).toBeGreaterThanOrEqual(3);
      const [del, again] = await delAfterNetnsGone(ctl, p.node.ns, p.net, p.ns);
      expect(del.stderr).toBe('');
      expect(del.exitCode).toBe(0);
      expect(again.exitCode).toBe(0);
      expect(await traces()).toEqual([]);
    }
  });
});
