// host-local's files in the reference layout: one file per reserved address in <dataDir>/<network>/, named by the
// address, holding "<containerID>\r\n<ifname>"; last_reserved_ip.<set>. The reference plugin reads and writes the
// same files, so both can take turns on one network. No index here (store.ts), no policy (allocator.ts).
import * as fs from 'fs';
import * as path from 'path';
import { checkBudget } from '../../pkg/cni/budget';
import { fsError } from '../../pkg/files';
import { type Family, formatIP, parseIP } from '../../pkg/ipnet';

/** Opens that a FIFO put where a reservation belongs cannot block (then it is no reservation). */
const READ_NONBLOCK = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;

export interface Owner {
  id: string;
  /** '' for a legacy file holding only the container ID */
  ifname: string;
}

export interface Entry extends Owner {
  ip: string;
}

/** A file on disk, as a full scan sees it; owner undefined means torn (empty or NUL-filled). */
export interface ScanEntry {
  ip: string;
  family: Family;
  addr: bigint;
  owner?: Owner;
  mtimeMs: number;
}

/** An empty or torn file whose last write is older than this is a crashed write nobody will finish. */
export const TORN_GRACE_MS = 60_000;
/** this call's temp files in the network directory: `.tscni-tmp.<pid>` (not an address, so no reader takes it for one) */
const TMP_PREFIX = '.tscni-tmp.';

export function ownerContent(o: Owner): string {
  return `${o.id}\r\n${o.ifname}`;
}

/** Parse a reservation file as the reference matches it (content trimmed); undefined when torn. */
export function parseOwner(content: string): Owner | undefined {
  const s = content.trim();
  if (s === '' || s.includes('\0')) return undefined;
  const i = s.indexOf('\r\n');
  if (i < 0) return { id: s, ifname: '' };
  return { id: s.slice(0, i).trim(), ifname: s.slice(i + 2).trim() };
}

