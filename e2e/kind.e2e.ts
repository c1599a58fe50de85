// kind e2e: e2e/kind/run.sh per mode (a 3-node kind cluster, the DaemonSet of conf/kubernetes/tscni.yaml,
// pod-to-pod, pod-to-service and pod-to-outside checks). It runs only where `kind`, kubectl and a Docker engine
// that answers `docker info` exist (probed by e2e/kind/probe.ts from the globalSetup); elsewhere every mode is
// skipped with the precise reason, never passed. TSCNI_KIND_MODES="host-gw vxlan" picks modes.
import * as path from 'path';
import { run } from '../pkg/exec';
import { KIND_SKIP_ENV } from './kind/probe';

const MODES = (process.env.TSCNI_KIND_MODES ?? 'host-gw vxlan ptp').split(/[\s,]+/).filter(Boolean);
const SCRIPT = path.join(__dirname, 'kind', 'run.sh');
// cluster creation, image pulls, the checks and the deletion: minutes, not seconds
const PER_MODE_MS = 20 * 60_000;

const probed = process.env[KIND_SKIP_ENV];
const skip = probed === undefined ? `availability not probed (the e2e globalSetup, e2e/lib/global-setup.ts, did not run)` : probed;
if (skip) console.log(`kind e2e skipped: ${skip}`);
const d = skip ? describe.skip : describe;

d('kind e2e (e2e/kind/run.sh)', () => {
  test.each(MODES)(
    '%s: every check passes on a 3-node kind cluster',
    async (mode) => {
      const r = await run('bash', [SCRIPT, mode], { allowFailure: true, timeout: PER_MODE_MS });
      process.stdout.write(`${r.stdout}\n${r.stderr.split('\n').slice(-30).join('\n')}\n`);
      expect(r.stdout.split('\n').filter((l) => l.startsWith('FAIL '))).toEqual([]);
      expect(r.stdout).toMatch(new RegExp(`kind e2e ${mode}: [1-9]\\d* passed, 0 failed`));
      expect(r.exitCode).toBe(0);
    },
    PER_MODE_MS + 60_000,
  );
});
