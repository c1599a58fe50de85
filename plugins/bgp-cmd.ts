// `tscni bgp run --conf <conflist>`: the node agent of BGP routing (host-gw with "routing": "bgp"). It runs BIRD
// on a config rendered from the node and its neighbours (pkg/bgp/bird.ts): announce this node's pod CIDR, learn
// the others' into the kernel with BIRD's protocol. It follows the conf and the peers file (a full mesh's
// neighbours; what every other agent, the Kubernetes or the etcd one, writes), reloads BIRD when the rendered
// config changes, restarts it when it dies, and keeps the node's own fabric (forwarding) as `fabric sync` does.
// The plugins do only the local wiring at ADD and DEL.
import { syncFabric, type FabricConf } from '../pkg/fabric';
import { coalesced } from '../pkg/coalesce';
import { renderBirdConf } from '../pkg/bgp/bird';
import { birdFiles, planBgp } from '../pkg/bgp/plan';
import { superviseBird } from '../pkg/bgp/daemon';
import { leftOutLines } from '../pkg/fabric/plan';
import { leftOutWarner, loadFabricConf } from './fabric-cmd';
import { watchFiles } from './watch-files';

const USAGE = 'usage: tscni bgp run --conf <conflist or conf file with "routing": "bgp"> [--bird /usr/sbin/bird] [--interval <seconds>]';

function log(line: string): void {
  process.stderr.write(`tscni bgp: ${line}\n`);
}

export async function bgpMain(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  let file: string | undefined;
  let bird = '/usr/sbin/bird';
  let interval = 60;
  for (let i = 0; i < rest.length; i += 2) {
    const v = rest[i + 1];
    if (v === undefined) return usage();
    if (rest[i] === '--conf') file = v;
    else if (rest[i] === '--bird') bird = v;
    else if (rest[i] === '--interval' && Number(v) > 0) interval = Number(v);
    else return usage();
  }
  if (verb !== 'run' || !file) return usage();
  let conf: FabricConf;
  try {
    conf = loadFabricConf(file);
    if (!conf.bgp) throw new Error(`${file}: "routing" is not "bgp": nothing for this agent to do (tscni fabric watch keeps static routes)`);
  } catch (e) {
    log((e as Error).message);
    return 1;
  }
  const conf0 = conf;
  const supervisor = superviseBird({ bird, ...birdFiles(conf0), log });
  let applied = '';
  const warn = leftOutWarner(log);
  const round = coalesced(async () => {
    try {
      const c = loadFabricConf(file!);
      const { peers, underlay } = await syncFabric(c);
      const p = planBgp(c, peers, underlay);
      warn(leftOutLines(p));
      const text = renderBirdConf(p.bird);
      if (text === applied) return;
      await supervisor.apply(text);
      applied = text;
      log(
        `AS ${p.bird.asn}, router id ${p.bird.routerId}: announcing ${p.bird.podCIDR} to ${p.bird.neighbors.length} neighbour(s) ` +
          `(${p.bird.neighbors.map((n) => `${n.address} AS ${n.asn}`).join(', ') || 'none'}); expecting ${p.expected.length} peer route(s)`,
      );
    } catch (e) {
      log((e as Error).message);
    }
  });
  await round();
  let timer: NodeJS.Timeout | undefined;
  const unwatch = watchFiles([file, conf0.peersFile], () => {
    clearTimeout(timer);
    timer = setTimeout(() => void round(), 50);
  });
  const periodic = setInterval(() => void round(), interval * 1000);
  return new Promise((resolve) => {
    const stop = () => {
      unwatch();
      clearInterval(periodic);
      clearTimeout(timer);
      // BIRD's kernel routes stay (persist): a restarted agent takes over without a gap
      void supervisor.stop().then(() => resolve(0));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

function usage(): number {
  process.stderr.write(`${USAGE}\n`);
  return 2;
}
