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

/** Write a file whole under a temporary name, then rename it into place: readers see all of it or none. */
export function writeWhole(file: string, data: Uint8Array, mode: number): boolean {
  const tmp = `${file}.${process.pid}`;
  try {
    fs.writeFileSync(tmp, data, { mode });
    fs.renameSync(tmp, file);
    return true;
  } catch {
    fs.rmSync(tmp, { force: true });
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
