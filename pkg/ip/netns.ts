// Network namespaces are given by path (/var/run/netns/x, /proc/PID/ns/net).
import * as fs from 'fs';
import { run, type RunResult } from '../exec';

/** false when the path is gone (pod torn down, node rebooted); DEL treats that as "nothing left to remove". */
export function netnsExists(path: string): boolean {
  if (!path) return false;
  try {
    fs.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Our own namespace as a path, so `ip link add ... netns <path>` can send a peer back here. */
export function selfNetns(): string {
  return `/proc/${process.pid}/ns/net`;
}

/**
 * A program run inside a named namespace (`ip netns exec`), which also gives it that namespace's /sys: for a
 * whole program that reads sysfs, such as `tscni doctor` run for a node namespace.
 */
export function runInNamedNetns(name: string, argv: string[], timeoutMs: number): Promise<RunResult> {
  return run('ip', ['netns', 'exec', name, ...argv], { allowFailure: true, timeout: timeoutMs });
}
