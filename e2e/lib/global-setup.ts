// jest globalSetup of the e2e project: sweep namespaces and temp dirs that crashed earlier runs left behind, and
// decide once per run what the test files' synchronous test lists depend on (kind, which guest boots).
import type { Config } from '@jest/types';
import { describeVerdict, publishGuestVerdict, runIncludesGuests } from './guest';
import { sweepStale } from './world';

export default async function globalSetup(globalConfig: Config.GlobalConfig, projectConfig: Config.ProjectConfig): Promise<void> {
  // whether e2e/kind.e2e.ts can run (kind + a Docker engine): decided here because its test list is synchronous
  await (await import('../kind/probe')).probeKind();
  if (process.getuid?.() !== 0) return; // e2e needs root; the tests themselves say so
  const removed = await sweepStale();
  if (removed.length) process.stderr.write(`e2e: removed ${removed.length} stale namespace(s): ${removed.join(' ')}\n`);
  // booting a trivial guest takes seconds: only for runs that include a guest test file (the soak has none)
  if (projectConfig.displayName?.name === 'e2e' && runIncludesGuests(globalConfig.testPathPattern)) {
    process.stderr.write(`e2e: ${describeVerdict(await publishGuestVerdict())}\n`);
  }
}
