// BGP routing without BIRD running: the keys, the rendered BIRD config, the control-socket protocol against a
// scripted stand-in on a unix socket (lines in the shapes BIRD 2.0.12 answered in e2e/bgp.e2e.ts), and CHECK's
// reasons. BIRD itself runs in e2e/bgp.e2e.ts.
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { ConfigReader } from '../cni/config';
import { thrown } from '../testing';
import { birdCommand, parseProtocols, parseRoutePrefixes, renderBirdConf, sessionName, type BirdPlan } from './bird';
import { bgpProblems } from './check';
import { parseBgp } from './config';
import type { BgpPlan } from './plan';

const parse = (bgp: unknown) => parseBgp(new ConfigReader({ routing: 'bgp', bgp }));

describe('bgp keys', () => {
  it('reads AS, router ID, neighbours, timers; defaults the restart time', () => {
    expect(parse({ asn: 65001, routerId: '10.0.0.1', neighbors: [{ address: '192.168.50.254', asn: 65000 }], holdTime: 9 })).toEqual({
      asn: 65001,
      routerId: '10.0.0.1',
      neighbors: [{ address: '192.168.50.254', asn: 65000, key: 'bgp.neighbors[0]' }],
      holdTime: 9,
      restartTime: 60,
      dir: undefined,
    });
  });

  it('names every bad value', () => {
    const msg = (b: unknown) => thrown(() => parse(b)).message;
    expect(msg({})).toBe('invalid config: bgp.asn: is required');
    expect(msg({ asn: 4294967296 })).toBe('invalid config: bgp.asn: 4294967296 is out of range 1..4294967295');
    expect(msg({ asn: 1, routerId: 'fd00::1' })).toBe('invalid config: bgp.routerId: "fd00::1" is not an IPv4 address');
    expect(msg({ asn: 1, routerId: '300.1.1.1' })).toBe('invalid config: bgp.routerId: "300.1.1.1" is not an IPv4 address');
    expect(msg({ asn: 1, neighbors: [{ address: 'leaf', asn: 2 }] })).toBe('invalid config: bgp.neighbors[0].address: "leaf" is not an IP address');
    expect(msg({ asn: 1, neighbors: [{ address: '10.0.0.9' }] })).toBe('invalid config: bgp.neighbors[0].asn: is required');
    expect(
      msg({
        asn: 1,
        neighbors: [
          { address: '10.0.0.9', asn: 2 },
          { address: '10.0.0.9', asn: 3 },
        ],
      }),
    ).toBe('invalid config: bgp.neighbors: 10.0.0.9 is listed twice');
    expect(msg({ asn: 1, holdTime: 2 })).toBe('invalid config: bgp.holdTime: 2 is out of range 3..65535');
    expect(msg({ asn: 1, dir: 'run/bird' })).toMatch(/^invalid config: bgp\.dir: /);
    expect(thrown(() => parseBgp(new ConfigReader({ routing: 'bgp' }))).message).toMatch(/^invalid config: bgp: is required/);
  });
});

const plan: BirdPlan = {
  routerId: '192.168.50.1',
  asn: 65001,
  nodeIP: '192.168.50.1',
  underlayDev: 'eth0',
  podCIDR: '10.244.1.0/24',
  clusterCIDR: '10.244.0.0/16',
  neighbors: [
    { address: '192.168.50.254', asn: 65000, key: 'bgp.neighbors[0]', direct: true },
    { address: '192.168.60.3', asn: 65001, key: 'node node3', direct: false },
  ],
  holdTime: 3,
  restartTime: 5,
};

describe('the BIRD config', () => {
  const text = renderBirdConf(plan);
  it('announces only our pod CIDR, learns only other pod CIDRs of the cluster, installs only what BGP learned', () => {
    expect(text).toContain('route 10.244.1.0/24 blackhole;');
    expect(text).toContain('if net ~ [ 10.244.0.0/16+ ] && net != 10.244.1.0/24 then accept;');
    expect(text).toContain('export where source = RTS_BGP;');
    expect(text.match(/export where proto = "tscni_pods";/g)).toHaveLength(2);
  });

  it('one session per neighbour, direct on the segment, multihop beyond; timers and graceful restart', () => {
    expect(sessionName('192.168.50.254')).toBe('n_192_168_50_254');
    const s = text.slice(text.indexOf('protocol bgp n_192_168_60_3'));
    expect(s).toMatch(/local 192\.168\.50\.1 as 65001;\n\s+neighbor 192\.168\.60\.3 as 65001;\n\s+multihop;/);
    expect(text).toMatch(/neighbor 192\.168\.50\.254 as 65000;\n\s+direct;\n\s+hold time 3;\n\s+keepalive time 1;/);
    expect(text).toContain('graceful restart time 5;');
    expect(text).toContain('graceful restart wait 5;');
  });
});

