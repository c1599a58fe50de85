// What the kernel says about an IPAM store it cannot use, as ADD and STATUS tell it: a read-only file system, a
// full one, no inodes left, no permission, procfs. Each case runs the built host-local in a private mount
// namespace (unshare -m) over a tmpfs mounted for it there (e2e/fixtures/with-tmpfs.sh), or as user nobody:
// the host's own mounts are never touched. No network namespaces are needed: host-local only writes files.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { run } from '../pkg/exec';
import { CLEAN_PATH, defaultBinDir } from './lib/world';

const HOST_LOCAL = path.join(defaultBinDir(), 'host-local');
const WITH_TMPFS = path.join(__dirname, 'fixtures', 'with-tmpfs.sh');
const NET = 'net1';
let tmp: string;

beforeAll(() => {
  if (!fs.existsSync(HOST_LOCAL)) throw new Error(`${HOST_LOCAL} is missing: run 'make build' first`);
});
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-t-store-'));
  fs.chmodSync(tmp, 0o755);
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Answer {
  rc: number;
  json: { code?: number; msg?: string; ips?: unknown[] };
  /** regular files on the tmpfs after the call */
  files: string[];
}

/** host-local `verb` with dataDir, optionally over a tmpfs at `mnt` (options) or as another user. */
async function call(verb: 'ADD' | 'STATUS' | 'DEL', dataDir: string, o: { tmpfs?: [string, string, ...string[]]; user?: number } = {}): Promise<Answer> {
  const conf = { cniVersion: '1.1.0', name: NET, type: 'host-local', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.1.0.0/24' }]] } };
  const env = { PATH: CLEAN_PATH, CNI_COMMAND: verb, CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' };
  let argv = [HOST_LOCAL];
  if (o.user !== undefined) argv = ['setpriv', `--reuid=${o.user}`, `--regid=${o.user}`, '--clear-groups', ...argv];
  if (o.tmpfs) argv = ['unshare', '-m', '--propagation', 'private', 'sh', WITH_TMPFS, ...o.tmpfs, '--', ...argv];
  const r = await run(argv[0], argv.slice(1), { input: JSON.stringify(conf), env, allowFailure: true });
  const files = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('tscni-tmpfs-file '))
    .map((l) => l.slice('tscni-tmpfs-file '.length));
  return { rc: r.exitCode, json: r.stdout.trim() ? JSON.parse(r.stdout) : {}, files };
}

/** ADD fails with code 5 and STATUS with code 50, both giving `reason`. Returns the ADD's answer. */
async function bothSay(dataDir: string, reason: RegExp, o: Parameters<typeof call>[2] = {}): Promise<Answer> {
  const add = await call('ADD', dataDir, o);
  expect(add).toMatchObject({ rc: 1, json: { code: 5, msg: expect.stringMatching(reason) } });
  const status = await call('STATUS', dataDir, o);
  expect(status).toMatchObject({ rc: 1, json: { code: 50, msg: expect.stringMatching(reason) } });
  expect(status.json.msg).toMatch(/^host-local: cannot /);
  return add;
}

test('a read-only file system: EROFS in words, from ADD and from STATUS', async () => {
  const mnt = path.join(tmp, 'mnt');
  fs.mkdirSync(mnt);
  await bothSay(path.join(mnt, 'data'), new RegExp(`^(host-local: )?cannot create ${mnt}/data \\(ipam\\.dataDir\\): read-only file system \\(EROFS\\)$`), {
    tmpfs: [mnt, 'ro'],
  });
});

test('a full file system: ENOSPC in words; the failed ADD leaves no reservation and no half-written index', async () => {
  const mnt = path.join(tmp, 'mnt');
  fs.mkdirSync(mnt);
  const add = await bothSay(path.join(mnt, 'data'), /: no space left on device \(ENOSPC\)$/, { tmpfs: [mnt, 'size=64k', 'fill'] });
  expect(add.files).toEqual([`${mnt}/fill`]);
});

test('no inodes left: ENOSPC when the network directory cannot be made', async () => {
  const mnt = path.join(tmp, 'mnt');
  fs.mkdirSync(mnt);
  await bothSay(mnt, new RegExp(`^(host-local: )?cannot create ${mnt}/${NET} \\(ipam\\.dataDir\\): no space left on device \\(ENOSPC\\)$`), {
    tmpfs: [mnt, 'nr_inodes=1'],
  });
});

test('no permission (user nobody under a root-owned directory): EACCES in words', async () => {
  const owned = path.join(tmp, 'root-only');
  fs.mkdirSync(owned, 0o755);
  await bothSay(path.join(owned, 'data'), new RegExp(`^(host-local: )?cannot create ${owned}/data \\(ipam\\.dataDir\\): permission denied \\(EACCES\\)$`), {
    user: 65534,
  });
  expect(fs.readdirSync(owned)).toEqual([]);
});

test('procfs (the mkdir Node loops on): ENOENT in words, at once, and DEL of nothing there succeeds', async () => {
  await bothSay(
    '/proc/tscni-test-x',
    /^(host-local: )?cannot create \/proc\/tscni-test-x \(ipam\.dataDir\): \/proc exists, but its file system takes no new entries \(procfs does this\) \(ENOENT\)$/,
  );
  expect(await call('DEL', '/proc/tscni-test-x')).toMatchObject({ rc: 0 });
});
