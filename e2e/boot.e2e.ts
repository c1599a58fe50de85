// The executable's entry (plugins/boot.ts): the bundle compiled with a code cache that the first call of each
// plugin and verb on a node warms. Each test gives the executable its own run directory (TSCNI_RUN_DIR); the
// trace (TSCNI_TRACE=1) says what the cache did.
import * as fs from 'fs';
import * as path from 'path';
import { World, type Netns } from './lib/world';

const world = new World();
afterAll(() => world.cleanup());

describe('code cache: learned by the first call of a verb, used by the next, never trusted blindly', () => {
  let node: Netns;
  const conf = () => ({
    cniVersion: '1.1.0',
    name: 'bootnet',
    type: 'bridge',
    bridge: 'boot0',
    isGateway: true,
    ipam: { type: 'host-local', subnet: '10.68.0.0/24', dataDir: world.tmpDir('ipam') },
  });

  beforeAll(async () => {
    node = await world.node('boot');
  });

  async function add(runDir: string, label: string) {
    const ns = await world.pod(label);
    const r = await world.cni(node, {
      command: 'ADD',
      containerId: world.containerId(label),
      netns: ns,
      config: conf(),
      env: { TSCNI_RUN_DIR: runDir, TSCNI_TRACE: '1' },
    });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).ips).toHaveLength(1);
    return r.stderr.split('\n').filter((l) => l.startsWith('tscni-trace code cache:'));
  }

  const cacheFiles = (dir: string) => fs.readdirSync(dir).filter((f) => /^code-.*\.cache$/.test(f));

  it('the first ADD writes the cache (0600, in a 0700 directory it made); the second starts warm and writes nothing', async () => {
    const dir = path.join(world.tmpDir('run'), 'tscni');
    expect(await add(dir, 'b1')).toEqual([expect.stringMatching(/learned bridge ADD/)]);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const [file] = cacheFiles(dir);
    expect(fs.statSync(path.join(dir, file)).mode & 0o777).toBe(0o600);
    const before = fs.statSync(path.join(dir, file)).mtimeMs;
    expect(await add(dir, 'b2')).toEqual([expect.stringMatching(/warm for bridge ADD/)]);
    expect(fs.statSync(path.join(dir, file)).mtimeMs).toBe(before);
  });

  it.each([
    ['cut short', (b: Buffer) => b.subarray(0, b.length - 5000)],
    ['with a header that is not ours', (b: Buffer) => Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.from('{x}'), b])],
    [
      'made for another source',
      (b: Buffer) => Buffer.concat([b.subarray(0, 4 + b.readUInt32LE(0)), Buffer.from(b.subarray(4 + b.readUInt32LE(0))).fill(0, 8, 12)]),
    ],
  ])('a cache %s is not used: the call still succeeds and learns anew', async (what, damage) => {
    const dir = path.join(world.tmpDir('run'), 'tscni');
    const label = `c${what.length}`;
    await add(dir, `${label}a`);
    const file = path.join(dir, cacheFiles(dir)[0]);
    fs.writeFileSync(file, damage(fs.readFileSync(file)));
    const lines = await add(dir, `${label}b`);
    expect(lines[lines.length - 1]).toMatch(/learned bridge ADD/);
    expect(await add(dir, `${label}c`)).toEqual([expect.stringMatching(/warm for bridge ADD/)]);
  });

  it('a run directory others may write is not used: nothing is written there and the call succeeds', async () => {
    const dir = world.tmpDir('open');
    fs.chmodSync(dir, 0o777);
    expect(await add(dir, 'd1')).toEqual([]);
    expect(cacheFiles(dir)).toEqual([]);
  });

  it('VERSION never reads or writes the cache', async () => {
    const dir = path.join(world.tmpDir('run'), 'tscni');
    const r = await world.cni(node, {
      command: 'VERSION',
      containerId: 'v',
      netns: '/dev/null',
      config: conf(),
      env: { TSCNI_RUN_DIR: dir, TSCNI_TRACE: '1' },
    });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).not.toMatch(/code cache/);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
