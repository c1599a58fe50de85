// Where the executable keeps what it unpacks or learns at run time (the netlink module, the warm code cache):
// root's runtime directory, else a per-user one in TMPDIR. Only directories no one else can write are used,
// since what is there gets loaded as code.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export function runDirs(): string[] {
  // TSCNI_RUN_DIR: tests give each run its own
  if (process.env.TSCNI_RUN_DIR) return [process.env.TSCNI_RUN_DIR];
  return ['/run/tscni', path.join(os.tmpdir(), `tscni-${process.getuid?.() ?? 0}`)];
}

/** A directory only we can write: made 0700 if missing, refused when another user owns it or may write in it. */
export function privateDir(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return false;
  }
  try {
    const st = fs.lstatSync(dir);
    return st.isDirectory() && st.uid === (process.getuid?.() ?? 0) && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/**
 * Write a file so a reader sees the old or the new content, never a half: a temporary file beside it, then a
 * rename. The temporary name starts with a dot and ends in .tmp: libcni loads only *.conf, *.conflist and
 * *.json from /etc/cni/net.d. Throws, leaving no temporary file behind.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, data, { mode });
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** writeFileAtomic for what is only a cache: whether it was written. */
export function writeWhole(file: string, data: Uint8Array, mode: number): boolean {
  try {
    writeFileAtomic(file, data, mode);
    return true;
  } catch {
    return false;
  }
}

export interface Sea {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
  getAsset(key: string, encoding: 'utf8'): string;
}

/** node:sea inside the executable; undefined from a checkout (node + bundle, tests). */
export function seaModule(): Sea | undefined {
  try {
    const sea = require('node:sea') as Sea;
    return sea.isSea() ? sea : undefined;
  } catch {
    return undefined;
  }
}
