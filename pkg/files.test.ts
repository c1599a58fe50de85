import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CniError, ErrCode } from './cni/errors';
import { run } from './exec';
import { asIOFailure, errnoText, fsError, makeDirs, probeDirs, readConfigFile } from './files';
import { thrown } from './testing';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-files-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('makeDirs', () => {
  it('makes every missing component, and is a no-op on an existing directory', () => {
    const d = path.join(tmp, 'a', 'b', 'c');
    makeDirs(d, 'ipam.dataDir');
    expect(fs.statSync(d).isDirectory()).toBe(true);
    expect(fs.statSync(d).mode & 0o777).toBe(0o755);
    makeDirs(d, 'ipam.dataDir');
    makeDirs(path.join(tmp, 'a', 'b', 'd'), 'ipam.dataDir');
    expect(fs.readdirSync(path.join(tmp, 'a', 'b')).sort()).toEqual(['c', 'd']);
  });

  // Node's mkdirSync(p, { recursive: true }) never returns here: mkdir answers ENOENT under /proc, which exists
  it('under /proc: answers at once with ENOENT in words, naming the key', () => {
    const e = thrown(() => makeDirs('/proc/tscni-test-x/net1', 'ipam.dataDir'));
    expect(e.code).toBe(ErrCode.IOFailure);
    expect(e.message).toBe(
      'cannot create /proc/tscni-test-x (ipam.dataDir): /proc exists, but its file system takes no new entries (procfs does this) (ENOENT)',
    );
  });

  it('a file in the path: ENOTDIR naming that file; the directory itself a file too', () => {
    const f = path.join(tmp, 'file');
    fs.writeFileSync(f, 'x');
    const e = thrown(() => makeDirs(path.join(f, 'sub', 'net1'), 'ipam.dataDir'));
    expect(e.message).toBe(`cannot create ${f}/sub/net1 (ipam.dataDir): ${f} is not a directory (ENOTDIR)`);
    expect(thrown(() => makeDirs(f, 'ipam.dataDir')).message).toBe(`cannot create ${f} (ipam.dataDir): ${f} is not a directory (ENOTDIR)`);
  });
});

describe('probeDirs: what makeDirs would meet, leaving nothing behind', () => {
  it('the same words as makeDirs for procfs and for a file in the path', () => {
    const f = path.join(tmp, 'file');
    fs.writeFileSync(f, 'x');
    for (const d of ['/proc/tscni-test-x/net1', path.join(f, 'sub', 'net1')]) {
      const made = thrown(() => makeDirs(d, 'ipam.dataDir'));
      const probed = thrown(() => probeDirs(d, 'ipam.dataDir'));
      expect(probed.message).toBe(made.message);
    }
  });

  it('a missing directory under a writable one passes and is not created; an existing one gets a write probe that is removed', () => {
    const d = path.join(tmp, 'data', 'net1');
    probeDirs(d, 'ipam.dataDir');
    expect(fs.existsSync(path.join(tmp, 'data'))).toBe(false);
    fs.mkdirSync(d, { recursive: true });
    probeDirs(d, 'ipam.dataDir', path.join(tmp, 'data'));
    expect(fs.readdirSync(path.join(tmp, 'data'))).toEqual(['net1']);
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('sysfs refuses new directories: the kernel says EPERM, in words', () => {
    const e = thrown(() => probeDirs('/sys/tscni-test-x/net1', 'ipam.dataDir'));
    expect(e.message).toMatch(/^cannot create \/sys\/tscni-test-x \(ipam\.dataDir\): (permission denied \(EPERM\)|permission denied \(EACCES\))$/);
  });
});

describe('errno in words', () => {
  it('each errno the store can meet has its own words', () => {
    const words = ['ENOENT', 'EROFS', 'ENOTDIR', 'EACCES', 'ENOSPC', 'EDQUOT', 'ELOOP', 'ENAMETOOLONG'].map((c) => errnoText(c, '/x/y', 'write'));
    expect(new Set(words).size).toBe(words.length);
    expect(errnoText('EROFS', '/x')).toBe('read-only file system');
    expect(errnoText('ENOSPC', '/x')).toBe('no space left on device');
    expect(errnoText('EACCES', '/x')).toBe('permission denied');
    expect(errnoText('ENOENT', '/x/y', 'read')).toBe('no such file or directory');
  });

  it('fsError and asIOFailure: code 5, path, key, words and errno', () => {
    const e = Object.assign(new Error('EROFS: read-only file system, open'), { code: 'EROFS', syscall: 'open', path: '/data/net1/10.0.0.2' });
    expect(fsError('create', '/data/net1/10.0.0.2', e).message).toBe('cannot create /data/net1/10.0.0.2: read-only file system (EROFS)');
    const io = asIOFailure(e) as CniError;
    expect(io).toMatchObject({ code: ErrCode.IOFailure, message: 'cannot write /data/net1/10.0.0.2: read-only file system (EROFS)' });
    const plain = new Error('not fs');
    expect(asIOFailure(plain)).toBe(plain);
  });
});

describe('readConfigFile', () => {
  it('reads a regular file', () => {
    const f = path.join(tmp, 'resolv.conf');
    fs.writeFileSync(f, 'nameserver 10.0.0.10\n');
    expect(readConfigFile(f, 'ipam.resolvConf')).toBe('nameserver 10.0.0.10\n');
  });

  it('a FIFO does not block, /dev/zero does not read forever, a big file is refused: code 7 naming the key', async () => {
    const fifo = path.join(tmp, 'fifo');
    await run('mkfifo', [fifo]);
    for (const [p, why] of [
      [fifo, 'not a regular file'],
      ['/dev/zero', 'not a regular file'],
      [tmp, 'not a regular file'],
      ['/nonexistent/resolv.conf', 'no such file or directory (ENOENT)'],
    ]) {
      expect(thrown(() => readConfigFile(p, 'ipam.resolvConf'))).toMatchObject({
        code: ErrCode.InvalidConfig,
        message: `invalid config: ipam.resolvConf: cannot read ${p}: ${why}`,
      });
    }
    const big = path.join(tmp, 'big');
    fs.writeFileSync(big, Buffer.alloc(2048, 'a'));
    expect(thrown(() => readConfigFile(big, 'peersFile', 1024)).message).toBe(`invalid config: peersFile: cannot read ${big}: 2048 bytes, more than 1024`);
  });
});