/** A stand-in for BIRD's control socket: the greeting, then the scripted answer of each command. */
async function fakeBird(answers: Record<string, string[]>): Promise<{ socket: string; close(): void; asked: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-bird-'));
  const socket = path.join(dir, 'bird.ctl');
  const asked: string[] = [];
  const srv = net.createServer((c) => {
    c.write('0001 BIRD 2.0.12 ready.\n');
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      const cmd = d.trim();
      asked.push(cmd);
      c.write((answers[cmd] ?? ['9001 syntax error']).join('\n') + '\n');
    });
  });
  await new Promise<void>((r) => srv.listen(socket, r));
  return {
    socket,
    asked,
    close: () => {
      srv.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const PROTOCOLS = [
  '2002-Name       Proto      Table      State  Since         Info',
  '1002-device1    Device     ---        up     14:48:16.918  ',
  ' tscni_pods Static     master4    up     14:48:16.918  ',
  ' n_192_168_50_254 BGP        ---        up     14:48:17.101  Established   ',
  ' n_192_168_60_3 BGP        ---        start  14:48:23.525  Active        Socket: Connection reset by peer',
  '0000 ',
];
const ROUTES = [
  '0001 BIRD 2.0.12 ready.',
  '1007-Table master4:',
  ' 10.244.1.0/24        blackhole [tscni_pods 14:48:16.918] * (200)',
  ' 10.244.2.0/24        unicast [n_192_168_50_254 14:48:17.200] * (100) [AS65002i]',
  '1008-\tType: BGP univ',
  '1007-10.244.3.0/24        unicast [n_192_168_50_254 14:48:17.200] * (100) [AS65003i]',
  '0000 ',
].slice(1);

describe('the control socket', () => {
  it('reads a command reply: codes, continuation lines, the end', async () => {
    const b = await fakeBird({ 'show protocols': PROTOCOLS, 'show route': ROUTES });
    try {
      const p = parseProtocols(await birdCommand(b.socket, 'show protocols'));
      expect(p.map((x) => [x.name, x.state, x.info])).toEqual([
        ['device1', 'up', ''],
        ['tscni_pods', 'up', ''],
        ['n_192_168_50_254', 'up', 'Established'],
        ['n_192_168_60_3', 'start', 'Active        Socket: Connection reset by peer'],
      ]);
      expect([...parseRoutePrefixes(await birdCommand(b.socket, 'show route'))].sort()).toEqual(['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
      await expect(birdCommand(b.socket, 'nonsense')).rejects.toThrow(/"nonsense": syntax error/);
    } finally {
      b.close();
    }
  });

  it('no BIRD there: says it is not running', async () => {
    await expect(birdCommand('/nonexistent/bird.ctl', 'show protocols')).rejects.toThrow('BIRD at /nonexistent/bird.ctl: not running (ENOENT)');
  });
});

describe('CHECK in BGP mode', () => {
  const peer = (n: number) => ({ nodeIP: `192.168.50.${n}`, podCIDR: `10.244.${n}.0/24`, key: `node node${n}` });
  const bgpPlan = (socket: string): BgpPlan => ({ bird: plan, expected: [peer(2), peer(3), peer(4)], leftOut: [], confFile: '', socket });

  it('names a session that is not Established, a route received but not installed, a route never received', async () => {
    const b = await fakeBird({ 'show protocols': PROTOCOLS, 'show route': ROUTES });
    try {
      expect(await bgpProblems(bgpPlan(b.socket), new Set(['10.244.2.0/24']))).toEqual([
        'BGP session with 192.168.60.3 (AS 65001, node node3) is not Established: start Active        Socket: Connection reset by peer',
        'route to 10.244.3.0/24 (node node3) was received over BGP but is not installed in the kernel',
        'no route to 10.244.4.0/24 (node node4) received over BGP',
      ]);
    } finally {
      b.close();
    }
  });

  it('no BIRD: one problem saying so, with the count of missing routes', async () => {
    expect(await bgpProblems(bgpPlan('/nonexistent/bird.ctl'), new Set(['10.244.2.0/24']))).toEqual([
      'BIRD at /nonexistent/bird.ctl: not running (ENOENT): is `tscni bgp run` running on this node? (2 peer route(s) missing)',
    ]);
  });
});
