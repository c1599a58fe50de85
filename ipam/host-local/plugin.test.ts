import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { parseNetConf } from '../../pkg/cni/skel';
import type { CmdArgs, Result } from '../../pkg/cni/types';
import { run } from '../../pkg/exec';
import { parseConfig } from './config';
import { processStart } from './lock';
import { killedProcess, writeHeldLock } from './lock-testing';
import { Store } from './store';
import { plugin } from './plugin';

let dataDir: string;
beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-hl-'));
});
afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

type Ipam = Record<string, unknown>;
const NET = 'net1';
const netDir = () => path.join(dataDir, NET);

function args(ipam: Ipam, id = 'c1', ifName = 'eth0', cniArgs: Record<string, string> = {}, extra: Record<string, unknown> = {}): CmdArgs {
  const raw = { cniVersion: '1.1.0', name: NET, type: 'host-local', ipam: { type: 'host-local', dataDir, ...ipam }, ...extra };
  const stdin = Buffer.from(JSON.stringify(raw));
  return { command: 'ADD', containerId: id, netns: '/x', ifName, args: cniArgs, path: [], stdin, conf: parseNetConf(stdin) };
}

const v4 = (s = '10.1.0.0/24', more: Ipam = {}): Ipam => ({ ranges: [[{ subnet: s, ...more }]] });
const addr = (r: Result): string[] => (r.ips ?? []).map((i) => i.address.split('/')[0]);

async function fails(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error('expected an error');
}

function ipFiles(): string[] {
  return fs
    .readdirSync(netDir())
    .filter((n) => /^[0-9a-f.:]+$/.test(n) && n !== 'lock')
    .sort();
}

/** Make a file look written long ago (a crashed writer). */
function age(p: string, ms: number): void {
  const t = (Date.now() - ms) / 1000;
  fs.utimesSync(p, t, t);
}

