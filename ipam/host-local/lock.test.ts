import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { resetBudget, setBudget } from '../../pkg/cni/budget';
import { nowMs } from '../../pkg/clock';
import { ErrCode } from '../../pkg/cni/errors';
import { NetworkLock } from './lock';
import { killedProcess, writeHeldLock } from './lock-testing';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-lock-'));
});
/** The budget counts from process start: give this test `secs` from now. */
const budgetFromNow = (secs: number) => setBudget(nowMs() / 1000 + secs, 'test');
afterEach(() => {
  jest.restoreAllMocks();
  resetBudget();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A lock directory with a record naming a process that has ended (a holder killed with SIGKILL). */
async function deadHoldersLock(lockPath: string): Promise<void> {
  const dead = await killedProcess();
  writeHeldLock(lockPath, dead.pid, dead.start);
}

describe('NetworkLock', () => {
  test("a dead holder's lock is removed and taken at once", async () => {
    const lockPath = path.join(dir, '.tscni.n.lock');
    await deadHoldersLock(lockPath);
    budgetFromNow(2);
    const lock = new NetworkLock(dir, lockPath);
    await lock.acquire();
    expect(JSON.parse(fs.readFileSync(`${lockPath}.owner`, 'utf8')).pid).toBe(process.pid);
    await lock.release();
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  test("a dead holder's lock that cannot be removed is waited on until the budget ends it (code 11), not retried without end", async () => {
    const lockPath = path.join(dir, '.tscni.n.lock');
    await deadHoldersLock(lockPath);
    // Stand-in: root removes any file here, so the refusal (an immutable or read-only record) is simulated.
    const realFs = require('fs') as typeof fs;
    const rmSync = realFs.rmSync;
    jest.spyOn(realFs, 'rmSync').mockImplementation((p, o) => {
      if (String(p) === `${lockPath}.owner`) throw Object.assign(new Error('EPERM'), { code: 'EPERM' });
      return rmSync(p, o);
    });
    budgetFromNow(1);
    const lock = new NetworkLock(dir, lockPath);
    await expect(lock.acquire()).rejects.toMatchObject({ code: ErrCode.TryAgainLater, message: expect.stringContaining(`waiting for the lock ${lockPath}`) });
    expect(fs.existsSync(lockPath)).toBe(true);
  });
});
