// A part of tscni bundled apart from the plugins (build/<name>.js): code only an agent needs, such as the etcd
// client, so that no plugin call reads or compiles it. Inside the executable it is an asset compiled on demand;
// from a checkout it is the file beside the main bundle.
import * as path from 'path';
import * as vm from 'vm';
import { seaModule } from './rundir';

export function loadBundled<T>(name: string): T {
  const sea = seaModule();
  if (!sea) return require(path.join(__dirname, `${name}.js`)) as T;
  const source = sea.getAsset(`${name}.js`, 'utf8');
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: `${name}.js` });
  const module = { exports: {} as T };
  (script.runInThisContext() as (...a: unknown[]) => void)(module.exports, require, module, process.execPath, path.dirname(process.execPath));
  return module.exports;
}
