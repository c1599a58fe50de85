// Locks as their holders leave them, for the lock's and the plugin's tests.
import * as fs from 'fs';
import { processStart } from './lock';

/** A process that ran and was killed with SIGKILL: its pid and the start time it had. */
export async function killedProcess(): Promise<{ pid: number; start: string }> {
  const { spawn } = await import('child_process');
  const holder = spawn('sleep', ['30']);
  await new Promise((r) => holder.once('spawn', r));
  const start = processStart(holder.pid!)!;
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  return { pid: holder.pid!, start };
}

/** The lock directory and the record naming its holder, as a holder writes them. */
export function writeHeldLock(lockPath: string, pid: number, start: string): void {
  fs.mkdirSync(lockPath);
  const st = fs.statSync(lockPath, { bigint: true });
  const rec = { pid, start, pidns: fs.readlinkSync('/proc/self/ns/pid'), ino: String(st.ino), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
  fs.writeFileSync(`${lockPath}.owner`, JSON.stringify(rec));
}
