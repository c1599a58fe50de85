// Pod churn on one network (bridge + host-local + masquerade, the shipped example): 1000 ADD+DEL cycles, each
// with a new pod netns. Nothing the node holds may grow with the number of pods that came and went: links,
// routes, nftables rules and elements, files of the store. The one bounded cache is host-local's index: a bucket
// file per container-ID hash bucket holding a reservation (at most 256), a bitmap per range set (at most 8
// kept) and its meta.
// Nor may a cycle get slower: the median of the last 100 cycles stays within 1.25x of the first 100's.
import { run } from '../../pkg/exec';
import { useWorld } from '../lib/world';
import { exampleConf, median, nodeState, report, scaled, storeProblems, timedCall, type NodeState } from './lib';

const CYCLES = scaled(1000);
const WINDOW = Math.min(100, Math.max(1, Math.floor(CYCLES / 4)));
const INDEX_BOUND = 256 + 8 + 1;

const world = useWorld();

test(`${CYCLES} ADD+DEL cycles: nothing grows, nothing slows`, async () => {
  const node = await world.node('node');
  await world.outside(node);
  const dataDir = world.tmpDir('ipam');
  const ex = exampleConf('10-tscni-bridge.conflist');
  const conf = { ...ex, ipam: { ...ex.ipam, dataDir } };
  const cycleMs: number[] = [];
  const states: Array<{ cycle: number } & NodeState> = [];
  const failures: string[] = [];
  for (let i = 0; i < CYCLES; i++) {
    const pod = await world.pod(`p${i}`);
    const containerId = world.containerId(`c${i}`);
    const add = await timedCall(() => world.cni(node, { command: 'ADD', containerId, netns: pod, config: conf }));
    const del = await timedCall(() => world.cni(node, { command: 'DEL', containerId, netns: pod, config: conf }));
    if (add.r.exitCode !== 0 || del.r.exitCode !== 0)
      failures.push(`cycle ${i}: ADD ${add.r.exitCode} ${add.r.stdout.trim()} DEL ${del.r.exitCode} ${del.r.stdout.trim()}`);
    cycleMs.push(add.ms + del.ms);
    await run('ip', ['netns', 'del', pod.name]);
    // after the first cycle the kernel still adds the link-local routes of the new bridge (IPv6 DAD, ~2 s)
    if (i === 0) await new Promise((r) => setTimeout(r, 3000));
    if (i === 0 || i === Math.floor(CYCLES / 2) || i === CYCLES - 1) states.push({ cycle: i + 1, ...(await nodeState(node, dataDir)) });
  }
  const [first, , last] = states.length === 3 ? states : [states[0], states[0], states[states.length - 1]];
  const firstMedian = median(cycleMs.slice(0, WINDOW));
  const lastMedian = median(cycleMs.slice(-WINDOW));
  const outsideIndex = (s: NodeState) => s.storeFiles - s.indexFiles;
  report('churn', {
    cycles: CYCLES,
    failures: failures.length,
    medianMs: { [`first ${WINDOW}`]: Math.round(firstMedian), [`last ${WINDOW}`]: Math.round(lastMedian), ratio: +(lastMedian / firstMedian).toFixed(3) },
    states: states.map((s) => ({
      cycle: s.cycle,
      links: s.links,
      routes: s.routes,
      nftRules: s.nftRules,
      nftElements: s.nftElements,
      reservations: s.reservations,
      storeFiles: s.storeFiles,
      indexFiles: s.indexFiles,
    })),
    indexBound: INDEX_BOUND,
  });
  expect(failures).toEqual([]);
  for (const k of ['links', 'routes', 'nftRules', 'nftElements', 'reservations'] as const) expect({ [k]: last[k] }).toEqual({ [k]: first[k] });
  expect(last.podVeths).toEqual([]);
  expect(outsideIndex(last)).toBe(outsideIndex(first));
  expect(last.indexFiles).toBeLessThanOrEqual(INDEX_BOUND);
  expect(last.indexFiles).toBe(first.indexFiles);
  expect(storeProblems(dataDir, String(ex.name))).toEqual([]);
  expect(lastMedian / firstMedian).toBeLessThanOrEqual(1.25);
}, 7_200_000);
