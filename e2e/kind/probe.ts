// Can the kind e2e run here? Needs `kind` on PATH and a Docker engine that answers `docker info`. Probed once per
// jest run from the e2e globalSetup (async, so `docker info` itself is asked) and handed to e2e/kind.e2e.ts,
// whose test list must be decided synchronously, through the environment.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';

export const KIND_SKIP_ENV = 'TSCNI_KIND_SKIP';

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => {
    try {
      fs.accessSync(path.join(d || '.', cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why the kind e2e cannot run here, or '' when it can. */
export async function kindSkipReason(): Promise<string> {
  const why: string[] = [];
  if (!onPath('kind')) why.push('kind is not on PATH (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)');
  if (!onPath('kubectl')) why.push('kubectl is not on PATH');
  if (!onPath('docker')) why.push('docker (the client) is not on PATH');
  else {
    const r = await run('docker', ['info', '--format', '{{.ServerVersion}}'], { allowFailure: true, timeout: 20_000 }).catch((e: Error) => ({
      exitCode: -1,
      stdout: '',
      stderr: e.message,
    }));
    if (r.exitCode !== 0) {
      const msg = r.stderr.trim().split('\n').filter(Boolean).pop() ?? `exit ${r.exitCode}`;
      why.push(`no working Docker engine: \`docker info\` failed: ${msg}`);
    }
  }
  return why.join('; ');
}

/** For globalSetup: probe and publish the answer to the test files. */
export async function probeKind(): Promise<void> {
  process.env[KIND_SKIP_ENV] = await kindSkipReason();
}