describe('host-local ADD', () => {
  test('result shape, file layout and content of the reference', async () => {
    const r = await plugin.add(args({ ...v4(), routes: [{ dst: '0.0.0.0/0' }] }));
    expect(r).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }], routes: [{ dst: '0.0.0.0/0' }] });
    expect(fs.readFileSync(path.join(netDir(), '10.1.0.2'), 'utf8')).toBe('c1\r\neth0');
    expect(fs.statSync(path.join(netDir(), '10.1.0.2')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(netDir()).mode & 0o777).toBe(0o755);
    expect(fs.readFileSync(path.join(netDir(), 'last_reserved_ip.0'), 'utf8')).toBe('10.1.0.2');
  });

  test('round-robin from last_reserved_ip + 1, skipping the gateway, wrapping, then exhausted with code 100', async () => {
    const ipam = v4('10.1.0.0/24', { rangeStart: '10.1.0.10', rangeEnd: '10.1.0.13', gateway: '10.1.0.11' });
    expect(addr(await plugin.add(args(ipam, 'a')))).toEqual(['10.1.0.10']);
    expect(addr(await plugin.add(args(ipam, 'b')))).toEqual(['10.1.0.12']);
    await plugin.del(args(ipam, 'a'));
    // .10 is free again, but round-robin goes on from .12
    expect(addr(await plugin.add(args(ipam, 'c')))).toEqual(['10.1.0.13']);
    expect(addr(await plugin.add(args(ipam, 'd')))).toEqual(['10.1.0.10']);
    const e = await fails(plugin.add(args(ipam, 'e')));
    expect(e.code).toBe(ErrCode.NoAddressAvailable);
    expect(e.message).toBe('no IP addresses available in range set: 10.1.0.10-10.1.0.13');
    expect(ipFiles()).toEqual(['10.1.0.10', '10.1.0.12', '10.1.0.13']);
  });

  test('several ranges in one set are walked in order', async () => {
    const ipam = {
      ranges: [
        [
          { subnet: '10.1.0.0/24', rangeStart: '10.1.0.5', rangeEnd: '10.1.0.5' },
          { subnet: '10.2.0.0/24', rangeStart: '10.2.0.7', rangeEnd: '10.2.0.8' },
        ],
      ],
    };
    const got = [];
    for (const id of ['a', 'b', 'c']) got.push(...addr(await plugin.add(args(ipam, id))));
    expect(got).toEqual(['10.1.0.5', '10.2.0.7', '10.2.0.8']);
    expect((await fails(plugin.add(args(ipam, 'd')))).message).toContain('10.1.0.5-10.1.0.5,10.2.0.7-10.2.0.8');
  });

  test('ADD repeated for the same container and ifname returns the same addresses', async () => {
    const ipam = { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/120' }]] };
    const first = await plugin.add(args(ipam));
    expect(addr(first)).toEqual(['10.1.0.2', 'fd00::2']);
    expect(await plugin.add(args(ipam))).toEqual(first);
    expect(addr(await plugin.add(args(ipam, 'c1', 'eth1')))).toEqual(['10.1.0.3', 'fd00::3']);
    expect(ipFiles()).toEqual(['10.1.0.2', '10.1.0.3', 'fd00::2', 'fd00::3']);
  });

  test('a failing range set releases what the others took', async () => {
    const ipam = { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.2.0.0/24', rangeStart: '10.2.0.5', rangeEnd: '10.2.0.5' }]] };
    await plugin.add(args(ipam, 'a'));
    const e = await fails(plugin.add(args(ipam, 'b')));
    expect(e.code).toBe(ErrCode.NoAddressAvailable);
    expect(ipFiles()).toEqual(['10.1.0.2', '10.2.0.5']);
  });

  test('requested IPs: CNI_ARGS, args.cni.ips, runtimeConfig.ips; each checked', async () => {
    const ipam = { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/120' }]] };
    const r = await plugin.add(args(ipam, 'a', 'eth0', { IP: '10.1.0.50' }, { runtimeConfig: { ips: ['fd00::50/120'] } }));
    expect(addr(r)).toEqual(['10.1.0.50', 'fd00::50']);
    expect(addr(await plugin.add(args(ipam, 'b', 'eth0', {}, { args: { cni: { ips: ['10.1.0.60'] } } })))).toEqual(['10.1.0.60', 'fd00::51']);

    const taken = await fails(plugin.add(args(ipam, 'c', 'eth0', { IP: '10.1.0.50' })));
    expect(taken.code).toBe(ErrCode.NoAddressAvailable);
    expect(taken.message).toContain('10.1.0.50');
    const outside = await fails(plugin.add(args(ipam, 'c', 'eth0', { IP: '10.9.0.1' })));
    expect(outside.message).toContain('requested IP 10.9.0.1 is not in any range set');
    const gw = await fails(plugin.add(args(ipam, 'c', 'eth0', {}, { runtimeConfig: { ips: ['10.1.0.1'] } })));
    expect(gw.message).toContain('runtimeConfig.ips[0]: requested IP 10.1.0.1 is the gateway');
    const two = await fails(plugin.add(args(ipam, 'c', 'eth0', { IP: '10.1.0.70,10.1.0.71' })));
    expect(two.message).toContain('both in range set');
    // nothing was left behind by the refused calls
    expect(ipFiles()).toEqual(['10.1.0.50', '10.1.0.60', 'fd00::50', 'fd00::51']);
  });

  test('unknown CNI_ARGS keys are refused unless IgnoreUnknown', async () => {
    const e = await fails(plugin.add(args(v4(), 'a', 'eth0', { FOO: '1' })));
    expect(e.code).toBe(ErrCode.InvalidEnv);
    expect(e.message).toContain('FOO');
    await plugin.add(args(v4(), 'a', 'eth0', { FOO: '1', IgnoreUnknown: '1', K8S_POD_NAME: 'p' }));
    expect(ipFiles()).toEqual(['10.1.0.2']);
  });

  test('dns from resolvConf', async () => {
    const rc = path.join(dataDir, 'resolv.conf');
    fs.writeFileSync(rc, 'nameserver 10.0.0.53\nsearch svc.local\noptions ndots:2\n');
    const r = await plugin.add(args({ ...v4(), resolvConf: rc }));
    expect(r.dns).toEqual({ nameservers: ['10.0.0.53'], search: ['svc.local'], options: ['ndots:2'] });
    const e = await fails(plugin.add(args({ ...v4(), resolvConf: path.join(dataDir, 'missing') }, 'b')));
    expect(e.message).toContain('ipam.resolvConf');
  });
});

describe('host-local DEL and CHECK', () => {
  test('DEL releases by container ID and ifname only, and succeeds when nothing matches', async () => {
    await plugin.add(args(v4(), 'c1', 'eth0'));
    await plugin.add(args(v4(), 'c1', 'eth1'));
    await plugin.del(args(v4(), 'c1', 'eth0'));
    expect(ipFiles()).toEqual(['10.1.0.3']);
    await plugin.del(args(v4(), 'c1', 'eth0'));
    await plugin.del(args(v4(), 'nobody', 'eth0'));
    await plugin.check(args(v4(), 'c1', 'eth1'));
    const e = await fails(plugin.check(args(v4(), 'c1', 'eth0')));
    expect(e.code).toBe(ErrCode.CheckFailed);
    expect(e.message).toContain('c1');
  });

  test('DEL and CHECK with no network directory', async () => {
    await plugin.del(args(v4()));
    expect(fs.existsSync(netDir())).toBe(false);
    expect((await fails(plugin.check(args(v4())))).code).toBe(ErrCode.CheckFailed);
  });

  test('CHECK wants an address in every range set', async () => {
    await plugin.add(args(v4()));
    const both = { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/120' }]] };
    const e = await fails(plugin.check(args(both)));
    expect(e.code).toBe(ErrCode.CheckFailed);
    expect(e.message).toContain('ipam.ranges[1] (fd00::1-fd00::ff)');
  });

  test('legacy files holding only the container ID: CHECK accepts them, DEL releases them', async () => {
    fs.mkdirSync(netDir(), { recursive: true });
    fs.writeFileSync(path.join(netDir(), '10.1.0.9'), 'old\n');
    await plugin.check(args(v4(), 'old', 'eth0'));
    await plugin.del(args(v4(), 'old', 'eth3'));
    expect(ipFiles()).toEqual([]);
  });
});

describe('host-local reservations are whole', () => {
  test("a reservation is linked from a complete temp file, which the call removes; a killed call's temp goes at the next call", async () => {
    const r = await plugin.add(args(v4(), 'a'));
    expect(addr(r)).toEqual(['10.1.0.2']);
    expect(fs.readdirSync(netDir()).sort()).toEqual(['10.1.0.2', 'last_reserved_ip.0']);
    expect(fs.statSync(path.join(netDir(), '10.1.0.2')).nlink).toBe(1);
    // what a call killed between writing its temp file and linking it leaves (its creation restamped the directory)
    fs.writeFileSync(path.join(netDir(), '.tscni-tmp.4194303'), 'x\r\neth0');
    fs.writeFileSync(path.join(netDir(), '.tscni-tmp.4194303.last'), '10.1.0');
    await plugin.add(args(v4(), 'b'));
    expect(fs.readdirSync(netDir()).sort()).toEqual(['10.1.0.2', '10.1.0.3', 'last_reserved_ip.0']);
    expect(fs.readFileSync(path.join(netDir(), 'last_reserved_ip.0'), 'utf8')).toBe('10.1.0.3');
  });
  test('a FIFO where a reservation belongs is no reservation, and no call blocks opening it', async () => {
    await plugin.add(args(v4(), 'a')); // .2
    const { execFileSync } = await import('child_process');
    execFileSync('mkfifo', [path.join(netDir(), '10.1.0.3')]);
    fs.utimesSync(netDir(), new Date(), new Date(0)); // the index is rebuilt: every file is read
    const r = await plugin.add(args(v4(), 'b'));
    expect(addr(r)).toEqual(['10.1.0.4']);
    await plugin.del({ ...args(v4(), 'b'), command: 'DEL' });
  });
});

describe('host-local index', () => {
  test('pods that came and went leave no bucket files behind: the index holds its meta and a bitmap', async () => {
    for (let i = 0; i < 40; i++) {
      await plugin.add(args(v4(), `churn${i}`));
      await plugin.del({ ...args(v4(), `churn${i}`), command: 'DEL' });
    }
    expect(fs.readdirSync(path.join(dataDir, `.tscni.${NET}.index`)).sort()).toEqual([expect.stringMatching(/^bm-/), 'meta']);
    expect(ipFiles()).toEqual([]);
  });

  test('files created, removed and rewritten behind its back, within the same clock tick', async () => {
    const ipam = v4('10.1.0.0/24', { rangeStart: '10.1.0.2', rangeEnd: '10.1.0.6' });
    await plugin.add(args(ipam, 'a')); // .2
    // another writer takes .3 right away (same jiffy as our stamp)
    fs.writeFileSync(path.join(netDir(), '10.1.0.3'), 'other\r\neth0');
    expect(addr(await plugin.add(args(ipam, 'b')))).toEqual(['10.1.0.4']);
    // and DEL finds its reservation although we never indexed it
    await plugin.del(args(ipam, 'other'));
    expect(fs.existsSync(path.join(netDir(), '10.1.0.3'))).toBe(false);
    // a file removed behind our back is free again; one handed to someone else is theirs
    fs.unlinkSync(path.join(netDir(), '10.1.0.2'));
    fs.unlinkSync(path.join(netDir(), '10.1.0.4'));
    fs.writeFileSync(path.join(netDir(), '10.1.0.4'), 'x\r\neth0');
    await plugin.del(args(ipam, 'b')); // must not remove x's file
    expect(ipFiles()).toEqual(['10.1.0.4']);
    await plugin.check(args(ipam, 'x'));
    expect(addr(await plugin.add(args(ipam, 'c')))).toEqual(['10.1.0.5']);
    expect(addr(await plugin.add(args(ipam, 'd')))).toEqual(['10.1.0.6']);
    expect(addr(await plugin.add(args(ipam, 'e')))).toEqual(['10.1.0.2']);
    expect(addr(await plugin.add(args(ipam, 'f')))).toEqual(['10.1.0.3']);
    expect((await fails(plugin.add(args(ipam, 'g')))).code).toBe(ErrCode.NoAddressAvailable);
  });

  test('what ADD and DEL write leaves the index current: the next call reads it, it does not rescan the directory', async () => {
    const sets = parseConfig(args(v4()).conf).rangeSets;
    const next = async () => {
      const s = (await Store.open(dataDir, NET, sets, { create: false }))!;
      await s.close();
      return s.rebuilt;
    };
    await plugin.add(args(v4(), 'a'));
    expect(await next()).toBe(false);
    await plugin.add(args(v4(), 'b'));
    await plugin.del({ ...args(v4(), 'a'), command: 'DEL' });
    expect(await next()).toBe(false);
    // a change behind its back (another writer) is noticed
    fs.writeFileSync(path.join(netDir(), '10.1.0.9'), 'other\r\neth0');
    expect(await next()).toBe(true);
  });

  test('a deleted or corrupted index is rebuilt from the files', async () => {
    await plugin.add(args(v4(), 'a'));
    const idx = path.join(dataDir, `.tscni.${NET}.index`);
    for (const f of fs.readdirSync(idx)) fs.writeFileSync(path.join(idx, f), 'garbage');
    expect(addr(await plugin.add(args(v4(), 'a')))).toEqual(['10.1.0.2']);
    fs.rmSync(idx, { recursive: true });
    expect(addr(await plugin.add(args(v4(), 'b')))).toEqual(['10.1.0.3']);
    await plugin.del(args(v4(), 'a'));
    expect(ipFiles()).toEqual(['10.1.0.3']);
  });
});

describe('host-local large and changing ranges', () => {
  test('an IPv6 /64 (too big for a bitmap) is probed from the cursor', async () => {
    const ipam = { ranges: [[{ subnet: 'fd00:1::/64' }]] };
    expect(addr(await plugin.add(args(ipam, 'a')))).toEqual(['fd00:1::2']);
    fs.writeFileSync(path.join(netDir(), 'fd00:1::3'), 'other\r\neth0');
    expect(addr(await plugin.add(args(ipam, 'b')))).toEqual(['fd00:1::4']);
    await plugin.status!(args(ipam));
    await plugin.del(args(ipam, 'a'));
    expect(ipFiles()).toEqual(['fd00:1::3', 'fd00:1::4']);
  });

  test('a runtime ipRanges set new to the index gets its bitmap from the directory', async () => {
    await plugin.add(args(v4('10.1.0.0/24', { rangeStart: '10.1.0.2', rangeEnd: '10.1.0.3' }), 'a'));
    const rt = { runtimeConfig: { ipRanges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.3', rangeEnd: '10.1.0.4' }]] } };
    // the runtime set and the configured one overlap: refused
    expect((await fails(plugin.add(args(v4(), 'b', 'eth0', {}, rt)))).message).toContain('overlaps');
    const ipam = { ranges: [[{ subnet: '10.2.0.0/24' }]] };
    expect(addr(await plugin.add(args(ipam, 'b', 'eth0', {}, rt)))).toEqual(['10.1.0.3', '10.2.0.2']);
    expect(addr(await plugin.add(args(ipam, 'c', 'eth0', {}, rt)))).toEqual(['10.1.0.4', '10.2.0.3']);
    // and the first config's bitmap was kept current by those calls
    expect((await fails(plugin.add(args(v4('10.1.0.0/24', { rangeStart: '10.1.0.2', rangeEnd: '10.1.0.3' }), 'd')))).code).toBe(ErrCode.NoAddressAvailable);
  });
});

describe('host-local torn files', () => {
  const ipam = v4('10.1.0.0/24', { rangeStart: '10.1.0.2', rangeEnd: '10.1.0.3' });

  test('a fresh empty file is never handed out (its writer may be mid-write)', async () => {
    fs.mkdirSync(netDir(), { recursive: true });
    fs.writeFileSync(path.join(netDir(), '10.1.0.2'), '');
    expect(addr(await plugin.add(args(ipam, 'a')))).toEqual(['10.1.0.3']);
    expect((await fails(plugin.add(args(ipam, 'b')))).code).toBe(ErrCode.NoAddressAvailable);
    expect((await fails(plugin.add(args(ipam, 'b', 'eth0', { IP: '10.1.0.2' })))).code).toBe(ErrCode.NoAddressAvailable);
    await plugin.gc!(args(ipam), []);
    expect(ipFiles()).toEqual(['10.1.0.2']);
  });

  test('an empty or NUL-filled file older than the grace period is reclaimed when the set is full', async () => {
    fs.mkdirSync(netDir(), { recursive: true });
    fs.writeFileSync(path.join(netDir(), '10.1.0.2'), '');
    fs.writeFileSync(path.join(netDir(), '10.1.0.3'), Buffer.alloc(8));
    age(path.join(netDir(), '10.1.0.2'), 120_000);
    age(path.join(netDir(), '10.1.0.3'), 120_000);
    await plugin.status!(args(ipam));
    expect(addr(await plugin.add(args(ipam, 'a')))).toEqual(['10.1.0.2']);
    expect(fs.readFileSync(path.join(netDir(), '10.1.0.2'), 'utf8')).toBe('a\r\neth0');
    expect(addr(await plugin.add(args(ipam, 'b', 'eth0', { IP: '10.1.0.3' })))).toEqual(['10.1.0.3']);
    expect((await fails(plugin.add(args(ipam, 'c')))).code).toBe(ErrCode.NoAddressAvailable);
  });
});

describe('host-local torn files filled in later', () => {
  test('a file the index saw empty and its writer filled since is found by DEL (filling does not restamp the directory)', async () => {
    const ipam = v4('10.1.0.0/24');
    await plugin.add(args(ipam, 'ours'));
    // another writer (the reference) created a file and our rebuild read it before its write landed
    fs.writeFileSync(path.join(netDir(), '10.1.0.50'), '');
    await plugin.add(args(ipam, 'ours2'));
    // ... and then wrote it: content only, the directory's mtime stays as our index recorded it
    const dirStat = fs.statSync(netDir());
    fs.writeFileSync(path.join(netDir(), '10.1.0.50'), 'theirs\r\neth0');
    fs.utimesSync(netDir(), dirStat.atime, dirStat.mtime);
    await plugin.del(args(ipam, 'theirs'));
    expect(ipFiles()).toEqual(['10.1.0.2', '10.1.0.3']);
  });
});

describe('host-local GC', () => {
  test('frees what is not in the valid attachments, skips lock, last_reserved_ip and the index', async () => {
    await plugin.add(args(v4(), 'keep', 'eth0'));
    await plugin.add(args(v4(), 'keep', 'eth1'));
    await plugin.add(args(v4(), 'gone', 'eth0'));
    fs.writeFileSync(path.join(netDir(), '10.1.0.100'), 'legacy');
    fs.writeFileSync(path.join(netDir(), '10.1.0.101'), 'legacy2');
    fs.writeFileSync(path.join(netDir(), 'lock'), '');
    await plugin.gc!(args(v4()), [
      { containerID: 'keep', ifname: 'eth0' },
      { containerID: 'legacy', ifname: 'eth7' },
    ]);
    expect(ipFiles()).toEqual(['10.1.0.100', '10.1.0.2']);
    expect(fs.existsSync(path.join(netDir(), 'lock'))).toBe(true);
    expect(fs.existsSync(path.join(netDir(), 'last_reserved_ip.0'))).toBe(true);
    // the index follows: the freed addresses are allocatable, the kept one still found by DEL
    await plugin.del(args(v4(), 'keep', 'eth0'));
    expect(ipFiles()).toEqual(['10.1.0.100']);
    await plugin.gc!(args(v4()), []);
    expect(ipFiles()).toEqual([]);
    expect(fs.existsSync(path.join(dataDir, `.tscni.${NET}.index`, 'meta'))).toBe(true);
  });
});

describe('host-local STATUS', () => {
  test('code 50 when a range set is exhausted, ok again after a release', async () => {
    const ipam = { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.2.0.0/24', rangeStart: '10.2.0.2', rangeEnd: '10.2.0.3' }]] };
    await plugin.status!(args(ipam));
    await plugin.add(args(ipam, 'a'));
    await plugin.status!(args(ipam));
    await plugin.add(args(ipam, 'b'));
    const e = await fails(plugin.status!(args(ipam)));
    expect(e.code).toBe(ErrCode.NotAvailable);
    expect(e.message).toContain('10.2.0.2-10.2.0.3');
    await plugin.del(args(ipam, 'a'));
    await plugin.status!(args(ipam));
  });

  test('a gateway inside the range is not counted as free', async () => {
    const ipam = v4('10.1.0.0/24', { rangeStart: '10.1.0.1', rangeEnd: '10.1.0.2' });
    await plugin.add(args(ipam, 'a'));
    expect((await fails(plugin.status!(args(ipam)))).code).toBe(ErrCode.NotAvailable);
  });

  test('code 50 when the dataDir cannot be written', async () => {
    const e = await fails(plugin.status!(args({ ...v4(), dataDir: '/proc/sys/tscni-test' })));
    expect(e.code).toBe(ErrCode.NotAvailable);
    expect(e.message).toContain('ipam.dataDir');
  });

  test('STATUS and ADD agree on a dataDir that cannot be made: procfs, a file in the path; the words say why', async () => {
    const file = path.join(dataDir, 'a-file');
    fs.writeFileSync(file, 'x');
    for (const [bad, why] of [
      [
        '/proc/tscni-test-x',
        'cannot create /proc/tscni-test-x (ipam.dataDir): /proc exists, but its file system takes no new entries (procfs does this) (ENOENT)',
      ],
      [path.join(file, 'sub'), `cannot create ${file}/sub/${NET} (ipam.dataDir): ${file} is not a directory (ENOTDIR)`],
    ]) {
      const added = await fails(plugin.add(args({ ...v4(), dataDir: bad })));
      expect(added).toMatchObject({ code: ErrCode.IOFailure, message: why });
      const status = await fails(plugin.status!(args({ ...v4(), dataDir: bad })));
      expect(status).toMatchObject({ code: ErrCode.NotAvailable, message: `host-local: ${why}` });
    }
    // a writable dataDir that does not exist yet is ready, and STATUS does not create it
    await plugin.status!(args({ ...v4(), dataDir: path.join(dataDir, 'later') }));
    expect(fs.existsSync(path.join(dataDir, 'later'))).toBe(false);
  });
});

describe('host-local paths must be absolute', () => {
  test.each([
    ['dataDir', '0.1.0'],
    ['dataDir', 'var/lib/cni'],
    ['resolvConf', 'resolv.conf'],
  ])('ipam.%s %j: code 7 naming the key, on every verb, nothing written', async (key, value) => {
    const cwd = process.cwd();
    for (const verb of ['add', 'del', 'check', 'status'] as const) {
      const e = await fails((plugin[verb] as (a: CmdArgs) => Promise<unknown>)(args({ ...v4(), [key]: value })));
      expect(e).toMatchObject({ code: ErrCode.InvalidConfig, message: `invalid config: ipam.${key}: ${JSON.stringify(value)} is not an absolute path` });
    }
    expect(fs.existsSync(path.join(cwd, value))).toBe(false);
  });
});

describe('host-local across processes', () => {
  const bundle = path.join(os.tmpdir(), `tscni-hl-test-${process.pid}.js`);
  beforeAll(async () => {
    await run('npx', ['esbuild', path.join(__dirname, '../../plugins/main.ts'), '--bundle', '--platform=node', `--outfile=${bundle}`, '--log-level=warning']);
  }, 60_000);
  afterAll(() => fs.rmSync(bundle, { force: true }));

  test('concurrent ADDs from several processes never hand out an address twice', async () => {
    const conf = JSON.stringify({
      cniVersion: '1.0.0',
      name: NET,
      type: 'host-local',
      ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.1.0.0/24', rangeEnd: '10.1.0.13' }]] },
    });
    const call = (id: string) =>
      run(process.execPath, [bundle, 'host-local'], {
        input: conf,
        allowFailure: true,
        env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: '/x', CNI_IFNAME: 'eth0', CNI_PATH: '/x' },
      });
    // 16 contenders for 12 addresses (.2 to .13)
    const rs = await Promise.all(Array.from({ length: 16 }, (_, i) => call(`p${i}`)));
    const ok = rs.filter((r) => r.exitCode === 0).map((r) => (JSON.parse(r.stdout) as Result).ips![0].address);
    const refused = rs.filter((r) => r.exitCode !== 0).map((r) => (JSON.parse(r.stdout) as { code: number }).code);
    expect(ok).toHaveLength(12);
    expect(new Set(ok).size).toBe(12);
    expect(refused).toEqual([100, 100, 100, 100]);
    expect(ipFiles()).toHaveLength(12);
    for (const f of ipFiles()) expect(fs.readFileSync(path.join(netDir(), f), 'utf8')).toMatch(/^p\d+\r\neth0$/);
  }, 60_000);

  /** The network's lock as a holder leaves it: the lock directory and the record naming the holder. */
  function holdLock(pid: number, start: string): void {
    fs.mkdirSync(netDir(), { recursive: true });
    writeHeldLock(path.join(dataDir, `.tscni.${NET}.lock`), pid, start);
  }

  const addWithin = (seconds: number) =>
    run(process.execPath, [bundle, 'host-local'], {
      input: JSON.stringify({ cniVersion: '1.0.0', name: NET, type: 'host-local', ipam: { type: 'host-local', dataDir, timeoutSeconds: seconds, ...v4() } }),
      allowFailure: true,
      env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'after', CNI_NETNS: '/x', CNI_IFNAME: 'eth0', CNI_PATH: '/x' },
    });

  test('a lock whose holder was killed is taken over at once, not after it goes stale (10 s, past this budget of 3 s)', async () => {
    const dead = await killedProcess();
    holdLock(dead.pid, dead.start);
    const r = await addWithin(3);
    expect({ code: r.exitCode, out: r.stdout }).toMatchObject({ code: 0 });
    expect(ipFiles()).toEqual(['10.1.0.2']);
    expect(fs.existsSync(path.join(dataDir, `.tscni.${NET}.lock`))).toBe(false);
  });

  test('a lock whose holder lives is waited for; past ipam.timeoutSeconds the call answers code 11 naming the wait', async () => {
    holdLock(process.pid, processStart('self')!);
    const r = await addWithin(1);
    expect(r.exitCode).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      code: ErrCode.TryAgainLater,
      msg: `gave up after 1 s (ipam.timeoutSeconds) while waiting for the lock ${dataDir}/.tscni.${NET}.lock`,
    });
    expect(fs.existsSync(path.join(dataDir, `.tscni.${NET}.lock`))).toBe(true);
    expect(ipFiles()).toEqual([]);
  });
});
