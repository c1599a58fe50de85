// sysctls: written straight to /proc/sys, in another namespace too when the netlink module can enter it (else
// through `sysctl` run inside it).
import * as fs from 'fs';
import { run } from '../exec';
import { CniError, ErrCode } from '../cni/errors';
import { netlinkUsable } from '../netlink/native';
import { inNetns as enterNetns } from '../netlink/nl';

/** key in dotted or slashed form: net.ipv4.ip_forward or net/ipv4/ip_forward */
function procPath(key: string): string {
  return '/proc/sys/' + (key.includes('/') ? key : key.replace(/\./g, '/'));
}

export function readSysctl(key: string): string | undefined {
  try {
    return fs.readFileSync(procPath(key), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Write sysctls of the netns this thread is in, skipping values already right; throws the first failure. */
export function writeSysctls(values: Record<string, string>): void {
  for (const [k, v] of Object.entries(values)) {
    if (readSysctl(k) === v) continue;
    try {
      fs.writeFileSync(procPath(k), v);
    } catch (e) {
      throw new CniError(ErrCode.KernelOperation, `failed to set sysctl ${k}=${v}: ${(e as Error).message}`);
    }
  }
}

/**
 * Set sysctls in our namespace or the one at `netns`. Keys use slashes so interface names with dots (cni0.100)
 * stay unambiguous.
 */
export async function setSysctls(values: Record<string, string>, netns?: string): Promise<void> {
  const keys = Object.keys(values);
  if (keys.length === 0) return;
  if (!netns) return writeSysctls(values);
  if (netlinkUsable()) return enterNetns(netns, () => writeSysctls(values));
  // sysctl(8) reads a/b/c keys as paths, so slashed keys keep dots in interface names intact
  await run('sysctl', ['-q', '-w', ...keys.map((k) => `${k}=${values[k]}`)], { netns });
}
