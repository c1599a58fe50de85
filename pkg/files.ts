// Files and directories named by a config (ipam.dataDir, resolvConf, peersFile), with the kernel's answer told
// in words. Directories are made one component at a time with a plain mkdir: Node's recursive mkdir loops
// forever when mkdir answers ENOENT under a parent that exists, which procfs does. Files are read only when
// regular and up to a size: a FIFO would block the open, /dev/zero would never end.
import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrCode, invalidConfig } from './cni/errors';

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** What an errno means for an operation on a path, in words (the errno itself is added by fsError). */
export function errnoText(code: string | undefined, p: string, verb = ''): string {
  switch (code) {
    case 'ENOENT':
      // mkdir is only tried where the parent exists (makeDirs walks down from /)
      return verb === 'create' ? `${path.dirname(p)} exists, but its file system takes no new entries (procfs does this)` : 'no such file or directory';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOSPC':
      return 'no space left on device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'ELOOP':
      return 'too many levels of symbolic links';
    case 'ENAMETOOLONG':
      return 'file name too long';
    default:
      return 'failed';
  }
}

/** A CniError for a failed file operation: `cannot <verb> <path> (<key>): <words> (<ERRNO>)`. */
export function fsError(verb: string, p: string, e: unknown, key = '', code: number = ErrCode.IOFailure): CniError {
  return new CniError(code, `cannot ${verb} ${p}${key ? ` (${key})` : ''}: ${errnoWords(e, p, verb)}`);
}

/** `<words> (<ERRNO>)` for an fs error, its message otherwise. */
export function errnoWords(e: unknown, p: string, verb = ''): string {
  const errno = errnoOf(e);
  return errno ? `${errnoText(errno, p, verb)} (${errno})` : (e as Error).message;
}

/**
 * Walk dir's components from /, bounded by their number: an existing one must be a directory; `missing` gets
 * the first that does not exist and says whether to go on. makeDirs and probeDirs share it, so what ADD meets
 * and what STATUS reports are the same words.
 */
function walkDirs(dir: string, key: string, missing: (cur: string) => boolean): void {
  let cur = '/';
  for (const part of path.resolve(dir).split('/').filter(Boolean)) {
    cur = path.join(cur, part);
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(cur);
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw fsError('create', dir, e, key);
    }
    if (st && !st.isDirectory()) throw new CniError(ErrCode.IOFailure, `cannot create ${dir} (${key}): ${cur} is not a directory (ENOTDIR)`);
    if (!st && !missing(cur)) return;
  }
}

function mkdirOrThrow(cur: string, key: string, mode: number): void {
  try {
    fs.mkdirSync(cur, mode);
  } catch (e) {
    // made by a concurrent call meanwhile: fine, the walk checked the rest
    if (errnoOf(e) !== 'EEXIST') throw fsError('create', cur, e, key);
  }
}

/**
 * mkdir -p for a config-named directory (`key` names it in errors; `dir` is absolute, config readers check
 * that). The common case, the parent exists, is one mkdir.
 */
export function makeDirs(dir: string, key: string, mode = 0o755): void {
  try {
    fs.mkdirSync(dir, mode);
    return;
  } catch (e) {
    if (errnoOf(e) === 'EEXIST' && isDir(dir)) return;
  }
  walkDirs(dir, key, (cur) => (mkdirOrThrow(cur, key, mode), true));
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Would makeDirs(dir) and a store's writes inside it work? Answered by the kernel, leaving nothing behind and
 * touching no name the store uses: beside the first missing component (or in `probeIn` when the whole path
 * exists), a directory and a small file in it are made and removed again, as a store makes its lock and a
 * reservation. Errors read as makeDirs' would.
 */
export function probeDirs(dir: string, key: string, probeIn = path.dirname(dir)): void {
  let firstMissing: string | undefined;
  walkDirs(dir, key, (cur) => ((firstMissing = cur), false));
  const parent = firstMissing ? path.dirname(firstMissing) : probeIn;
  const probe = path.join(parent, `.tscni-probe-${process.pid}`);
  try {
    fs.rmSync(probe, { recursive: true, force: true }); // one a killed call with this pid left
    try {
      fs.mkdirSync(probe, 0o700);
    } catch (e) {
      throw firstMissing ? fsError('create', firstMissing, e, key) : fsError('write in', parent, e, key);
    }
    try {
      fs.writeFileSync(path.join(probe, 'f'), 'tscni write probe\n', { flag: 'wx', mode: 0o600 });
    } catch (e) {
      throw fsError('write in', firstMissing ?? parent, e, key);
    }
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

/**
 * A Node fs error as the CniError fsError makes, anything else unchanged. Errors of calls on a descriptor
 * carry no path: `where` names what was being written then.
 */
export function asIOFailure(e: unknown, where?: string): unknown {
  const n = e as NodeJS.ErrnoException;
  if (e instanceof CniError || !n?.code || !n.syscall) return e;
  if (!n.path) return where ? fsError(n.syscall === 'read' ? 'read' : 'write', where, e) : e;
  const verb =
    n.syscall === 'mkdir'
      ? 'create'
      : n.syscall === 'unlink' || n.syscall === 'rmdir'
        ? 'remove'
        : n.syscall === 'open' || n.syscall === 'write' || n.syscall === 'rename'
          ? 'write'
          : (n.syscall ?? 'use');
  return fsError(verb, n.path, e);
}

/**
 * A config-named file's text: a regular file of at most maxBytes. Opened non-blocking, so a FIFO named by
 * mistake cannot hold the call. Errors are code 7 naming the key: the file is part of the config.
 */
export function readConfigFile(p: string, key: string, maxBytes = 1 << 20): string {
  const bad = (why: string) => invalidConfig(key, `cannot read ${p}: ${why}`);
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw bad(errnoWords(e, p));
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw bad('not a regular file');
    if (st.size > maxBytes) throw bad(`${st.size} bytes, more than ${maxBytes}`);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    // bounded: a file that grows while read is cut at the size it had
    while (n < buf.length) {
      const got = fs.readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) break;
      n += got;
    }
    return buf.toString('utf8', 0, n);
  } catch (e) {
    throw e instanceof CniError ? e : bad(errnoWords(e, p));
  } finally {
    fs.closeSync(fd);
  }
}
