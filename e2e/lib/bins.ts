// Which plugin executables the e2e tests run: the real build (`make build` -> build/bin, or TSCNI_BIN_DIR),
// else a dev copy (esbuild bundle + one wrapper script per plugin name) so a checkout without the SEA build
// can still run the protocol tests (TSCNI_DEV_BUILD=1 forces it). The dev copy needs node, so it does not
// prove "no node on PATH".
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';
import { REPO_ROOT, defaultBinDir } from './world';

const DEV_DIR = path.join(REPO_ROOT, 'build', 'dev');
const DEV_PLUGINS = ['bridge', 'host-local', 'ptp', 'host-gw', 'ipip', 'vxlan'];

let devBuilt: Promise<string> | undefined;

/** A directory holding an executable named `plugin`: the real build when there is one, else a dev copy. */
export async function pluginBinDir(plugin = 'host-local'): Promise<string> {
  const real = defaultBinDir();
  // TSCNI_DEV_BUILD=1: test the current sources without the SEA build
  if (process.env.TSCNI_DEV_BUILD !== '1' && fs.existsSync(path.join(real, plugin))) return real;
  if (process.env.TSCNI_BIN_DIR) throw new Error(`TSCNI_BIN_DIR=${real} has no ${plugin}`);
  devBuilt ??= buildDev();
  return devBuilt;
}

async function buildDev(): Promise<string> {
  const js = path.join(DEV_DIR, 'tscni.js');
  const bin = path.join(DEV_DIR, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  await run(path.join(REPO_ROOT, 'node_modules', '.bin', 'esbuild'), [
    path.join(REPO_ROOT, 'plugins', 'main.ts'),
    '--bundle',
    '--platform=node',
    '--target=node20',
    '--log-level=warning',
    `--outfile=${js}`,
  ]);
  for (const p of DEV_PLUGINS) {
    const f = path.join(bin, p);
    fs.writeFileSync(f, `#!/bin/sh\nexec ${process.execPath} ${js} ${p} "$@"\n`, { mode: 0o755 });
  }
  return bin;
}
