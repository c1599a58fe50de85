// The lock of one network's store: proper-lockfile's lock directory, plus a record of who holds it so that a
// holder killed with SIGKILL does not stall every later call until its lock goes stale (10 s). The record
// exists only while its writer holds the lock: written after taking it, removed before releasing it (and at
// exit). A record that outlives its writer therefore means a holder that was killed. A waiter removes the lock
// only when its record names a process of the same pid namespace that no longer runs (pid and start time) and
// the lock directory is still the one that process made (inode, mtime, ctime); otherwise it waits, as
// proper-lockfile would, for the lock to be released or to go stale.
import * as fs from 'fs';
import { checkBudget, nowDoing, overBudget, remainingMs } from '../../pkg/cni/budget';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { fsError } from '../../pkg/files';
import onExit = require('../../pkg/shim/signal-exit');

/** how long a call waits for the network's lock (a crashed holder's goes stale after 10 s) */
const LOCK_WAIT_MS = 30_000;
const STALE_MS = 10_000;
/** dead holders' locks one call removes before it only waits */
const MAX_BREAKS = 3;

type Callback = (err: Error | null, res?: unknown) => void;
/**
 * proper-lockfile's fs, answered synchronously (what its lockSync does internally), keeping its retries:
 * each lock step otherwise goes through libuv's thread pool, which costs a cold process more than the work.
 */
const SYNC_FS = {
  rmdirSync: fs.rmdirSync, // its exit handler's
  ...Object.fromEntries(
    (['mkdir', 'realpath', 'stat', 'rmdir', 'utimes'] as const).map((m) => [
      m,
      (...args: unknown[]) => {
        const cb = args.pop() as Callback;
        let res: unknown;
        try {
          res = (fs[`${m}Sync`] as (...a: unknown[]) => unknown)(...args);
        } catch (e) {
          return cb(e as Error);
        }
        cb(null, res);
      },
    ]),
  ),
};

/** Who made a lock directory: the process (pid, its start time, its pid namespace) and the directory itself. */
export interface LockOwner {
  pid: number;
  start: string;
  pidns: string;
  ino: string;
  mtimeNs: string;
  ctimeNs: string;
}

