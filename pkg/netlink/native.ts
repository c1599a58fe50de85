// The native part (pkg/netlink/native/netlink.c: socket and setns, nothing else), loaded once per call. Inside the
// executable it is an asset of the single-executable application: written once to a private run directory
// (pkg/rundir.ts) under a name made of its hash (computed at build time: the asset netlink.node.id), then
// dlopen'd. From a checkout (tests, the bench's bundle) it is build/native/netlink.node, made by scripts/native.sh.
import * as fs from 'fs';
import { privateDir, runDirs, seaModule, writeWhole, type Sea } from '../rundir';
import * as path from 'path';

export interface Native {
  /** a netlink socket of `protocol` (fd), or -errno */
  socket(protocol: number): number;
  /** setns(2) on this thread: 0 or -errno */
  setns(fd: number, nstype: number): number;
}

export const ASSET = 'netlink.node';
let loaded: Native | undefined;

/** The asset as a file named by its content (its id, computed at build time), in a private directory. */
function assetFile(sea: Sea): string {
  const name = `netlink-${sea.getAsset(`${ASSET}.id`, 'utf8').trim()}.node`;
  const dirs = runDirs();
  for (const dir of dirs) {
    if (!privateDir(dir)) continue;
    const file = path.join(dir, name);
    if (fs.existsSync(file) || writeWhole(file, Buffer.from(sea.getAsset(ASSET)), 0o500)) return file;
  }
  throw new Error(`no private directory to put the netlink module in (${dirs.join(', ')})`);
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
  const sea = seaModule();
  const file = sea ? assetFile(sea) : devFile();
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
