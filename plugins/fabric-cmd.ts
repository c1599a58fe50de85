// `tscni fabric sync --conf <file>`: reconcile this node's fabric now.
// `tscni fabric watch --conf <file> [--interval <sec>]`: re-sync when the peers file changes, and every interval.
import * as fs from 'fs';
import * as path from 'path';
import { CniError } from '../pkg/cni/errors';
import { parseFabricConf, syncFabric, type FabricConf } from '../pkg/fabric';

const MODES = ['host-gw', 'vxlan', 'ipip'];
const USAGE = 'usage: tscni fabric sync|watch --conf <conflist or conf file> [--interval <seconds>]';

/** The fabric plugin's config from a .conf or a .conflist (its first host-gw/vxlan/ipip plugin). */
export function loadFabricConf(file: string): FabricConf {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  if (Array.isArray(raw.plugins)) {
    const p = (raw.plugins as Record<string, unknown>[]).find((x) => MODES.includes(String(x?.type)));
    if (!p) throw new Error(`${file}: no ${MODES.join('/')} plugin in its plugins list`);
    raw = p;
  }
  const type = String(raw.type);
  if (!MODES.includes(type)) throw new Error(`${file}: type ${JSON.stringify(raw.type)} is not one of ${MODES.join(', ')}`);
  return parseFabricConf(raw, type);
}

async function syncOnce(file: string): Promise<void> {
  const conf = loadFabricConf(file);
  const { desired, report } = await syncFabric(conf);
  const direct = desired.paths.filter((p) => p.via === 'direct').length;
  process.stdout.write(
    `fabric ${desired.mode}: ${desired.paths.length} peer(s) (${direct} direct, ${desired.paths.length - direct} tunnelled), mtu ${desired.mtu}, ` +
      `${report.changed ? `${report.changed} change(s) in ${report.writes} write(s)` : 'unchanged'}\n`,
  );
}

function fail(e: unknown): void {
  const msg = e instanceof CniError || e instanceof Error ? e.message : String(e);
  process.stderr.write(`tscni fabric: ${msg}\n`);
}

export async function fabricMain(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  let file: string | undefined;
  let interval = 60;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--conf') file = rest[++i];
    else if (rest[i] === '--interval') interval = Number(rest[++i]);
    else {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
  }
  if (!file || !(verb === 'sync' || verb === 'watch') || !(interval > 0)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  if (verb === 'sync') {
    try {
      await syncOnce(file);
      return 0;
    } catch (e) {
      fail(e);
      return 1;
    }
  }
  return watch(file, interval);
}

/** Sync now, on every change of the peers file (or the conf file), and every `interval` seconds; stop on SIGTERM/SIGINT. */
async function watch(file: string, interval: number): Promise<number> {
  let running = false;
  let again = false;
  const sync = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    do {
      again = false;
      await syncOnce(file).catch(fail);
    } while (again);
    running = false;
  };
  let peersFile: string | undefined;
  try {
    peersFile = loadFabricConf(file).peersFile;
  } catch (e) {
    fail(e);
    return 1;
  }
  // watch directories, not files: editors and atomic writers replace the file (rename), which ends a file watch
  const targets = new Map<string, Set<string>>();
  for (const f of [file, peersFile]) {
    if (!f) continue;
    const dir = path.dirname(path.resolve(f));
    if (!targets.has(dir)) targets.set(dir, new Set());
    targets.get(dir)!.add(path.basename(f));
  }
  let timer: NodeJS.Timeout | undefined;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void sync(), 50);
  };
  const watchers = [...targets].map(([dir, names]) =>
    fs.watch(dir, (_ev, name) => {
      if (!name || names.has(name.toString())) soon();
    }),
  );
  await sync();
  const periodic = setInterval(() => void sync(), interval * 1000);
  return new Promise((resolve) => {
    const stop = () => {
      for (const w of watchers) w.close();
      clearInterval(periodic);
      clearTimeout(timer);
      resolve(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
