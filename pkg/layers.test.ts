// The layer rules of eslint.config.js fail when broken: each import below is linted as if it were a file of the
// repository at that path (nothing is written), with the project's own ESLint config.
import * as path from 'path';
import { ESLint } from 'eslint';

const ROOT = path.join(__dirname, '..');
let eslint: ESLint;
beforeAll(() => {
  // the config handed over as loaded: ESLint's own loading is a dynamic import, which jest's VM refuses
  eslint = new ESLint({ cwd: ROOT, overrideConfigFile: true, overrideConfig: require('../eslint.config.js') });
});

/** The rule IDs and messages ESLint reports for `code` as the file at `file`. */
async function lint(file: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return r.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

describe('layer rules', () => {
  test('pkg/ imports neither plugins/ nor ipam/', async () => {
    expect(await lint('pkg/wiring/probe.ts', "export { plugin } from '../../plugins/bridge/bridge';\n")).toEqual([
      expect.stringMatching(/^import-x\/no-restricted-paths: .* pkg\/ is the library/),
    ]);
    expect(await lint('pkg/probe.ts', "export { plugin } from '../ipam/host-local/plugin';\n")).toEqual([expect.stringMatching(/pkg\/ is the library/)]);
  });

  test('only the doors spawn: a plugin or a plan importing pkg/exec fails', async () => {
    expect(await lint('plugins/probe.ts', "export { run } from '../pkg/exec';\n")).toEqual([
      expect.stringMatching(/^import-x\/no-restricted-paths: .* only pkg\/ip, pkg\/nat/),
    ]);
    expect(await lint('pkg/wiring/probe.ts', "export { run } from '../exec';\n")).toEqual([expect.stringMatching(/only pkg\/ip, pkg\/nat/)]);
    expect(await lint('pkg/ip/probe.ts', "export { run } from '../exec';\n")).toEqual([]);
  });

  test('only pkg/ip and pkg/nat use the netlink door', async () => {
    expect(await lint('pkg/fabric/probe.ts', "export { inNetns } from '../netlink/nl';\n")).toEqual([
      expect.stringMatching(/^import-x\/no-restricted-paths: .* only pkg\/ip and pkg\/nat carry out kernel operations/),
    ]);
    expect(await lint('pkg/nat/probe.ts', "export { inNetns } from '../netlink/nl';\n")).toEqual([]);
  });

  test('an import cycle fails', async () => {
    // pkg/wiring/bridgepod.ts imports ./bridge: a bridge.ts importing bridgepod closes the loop
    expect(await lint('pkg/wiring/bridge.ts', "export { addBridgePod } from './bridgepod';\n")).toEqual([expect.stringMatching(/^import-x\/no-cycle: /)]);
  });
});
