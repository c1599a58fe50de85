// The node's fabric stamp: what its last reconcile was made from, so a pod's ADD can skip a reconcile whose
// inputs have not changed. Its cost does not grow with the peers: the peers file is known by its identity
// (device, inode, size, modification time; agents and operators replace it by rename), the config by a hash,
// and the fabric device by its index and MTU (a device deleted or remade no longer matches). Whoever reconciles
// (ADD, `tscni fabric sync|watch`, `tscni k8s run`) writes it; CHECK and `tscni doctor` never trust it.
import * as fs from 'fs';
import * as path from 'path';
import { privateDir, runDirs } from '../rundir';
import { sha256Hex } from '../sha256';
import type { FabricConf } from './config';

export interface Stamp {
  key: string;
  /** the fabric MTU the reconcile planned: the pods' MTU */
  mtu: number;
}

const sys = (dev: string, f: string) => {
  try {
    return fs.readFileSync(`/sys/class/net/${dev}/${f}`, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/** The inputs of this node's fabric, as one hash. */
export function stampKey(conf: FabricConf): string {
  let file: unknown = null;
  if (conf.peersFile) {
    try {
      const st = fs.statSync(conf.peersFile, { bigint: true });
      file = [conf.peersFile, String(st.dev), String(st.ino), String(st.size), String(st.mtimeNs)];
    } catch {
      file = [conf.peersFile, 'missing'];
    }
  }
  const { mode, ...rest } = conf;
  const dev = conf.device ? [conf.device, sys(conf.device, 'ifindex') ?? 'missing', sys(conf.device, 'mtu')] : null;
  return sha256Hex(JSON.stringify([mode.name, rest, file, dev]));
}

/** One stamp per network namespace (a node; simulated nodes share the file system) and network. */
function stampFile(conf: FabricConf): string | undefined {
  let netns: string;
  try {
    netns = /\[(\d+)\]/.exec(fs.readlinkSync('/proc/thread-self/ns/net'))?.[1] ?? 'self';
  } catch {
    return undefined;
  }
  const dir = runDirs().find(privateDir);
  return dir && path.join(dir, `fabric-${netns}-${sha256Hex(`${conf.mode.name} ${conf.podCIDR}`).slice(0, 12)}.json`);
}

export function readStamp(conf: FabricConf): Stamp | undefined {
  const file = stampFile(conf);
  if (!file) return undefined;
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as Stamp;
    return typeof s.key === 'string' && typeof s.mtu === 'number' ? s : undefined;
  } catch {
    return undefined;
  }
}

export function writeStamp(conf: FabricConf, s: Stamp): void {
  const file = stampFile(conf);
  if (!file) return;
  // written in place, not renamed over: on ext4 a rename over a file waits for its data to reach the disk, and a
  // reader that catches it half-written only reconciles once more
  try {
    fs.writeFileSync(file, JSON.stringify(s), { mode: 0o600 });
  } catch {
    // no stamp: the next ADD reconciles
  }
}