/** This process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined when gone. */
export function processStart(pid: number | 'self'): string | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // the command name (field 2) may hold spaces and parentheses: count from its closing one
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function pidNamespace(): string {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

function statLock(p: string): fs.BigIntStats | undefined {
  try {
    return fs.statSync(p, { bigint: true });
  } catch {
    return undefined;
  }
}

export function readOwner(ownerPath: string): LockOwner | undefined {
  try {
    const o = JSON.parse(fs.readFileSync(ownerPath, 'utf8')) as LockOwner;
    return typeof o.pid === 'number' && o.start && o.ino && o.mtimeNs && o.ctimeNs ? o : undefined;
  } catch {
    return undefined;
  }
}

/** The holder a record names has ended (same pid namespace only: another's pids mean nothing here). */
export function ownerGone(o: LockOwner, pidns = pidNamespace()): boolean {
  if (!o.pidns || o.pidns !== pidns) return false;
  return processStart(o.pid) !== o.start;
}

/** The lock directory a record names: the same inode with the same times (a freed inode is soon reused). */
function sameLock(st: fs.BigIntStats | undefined, o: LockOwner): boolean {
  return st !== undefined && String(st.ino) === o.ino && String(st.mtimeNs) === o.mtimeNs && String(st.ctimeNs) === o.ctimeNs;
}

export class NetworkLock {
  compromised?: Error;
  private unlock?: () => Promise<void>;
  private dropRecordAtExit?: () => void;
  private readonly ownerPath: string;
  private readonly breakPath: string;

  /** `target` is what is locked (the network directory); `lockPath` the lock directory beside the store. */
  constructor(
    private readonly target: string,
    readonly lockPath: string,
  ) {
    this.ownerPath = `${lockPath}.owner`;
    this.breakPath = `${lockPath}.break`;
  }

  async acquire(): Promise<void> {
    const lockfile = require('proper-lockfile') as typeof import('proper-lockfile');
    const opts = {
      lockfilePath: this.lockPath,
      realpath: false,
      fs: SYNC_FS,
      stale: STALE_MS,
      retries: 0,
      onCompromised: (e: Error) => {
        this.compromised = e;
      },
    };
    // A holder keeps the lock for a few ms. Our own backoff (1 ms growing to 10 ms, jittered): proper-lockfile's
    // `retries` precomputes and sorts a delay per retry, thousands of them, before the first attempt.
    // the call's budget may end the wait first: then it is what the error names
    const budgetFirst = remainingMs() < LOCK_WAIT_MS;
    const deadline = Date.now() + Math.min(LOCK_WAIT_MS, remainingMs());
    // a lock broken again and again (another waiter's holder killed each time) falls back to the timed wait
    let breaks = 0;
    for (let delay = 1; ; delay = Math.min(delay * 1.2, 10)) {
      try {
        this.unlock = await lockfile.lock(this.target, opts);
        this.recordOwner();
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw fsError('lock', this.lockPath, e, 'ipam.dataDir');
        if (breaks < MAX_BREAKS && this.breakIfOwnerGone()) {
          breaks++;
          continue;
        }
        const waiting = `waiting for the lock ${this.lockPath}`;
        nowDoing(waiting);
        checkBudget(waiting);
        if (Date.now() > deadline) {
          throw budgetFirst
            ? overBudget(waiting)
            : new CniError(ErrCode.TryAgainLater, `cannot lock ${this.lockPath}: held by another call for ${LOCK_WAIT_MS / 1000} s`);
        }
      }
      await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
    }
  }

  async release(): Promise<void> {
    const u = this.unlock;
    this.unlock = undefined;
    if (u) this.dropRecord();
    await u?.();
  }

  private dropRecord(): void {
    this.dropRecordAtExit?.();
    this.dropRecordAtExit = undefined;
    fs.rmSync(this.ownerPath, { force: true });
  }

  /**
   * Written in place after the lock is ours: a waiter that reads half a record (or none, after a kill mid-write)
   * cannot parse it and waits as for any lock, which is the safe side.
   */
  private recordOwner(): void {
    const st = statLock(this.lockPath);
    const start = processStart('self');
    if (!st || !start) return; // no /proc: waiters fall back to staleness
    const rec: LockOwner = { pid: process.pid, start, pidns: pidNamespace(), ino: String(st.ino), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
    try {
      fs.writeFileSync(this.ownerPath, JSON.stringify(rec), { mode: 0o600 });
    } catch {
      fs.rmSync(this.ownerPath, { force: true }); // a full disk: waiters fall back to staleness
      return;
    }
    // an exit with the lock held (SIGTERM, the budget's watchdog): proper-lockfile removes the lock, we the record
    this.dropRecordAtExit = onExit(() => fs.rmSync(this.ownerPath, { force: true }));
  }

  /**
   * Remove the lock when its holder is provably gone; true when the caller should try again at once. One
   * breaker at a time (a directory of its own), and the lock is checked again inside, so a lock just taken by
   * a live process is never removed.
   */
  private breakIfOwnerGone(): boolean {
    const o = readOwner(this.ownerPath);
    if (!o || !ownerGone(o)) return false;
    const same = () => sameLock(statLock(this.lockPath), o);
    if (!same()) return false;
    try {
      fs.mkdirSync(this.breakPath, 0o700);
    } catch {
      // another waiter is breaking it, or one was killed while it did (then its directory goes stale)
      const st = statLock(this.breakPath);
      if (st && Date.now() - Number(st.mtimeMs) > STALE_MS) fs.rmSync(this.breakPath, { recursive: true, force: true });
      return false;
    }
    let broken = false;
    try {
      if (same()) {
        // the record first: a new holder can only come after the rmdir, and must not meet the dead one's record
        fs.rmSync(this.ownerPath, { force: true });
        fs.rmdirSync(this.lockPath);
      }
      broken = true;
    } catch {
      // released meanwhile (then trying again finds it free), or not ours to remove (then only waiting helps)
      broken = !fs.existsSync(this.lockPath);
    } finally {
      fs.rmSync(this.breakPath, { recursive: true, force: true });
    }
    return broken;
  }
}
