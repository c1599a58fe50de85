// The executable's entry point. The plugins are the bundle (build/tscni.js), carried as an asset and compiled
// here with the warmest V8 code cache at hand. V8 compiles a function the first time it runs, and a CNI call is
// a fresh process: with only the cache made at build time (what loading compiles, as Node's own SEA cache
// holds), every call compiles again the few hundred functions its verb runs. So the first call of each plugin
// and verb on a node leaves its compiled functions in a cache file in the private run directory, and later
// calls start with them (the scheme of Node 22's module.enableCompileCache, here for an executable on Node 20).
//
// V8 rejects a cache made by another V8, with other flags, for another source length, or cut short; it does not
// checksum the payload (release builds skip that). The file is trusted as the executable itself and the netlink
// module are: written whole by this program (then renamed) into a directory only root can write.
//
// Build mode, from scripts/build.sh: `node boot.js --code-cache <bundle> <out>` writes the build-time cache.
import * as fs from 'fs';
import * as path from 'path';
import * as vm from 'vm';
import { compileBundle, runBundle } from '../pkg/bundled';
import { privateDir, runDirs, seaModule, writeWhole, type Sea } from '../pkg/rundir';

const compile = (source: string, cachedData?: Buffer): vm.Script => compileBundle(source, 'tscni.js', cachedData);

/** The node's cache file: a header (length, then the JSON list of the plugin verbs it holds) and V8's data. */
interface Warm {
  file: string;
  keys: string[];
  data: Buffer;
}

function readWarm(file: string): Warm | undefined {
  try {
    const b = fs.readFileSync(file);
    const n = b.readUInt32LE(0);
    const keys = JSON.parse(b.subarray(4, 4 + n).toString('utf8')) as unknown;
    return Array.isArray(keys) ? { file, keys: keys.map(String), data: b.subarray(4 + n) } : undefined;
  } catch {
    return undefined;
  }
}

function encodeWarm(keys: string[], data: Buffer): Buffer {
  const head = Buffer.from(JSON.stringify(keys));
  const n = Buffer.alloc(4);
  n.writeUInt32LE(head.length);
  return Buffer.concat([n, head, data]);
}

function cacheFile(sea: Sea): string | undefined {
  const name = `code-${sea.getAsset('tscni.id', 'utf8').trim()}-${process.version}.cache`;
  const d = runDirs().find(privateDir);
  return d && path.join(d, name);
}

function trace(msg: string): void {
  if (process.env.TSCNI_TRACE === '1') process.stderr.write(`tscni-trace code cache: ${msg}\n`);
}

function run(sea: Sea): void {
  const source = sea.getAsset('tscni.js', 'utf8');
  // the build-time cache, read only when there is no warm one or it was rejected
  const shipped = () => Buffer.from(sea.getAsset('tscni.cache'));
  // a plugin's verb, or a subcommand of tscni (`fabric sync`, `doctor`): each warms the cache with what it runs
  const verb =
    process.env.CNI_COMMAND ??
    (process.argv[2] && !process.argv[2].startsWith('-')
      ? process.argv
          .slice(2, 4)
          .filter((a) => !a.startsWith('-'))
          .join(' ')
      : undefined);
  // VERSION runs almost nothing: the small build-time cache serves it best
  const file = verb && verb !== 'VERSION' ? cacheFile(sea) : undefined;
  const warm = file ? readWarm(file) : undefined;
  let script = compile(source, warm?.data ?? shipped());
  let keys = warm?.keys ?? [];
  if (script.cachedDataRejected) {
    trace(`${warm ? file : 'the build-time cache'} rejected`);
    if (warm) script = compile(source, shipped());
    keys = [];
  }
  const key = `${path.basename(process.argv0 || process.argv[0])} ${verb}`;
  if (file && !keys.includes(key)) {
    process.once('exit', () => {
      const ok = writeWhole(file, encodeWarm([...keys, key], script.createCachedData()), 0o600);
      trace(`${ok ? 'learned' : 'could not write'} ${key} (${file})`);
    });
  } else if (warm && keys.includes(key)) {
    trace(`warm for ${key}`);
  }
  runBundle(script);
}

const sea = seaModule();
if (sea) {
  run(sea);
} else if (process.argv[2] === '--code-cache' && process.argv[3] && process.argv[4]) {
  fs.writeFileSync(process.argv[4], compile(fs.readFileSync(process.argv[3], 'utf8')).createCachedData());
} else {
  process.stderr.write('usage: node boot.js --code-cache <bundle.js> <out> (the executable runs boot.js as its entry)\n');
  process.exitCode = 2;
}
