// Locating firewall tools without a spawn: a host may have only nft or only iptables, and a runtime
// may call us with a PATH lacking the sbin directories.
import * as fs from 'fs';
import * as path from 'path';

const FALLBACK = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin'];
const cache = new Map<string, string | undefined>();

/** Absolute path of an executable, or undefined when the host lacks it. */
export function findTool(name: string): string | undefined {
  if (cache.has(name)) return cache.get(name);
  let found: string | undefined;
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...FALLBACK];
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      found = p;
      break;
    } catch {
      /* next */
    }
  }
  cache.set(name, found);
  return found;
}

/** For tests: forget what was found (or pretend a tool is missing). */
export function setToolForTest(name: string, p: string | undefined): void {
  cache.set(name, p);
}

export function resetToolsForTest(): void {
  cache.clear();
}
