// A part of tscni bundled apart from the plugins (build/<name>.js): code only an agent needs, such as the etcd
// client, so that no plugin call reads or compiles it. Inside the executable it is an asset compiled on demand;
// from a checkout it is the file beside the main bundle.
import * as path from 'path';
import * as vm from 'vm';
import { seaModule } from './rundir';

/** A CommonJS bundle compiled inside the wrapper Node gives modules (with V8's code cache, when given one). */
export function compileBundle(source: string, filename: string, cachedData?: Buffer): vm.Script {
  return new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename, cachedData });
}

/** Run a compiled bundle as the executable's module; its exports. */
export function runBundle<T>(script: vm.Script): T {
  const module = { exports: {} as T };
  (script.runInThisContext() as (...a: unknown[]) => void)(module.exports, require, module, process.execPath, path.dirname(process.execPath));
  return module.exports;
}

export function loadBundled<T>(name: string): T {
  const sea = seaModule();
  if (!sea) return require(path.join(__dirname, `${name}.js`)) as T;
  return runBundle<T>(compileBundle(sea.getAsset(`${name}.js`, 'utf8'), `${name}.js`));
}