/** A reservation file name: the canonical text of an address (what the reference writes). */
export function parseIPFileName(name: string): { family: Family; ip: bigint } | undefined {
  if (name === 'lock' || name.startsWith('last_reserved_ip.')) return undefined;
  const a = parseIP(name);
  return a && formatIP(a.family, a.ip) === name ? a : undefined;
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** One network's directory. Its writes are made under the network's lock (lock.ts). */
export class NetworkDir {
  /** what this call's temp file holds (it is written once per owner) */
  private tmpContent?: string;

  constructor(readonly path: string) {}

  private file(name: string): string {
    return path.join(this.path, name);
  }

  /** The addresses the directory's names stand for (undefined for other names). */
  addrs(): Array<{ family: Family; ip: bigint } | undefined> {
    return fs.readdirSync(this.path).map(parseIPFileName);
  }

  /** Read every reservation file: the reference's view of the directory. */
  scan(): ScanEntry[] {
    const out: ScanEntry[] = [];
    // one buffer for all reads: faster than readFileSync over tens of thousands of small files
    const buf = Buffer.allocUnsafe(4096);
    const names = fs.readdirSync(this.path);
    for (let i = 0; i < names.length; i++) {
      // bounded by the files, and by the call's budget: nothing is written until the scan is whole
      if (i % 4096 === 4095) checkBudget(`reading the reservations in ${this.path}`);
      const name = names[i];
      const a = parseIPFileName(name);
      if (!a) continue;
      const p = this.file(name);
      let content: string;
      try {
        const fd = fs.openSync(p, READ_NONBLOCK);
        try {
          const n = fs.readSync(fd, buf, 0, buf.length, 0);
          content = n < buf.length ? buf.toString('utf8', 0, n) : fs.readFileSync(fd, 'utf8');
        } finally {
          fs.closeSync(fd);
        }
      } catch (e) {
        if (errno(e) === 'ENOENT' || errno(e) === 'EISDIR' || errno(e) === 'ESPIPE') continue; // gone, or no file (a FIFO)
        throw e;
      }
      const owner = parseOwner(content);
      let mtimeMs = 0;
      if (!owner) {
        try {
          mtimeMs = fs.statSync(p).mtimeMs;
        } catch {
          continue;
        }
      }
      out.push({ ip: name, family: a.family, addr: a.ip, owner, mtimeMs });
    }
    return out;
  }

  /** Who a reservation file names; undefined when it is torn or gone. */
  readOwner(ip: string): Owner | undefined {
    try {
      const fd = fs.openSync(this.file(ip), READ_NONBLOCK);
      try {
        return parseOwner(fs.readFileSync(fd, 'utf8'));
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return undefined;
    }
  }

  readLastReserved(setIndex: number): { family: Family; ip: bigint } | undefined {
    try {
      return parseIP(fs.readFileSync(this.file(`last_reserved_ip.${setIndex}`), 'utf8').trim());
    } catch {
      return undefined;
    }
  }

  /** Renamed into place, so it is never seen half-written. */
  writeLastReserved(setIndex: number, ip: string): void {
    const last = this.file(`last_reserved_ip.${setIndex}`);
    const tmp = `${this.tmpPath()}.last`;
    try {
      fs.writeFileSync(tmp, ip, { mode: 0o600 });
      fs.renameSync(tmp, last);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw fsError('write', last, e);
    }
  }

  /** This process's temp file (under the lock no other tscni call writes in the directory). */
  private tmpPath(): string {
    return this.file(`${TMP_PREFIX}${process.pid}`);
  }

  /**
   * Create the reservation file for ip, whole: its content is written to a temp file that is then hard-linked
   * to the address's name (EEXIST: taken), so a call killed at any point leaves either no file or a complete
   * one. Where the file system has no hard links, O_EXCL create and write. False when the address is taken.
   */
  create(ip: string, owner: Owner): boolean {
    const p = this.file(ip);
    const content = ownerContent(owner);
    const tmp = this.tmpPath();
    if (this.tmpContent !== content) {
      try {
        fs.writeFileSync(tmp, content, { mode: 0o600 });
      } catch (e) {
        fs.rmSync(tmp, { force: true });
        throw fsError('write', tmp, e);
      }
      this.tmpContent = content;
    }
    try {
      fs.linkSync(tmp, p);
      return true;
    } catch (e) {
      if (errno(e) === 'EEXIST') return false;
      if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK'].includes(errno(e) ?? '')) throw fsError('create', p, e);
    }
    let fd: number;
    try {
      fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    } catch (e) {
      if (errno(e) === 'EEXIST') return false;
      throw fsError('create', p, e);
    }
    try {
      fs.writeSync(fd, content);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(p, { force: true });
      throw fsError('write', p, e);
    }
    fs.closeSync(fd);
    return true;
  }

  /** Remove a reservation file; already gone is fine. */
  remove(ip: string): void {
    try {
      fs.unlinkSync(this.file(ip));
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw fsError('remove', this.file(ip), e);
    }
  }

  /** Remove a torn file (empty or NUL) whose writer is provably gone: its last write is older than the grace. */
  removeStaleTorn(ip: string): boolean {
    const p = this.file(ip);
    try {
      if (Date.now() - fs.statSync(p).mtimeMs < TORN_GRACE_MS) return false;
      if (parseOwner(fs.readFileSync(p, 'utf8')) !== undefined) return false;
      fs.unlinkSync(p);
    } catch (e) {
      if (errno(e) !== 'ENOENT') return false;
    }
    return true;
  }

  /** This call's temp file; removing it changes the directory, so the store does it before its stamp. */
  removeTemp(): void {
    if (this.tmpContent === undefined) return;
    fs.rmSync(this.tmpPath(), { force: true });
    this.tmpContent = undefined;
  }

  /** Temp files of killed calls: under the lock no other tscni call is writing, so any but ours is dead. */
  removeDeadTemps(): void {
    for (const name of fs.readdirSync(this.path)) {
      if (name.startsWith(TMP_PREFIX) && !name.startsWith(`${TMP_PREFIX}${process.pid}`)) fs.rmSync(this.file(name), { force: true });
    }
  }
}
