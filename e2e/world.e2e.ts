// Self-test of the e2e world: the helpers other e2e tests stand on.
import * as fs from 'fs';
import { ping, sweepStale, tcp, World } from './lib/world';

describe('World', () => {
  const world = new World();
  afterAll(() => world.cleanup());

  it('starts nodes with forwarding off, lo up, and sysctls set inside the node only', async () => {
    const hostFwd = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
    const n = await world.node('fwd', { rpFilter: 2 });
    expect(fs.existsSync(n.path)).toBe(true);
    expect(await n.sysctl('net.ipv4.ip_forward')).toBe('0');
    expect(await n.sysctl('net.ipv6.conf.all.forwarding')).toBe('0');
    expect(await n.sysctl('net.ipv4.conf.all.rp_filter')).toBe('2');
    const lo = await n.ipJson<{ operstate: string; flags: string[] }[]>(['link', 'show', 'lo']);
    expect(lo[0].flags).toContain('UP');
    const on = await world.node('fwd-on', { forwarding: true });
    expect(await on.sysctl('net.ipv4.ip_forward')).toBe('1');
    expect(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8')).toBe(hostFwd);
  });

  it('creates an empty pod namespace', async () => {
    const p = await world.pod('pod');
    expect(p.path).toBe(`/var/run/netns/${p.name}`);
    expect(fs.existsSync(p.path)).toBe(true);
    const links = await world.ipJson<{ ifname: string; flags: string[] }[]>(p, ['link', 'show']);
    expect(links.map((l) => l.ifname)).toEqual(['lo']);
    expect(links[0].flags).not.toContain('UP');
  });

  it('links two nodes over a veth underlay (v4 and v6) and pings across', async () => {
    const a = await world.node('a');
    const b = await world.node('b');
    const l = await world.link(a, b, { subnet: '192.168.77.0/24', subnet6: 'fd77::/64' });
    expect([l.aIp, l.bIp, l.aIp6, l.bIp6]).toEqual(['192.168.77.1', '192.168.77.2', 'fd77::1', 'fd77::2']);
    expect(await ping(a, l.bIp!)).toBe(true);
    expect(await ping(b, l.aIp6!)).toBe(true);
    // a third node not on the link is unreachable: ping can fail
    const c = await world.node('c');
    expect(await ping(c, l.bIp!, { timeoutSec: 1 })).toBe(false);
  });

  it('gives a node an outside with a default route, and tcp reports the peer address', async () => {
    const n = await world.node('edge');
    const out = await world.outside(n);
    const routes = await n.ipJson<{ dst: string; gateway?: string }[]>(['route', 'show', 'default']);
    expect(routes[0].gateway).toBe(out.ip);
    expect(await tcp(n, out.ns, out.ip, 8080)).toBe(out.nodeIp);
    await expect(tcp(out.ns, n, '198.51.100.9', 8080, { timeoutSec: 1 })).rejects.toThrow(/failed/);
  });

  it('cleanup removes every namespace and temp dir, and is safe twice; sweepStale spares live worlds', async () => {
    const w = new World();
    const n = await w.node('x');
    await w.pod('y');
    const dir = w.tmpDir('ipam');
    expect(w.existing().length).toBe(2);
    // a world whose owner process died is swept; a live one is not
    const dead = new World();
    const d = await dead.node('z');
    fs.writeFileSync(`${require('os').tmpdir()}/tscni-t-owners/${dead.prefix}`, '999999999');
    const swept = await sweepStale();
    expect(swept).toContain(d.name);
    expect(swept).not.toContain(n.name);
    await dead.cleanup();
    await w.cleanup();
    await w.cleanup();
    expect(w.existing()).toEqual([]);
    expect(fs.existsSync(n.path)).toBe(false);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
