// sysctls: written straight to /proc/sys in our own namespace, through `sysctl` inside another one.
import * as fs from 'fs';
import { run } from '../exec';
import { CniError, ErrCode } from '../cni/errors';
import { inNetns } from './netns';

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

/**
 * Set sysctls; in our namespace by direct writes (skipping ones already right), in another with one spawn.
 * Keys use slashes so interface names with dots (cni0.100) stay unambiguous.
 */
export async function setSysctls(values: Record<string, string>, netns?: string): Promise<void> {
  const keys = Object.keys(values);
  if (keys.length === 0) return;
  if (!netns) {
    for (const k of keys) {
      if (readSysctl(k) === values[k]) continue;
      try {
        fs.writeFileSync(procPath(k), values[k]);
      } catch (e) {
        throw new CniError(ErrCode.KernelOperation, `failed to set sysctl ${k}=${values[k]}: ${(e as Error).message}`);
      }
    }
    return;
  }
  // sysctl(8) reads a/b/c keys as paths, so slashed keys keep dots in interface names intact
  const [file, args] = inNetns(netns, 'sysctl', ['-q', '-w', ...keys.map((k) => `${k}=${values[k]}`)]);
  await run(file, args);
}
