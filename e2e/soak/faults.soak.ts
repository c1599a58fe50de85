// kill -9 at uniformly random points of ADD and DEL, as a runtime's timeout or an OOM kill would, for bridge,
// ptp and host-gw (a fabric mode). After each killed call the runtime's DEL follows (twice), sometimes after the
// pod's netns is gone. Afterwards the node must hold nothing of any pod: no veth, no reservation, no masquerade
// or macspoofchk element; every store file well-formed; and a fresh ADD must not wait on the killed calls' lock.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';
import { useWorld, type CniOptions, type Netns } from '../lib/world';
import { exampleConf, killedCall, median, nodeState, random, report, scaled, soakSeed, storeProblems, timedCall } from './lib';

const TRIALS = scaled(200);
const MODES = ['kill ADD', 'kill ADD, netns gone', 'kill DEL', 'kill DEL, netns gone'] as const;

interface Plugin {
  name: string;
  conf: (dataDir: string, node: Netns, world: ReturnType<typeof useWorld>) => Promise<Record<string, unknown>>;
}

const PLUGINS: Plugin[] = [
  { name: 'bridge', conf: async (dataDir) => withStore(exampleConf('10-tscni-bridge.conflist'), dataDir) },
  { name: 'ptp', conf: async (dataDir) => withStore(exampleConf('30-tscni-ptp.conflist'), dataDir) },
  {
    name: 'host-gw',
    conf: async (dataDir, node, world) => {
      const peer = await world.node('peer');
      const l = await world.link(node, peer, { subnet: '192.168.77.0/24' });
      const peersFile = path.join(world.tmpDir('peers'), 'peers.json');
      fs.writeFileSync(
        peersFile,
        JSON.stringify([
          { nodeIP: l.bIp, podCIDR: '10.244.2.0/24' },
          { nodeIP: '192.168.77.3', podCIDR: '10.244.3.0/24' },
        ]),
      );
      return withStore({ ...exampleConf('40-tscni-host-gw.conflist'), nodeIP: l.aIp, peersFile }, dataDir);
    },
  },
];

function withStore(conf: Record<string, any>, dataDir: string): Record<string, unknown> {
  return { ...conf, ipam: { ...conf.ipam, dataDir } };
}

describe.each(PLUGINS)('kill -9 during $name ADD and DEL', (p) => {
  const world = useWorld();
  const seed = soakSeed();
  const rand = random(seed);
  const failedDels: string[] = [];
  const modes: Record<string, number> = {};
  let node: Netns;
  let dataDir: string;
  let conf: Record<string, unknown>;
  let net: string;
  let typical = { add: 0, del: 0 };
  let killed = 0;

  beforeAll(async () => {
    node = await world.node('node');
    await world.outside(node);
    dataDir = world.tmpDir('ipam');
    conf = await p.conf(dataDir, node, world);
    net = String(conf.name);
  }, 60_000);

  const call = (o: Omit<CniOptions, 'config'>) => world.cni(node, { ...o, config: conf });

  it('typical ADD and DEL times, measured to place the kills', async () => {
    const adds: number[] = [];
    const dels: number[] = [];
    for (let i = 0; i < 5; i++) {
      const pod = await world.pod(`warm${i}`);
      const containerId = world.containerId('warm');
      const a = await timedCall(() => call({ command: 'ADD', containerId, netns: pod }));
      expect({ rc: a.r.exitCode, out: a.r.stdout }).toMatchObject({ rc: 0 });
      const d = await timedCall(() => call({ command: 'DEL', containerId, netns: pod }));
      expect(d.r.exitCode).toBe(0);
      adds.push(a.ms);
      dels.push(d.ms);
    }
    typical = { add: median(adds), del: median(dels) };
  }, 120_000);

  it(`${TRIALS} trials: every DEL after a kill succeeds, twice`, async () => {
    for (let i = 0; i < TRIALS; i++) {
      const mode = MODES[Math.floor(rand() * MODES.length)];
      modes[mode] = (modes[mode] ?? 0) + 1;
      const pod = await world.pod(`p${i}`);
      const containerId = world.containerId(`t${i}`);
      const gone = mode.endsWith('netns gone');
      if (mode.startsWith('kill ADD')) {
        if ((await killedCall(node, { command: 'ADD', containerId, netns: pod, config: conf }, rand() * typical.add)) === 'killed') killed++;
        if (gone) await run('ip', ['netns', 'del', pod.name]);
      } else {
        const a = await call({ command: 'ADD', containerId, netns: pod });
        if (a.exitCode !== 0) failedDels.push(`trial ${i}: the ADD before the killed DEL failed: ${a.stdout}`);
        if (gone) await run('ip', ['netns', 'del', pod.name]);
        if ((await killedCall(node, { command: 'DEL', containerId, netns: pod, config: conf }, rand() * typical.del)) === 'killed') killed++;
      }
      for (const again of ['DEL', 'DEL again']) {
        const d = await call({ command: 'DEL', containerId, netns: pod });
        if (d.exitCode !== 0) failedDels.push(`trial ${i} (${mode}) ${again}: ${d.stdout.trim()} ${d.stderr.trim()}`);
      }
      if (!gone) await run('ip', ['netns', 'del', pod.name]);
    }
    expect(failedDels).toEqual([]);
  }, 3_600_000);

  it('nothing of any pod is left; the store is well-formed; a fresh ADD is not held by a killed call', async () => {
    const state = await nodeState(node, dataDir);
    const problems = storeProblems(dataDir, net);
    const pod = await world.pod('fresh');
    const containerId = world.containerId('fresh');
    // a lock left by a killed holder would go stale only after 10 s: a budget of 5 s fails if the ADD waits for that
    const fresh = await timedCall(() =>
      world.cni(node, { command: 'ADD', containerId, netns: pod, config: { ...conf, ipam: { ...(conf.ipam as object), timeoutSeconds: 5 } } }),
    );
    const del = await call({ command: 'DEL', containerId, netns: pod });
    report(`faults-${p.name}`, {
      seed,
      trials: TRIALS,
      modes,
      killedBeforeTheEnd: killed,
      typicalMs: { add: Math.round(typical.add), del: Math.round(typical.del) },
      failedDels: failedDels.length,
      leaked: { veths: state.podVeths.length, reservations: state.reservations, nftElements: state.nftElements },
      storeProblems: problems,
      freshAddMs: Math.round(fresh.ms),
    });
    expect(state.podVeths).toEqual([]);
    expect(state.reservations).toBe(0);
    expect(state.nftElements).toBe(0);
    expect(problems).toEqual([]);
    expect({ rc: fresh.r.exitCode, out: fresh.r.stdout }).toMatchObject({ rc: 0 });
    expect(del.exitCode).toBe(0);
  }, 120_000);
});
