// The protocol core through a real executable (build/bin/host-local), as a runtime calls it: clean env,
// config on stdin, run inside a node namespace. Every failure must be one spec error object on stdout, exit 1.
import * as fs from 'fs';
import { isIP } from 'net';
import { pluginBinDir } from './lib/bins';
import { run } from '../pkg/exec';
import { cni, defaultBinDir, World, type CniOptions, type CniResult, type Netns } from './lib/world';

const ALL_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

describe('skel: protocol core through the host-local executable', () => {
  const world = new World();
  afterAll(() => world.cleanup());
  let node: Netns;
  let pod: Netns;
  let binDir: string;
  let dataDir: string;

  // host-local is an IPAM plugin: called directly it reads its settings from the ipam key
  const netconf = (over: Record<string, unknown> = {}) => ({
    cniVersion: '1.0.0',
    name: 'skelnet',
    type: 'host-local',
    ipam: { type: 'host-local', subnet: '10.66.0.0/24', dataDir },
    ...over,
  });
  const call = (o: Partial<CniOptions> & { config: CniOptions['config'] }): Promise<CniResult> =>
    cni(node, { command: 'ADD', containerId: world.containerId(), netns: pod, binDir, plugin: 'host-local', ...o });

  /** The spec error shape: exactly one JSON object on stdout, nothing else, exit 1. */
  function expectError(r: CniResult, code: number, msg?: RegExp): void {
    expect(r.exitCode).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const e = JSON.parse(lines[0]);
    expect(Object.keys(e).sort()).toEqual(expect.arrayContaining(['cniVersion', 'code', 'msg']));
    expect(Object.keys(e).every((k) => ['cniVersion', 'code', 'msg', 'details'].includes(k))).toBe(true);
    expect(e.code).toBe(code);
    if (msg) expect(e.msg).toMatch(msg);
    expect(r.stdout).not.toMatch(/\n\s+at /); // no stack trace
  }
  // no address is held: reservation files are named by the address (last_reserved_ip.N and locks may stay)
  const storeIsEmpty = () => !fs.existsSync(`${dataDir}/skelnet`) || fs.readdirSync(`${dataDir}/skelnet`).filter((f) => isIP(f) !== 0).length === 0;

  beforeAll(async () => {
    binDir = await pluginBinDir('host-local');
    node = await world.node('node');
    pod = await world.pod('pod');
    dataDir = world.tmpDir('ipam');
  });

  it('VERSION answers with every supported version, in the config version asked for', async () => {
    const r = await call({ command: 'VERSION', config: { cniVersion: '0.4.0' }, containerId: '', netns: '' });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.json.cniVersion).toBe('0.4.0');
    expect(r.json.supportedVersions).toEqual(expect.arrayContaining(ALL_VERSIONS));
    const bare = await call({ command: 'VERSION', config: '', containerId: '', netns: '' });
    expect(bare.exitCode).toBe(0);
    expect(bare.json.supportedVersions).toEqual(expect.arrayContaining(ALL_VERSIONS));
  });

  it('the built executable needs no node: an ELF file that answers VERSION with no PATH at all', async () => {
    if (binDir !== defaultBinDir()) return void console.warn('skel: dev copy in use (needs node); self-containment not checked');
    const fd = fs.openSync(fs.realpathSync(`${binDir}/host-local`), 'r');
    const magic = Buffer.alloc(4);
    fs.readSync(fd, magic, 0, 4, 0);
    fs.closeSync(fd);
    expect(magic.toString('latin1')).toBe('\x7fELF');
    const r = await run('env', ['-i', 'CNI_COMMAND=VERSION', `${binDir}/host-local`], { input: '', allowFailure: true, env: {} });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).supportedVersions).toEqual(expect.arrayContaining(ALL_VERSIONS));
  });

  it('without CNI_COMMAND prints an about text to stderr, nothing to stdout, and exits 0', async () => {
    const r = await call({ command: '', omitEnv: ['CNI_COMMAND'], config: netconf() });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/CNI/);
    expect(r.stderr).toMatch(/1\.1\.0/);
  });

  it('malformed JSON is a decode error (6)', async () => {
    expectError(await call({ config: '{"cniVersion": "1.0.0", "name": ' }), 6);
    expect(storeIsEmpty()).toBe(true);
  });

  it('an unsupported cniVersion is an incompatible-version error (1)', async () => {
    expectError(await call({ config: netconf({ cniVersion: '9.9.9' }) }), 1, /9\.9\.9/);
    expectError(await call({ config: netconf({ cniVersion: '0.2.0' }) }), 1);
  });

  it('missing CNI_CONTAINERID is an invalid-env error (4) naming it', async () => {
    expectError(await call({ config: netconf(), omitEnv: ['CNI_CONTAINERID'] }), 4, /CNI_CONTAINERID/);
    expectError(await call({ config: netconf(), containerId: '' }), 4, /CNI_CONTAINERID/);
    expect(storeIsEmpty()).toBe(true);
  });

  it('a bad ifname (too long, or with "/") is an invalid-env error (4)', async () => {
    expectError(await call({ config: netconf(), ifName: 'eth0123456789012' }), 4, /CNI_IFNAME/);
    expectError(await call({ config: netconf(), ifName: 'a/b' }), 4, /CNI_IFNAME/);
    expectError(await call({ config: netconf(), ifName: '..' }), 4, /CNI_IFNAME/);
    expect(storeIsEmpty()).toBe(true);
  });

  it('a container ID with "../" is an invalid-env error (4)', async () => {
    expectError(await call({ config: netconf(), containerId: '../../etc/x' }), 4, /CNI_CONTAINERID/);
    expectError(await call({ config: netconf(), command: 'DEL', containerId: '../x' }), 4, /CNI_CONTAINERID/);
    expect(storeIsEmpty()).toBe(true);
  });

  it('CHECK below 0.4.0 is refused as incompatible (1)', async () => {
    expectError(await call({ command: 'CHECK', config: netconf({ cniVersion: '0.3.1' }) }), 1, /CHECK/);
  });

  it('an unknown CNI_COMMAND is an invalid-env error (4)', async () => {
    expectError(await call({ command: 'FROB', config: netconf() }), 4, /FROB/);
  });

  it('errors are written in the config version', async () => {
    const r = await call({ config: netconf({ cniVersion: '0.4.0' }), containerId: '' });
    expectError(r, 4);
    expect(r.json.cniVersion).toBe('0.4.0');
  });

  it('ADD prints the result in the config version (0.3.1 with ip version, 1.0.0 without); DEL prints nothing', async () => {
    const id = world.containerId('v');
    const old = await call({ config: netconf({ cniVersion: '0.3.1' }), containerId: id });
    expect(old.exitCode).toBe(0);
    expect(old.stdout.trim().split('\n')).toHaveLength(1);
    expect(old.json.cniVersion).toBe('0.3.1');
    expect(old.json.ips[0]).toMatchObject({ version: '4', address: expect.stringMatching(/^10\.66\.0\.\d+\/24$/) });
    const id2 = world.containerId('v');
    const cur = await call({ config: netconf(), containerId: id2 });
    expect(cur.exitCode).toBe(0);
    expect(cur.json.cniVersion).toBe('1.0.0');
    expect(cur.json.ips[0].version).toBeUndefined();
    expect(storeIsEmpty()).toBe(false);
    for (const [cid, v] of [
      [id, '0.3.1'],
      [id2, '1.0.0'],
    ]) {
      const del = await call({ command: 'DEL', config: netconf({ cniVersion: v }), containerId: cid });
      expect(del.exitCode).toBe(0);
      expect(del.stdout).toBe('');
    }
    expect(storeIsEmpty()).toBe(true);
  });
});
