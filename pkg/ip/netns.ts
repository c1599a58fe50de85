// Network namespaces are given by path (/var/run/netns/x, /proc/PID/ns/net).
import * as fs from 'fs';

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
