// The native part (pkg/netlink/native/netlink.c: socket and setns, nothing else), loaded once per call. Inside the
// executable it is an asset of the single-executable application: written once to a root-only directory under a
// name made of its hash (computed at build time, the asset netlink.node.id), then dlopen'd; a path another user could write is refused. From a checkout (tests, the
// bench's bundle) it is build/native/netlink.node, made by scripts/native.sh.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export interface Native {
  /** a netlink socket of `protocol` (fd), or -errno */
  socket(protocol: number): number;
  /** setns(2) on this thread: 0 or -errno */
  setns(fd: number, nstype: number): number;
}

export const ASSET = 'netlink.node';
/** where the asset is written: root's runtime directory, else a per-user one in TMPDIR */
const DIRS = ['/run/tscni', path.join(os.tmpdir(), `tscni-${process.getuid?.() ?? 0}`)];

let loaded: Native | undefined;

interface Sea {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
  getAsset(key: string, encoding: 'utf8'): string;
}

/** Inside the executable: the module's bytes, read only when its file is not there yet, and its id. */
function seaAsset(): { id: string; data: () => Buffer } | undefined {
  let sea: Sea;
  try {
    sea = require('node:sea') as Sea;
    if (!sea.isSea()) return undefined;
  } catch {
    return undefined;
  }
  return { id: sea.getAsset(`${ASSET}.id`, 'utf8').trim(), data: () => Buffer.from(sea.getAsset(ASSET)) };
}

/** A directory only we can write: made 0700 if missing, refused when another user owns it or may write in it. */
function privateDir(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return false;
  }
  const st = fs.lstatSync(dir);
  return st.isDirectory() && st.uid === (process.getuid?.() ?? 0) && (st.mode & 0o022) === 0;
}

/** The asset as a file named by its content (written whole, then renamed), in a private directory. */
function assetFile(asset: { id: string; data: () => Buffer }): string {
  const name = `netlink-${asset.id}.node`;
  for (const dir of DIRS) {
    if (!privateDir(dir)) continue;
    const file = path.join(dir, name);
    if (fs.existsSync(file)) return file;
    const tmp = `${file}.${process.pid}`;
    try {
      fs.writeFileSync(tmp, asset.data(), { mode: 0o500 });
      fs.renameSync(tmp, file);
      return file;
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  }
  throw new Error(`no private directory to put the netlink module in (${DIRS.join(', ')})`);
}

/** From a checkout: beside the bundle (build/native), or from the sources (pkg/netlink -> build/native). */
function devFile(): string {
  if (process.env.TSCNI_NETLINK_NODE) return process.env.TSCNI_NETLINK_NODE;
  const near = path.join(__dirname, 'native', ASSET);
  return fs.existsSync(near) ? near : path.resolve(__dirname, '..', '..', 'build', 'native', ASSET);
}

/** The native part; throws when it cannot be had (no asset, no private directory, a failed dlopen). */
export function native(): Native {
  if (loaded) return loaded;
  const asset = seaAsset();
  const file = asset ? assetFile(asset) : devFile();
  const m = { exports: {} as Native };
  process.dlopen(m, file);
  loaded = m.exports;
  return loaded;
}

let usable: boolean | undefined;

/** Whether the in-process door can be used: the native module loads (TSCNI_NETLINK=0 turns it off, for comparisons). */
export function netlinkUsable(): boolean {
  if (usable === undefined) {
    try {
      usable = process.env.TSCNI_NETLINK !== '0' && typeof native().socket === 'function';
    } catch {
      usable = false;
    }
  }
  return usable;
}

/** For tests that run both doors in one process: force the choice (undefined: back to the probe). */
export function setNetlinkForTest(on: boolean | undefined): void {
  usable = on;
}
