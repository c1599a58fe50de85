// What `tscni k8s` does to the node beyond writing files: give an old pod CIDR back when the Node's changed
// (the bridge's gateway address and the IPAM reservations, which would otherwise fail every later ADD), and
// remove everything of tscni's from the node on uninstall.
import * as fs from 'fs';
import * as path from 'path';
import { isHostLocal, NAME_PREFIX, plainType } from '../pkg/cni/names';
import { RTPROT_TSCNI, FABRIC_ALIAS } from '../pkg/fabric/types';
import { applyOps, readState, type IpRoute, type KernelOp } from '../pkg/ip/ops';
import { insideAny } from '../pkg/ipnet';

const DEFAULT_DATA_DIR = '/var/lib/cni/networks';
/** rt_protos: the protocol BIRD gives the routes it installs */
const RTPROT_BIRD = 12;

/** What a rendered conflist says about this node's pod network, for giving it back. */
export interface NodeNet {
  /** the conflist's network name: host-local's store and the NAT rules are keyed by it */
  name: string;
  podCIDR: string;
  /** the pods' bridge (bridge-based modes); undefined for ptp */
  bridge?: string;
  /** host-local's dataDir; undefined when the IPAM is not ours */
  dataDir?: string;
}

/** The pod network of a rendered conflist and the pod CIDR it was rendered for. */
export function nodeNetOf(conflist: Record<string, unknown>, podCIDR: string): NodeNet {
  const plugins = Array.isArray(conflist.plugins) ? (conflist.plugins as Record<string, unknown>[]) : [conflist];
  const main = plugins[0] ?? {};
  const ipam = (main.ipam ?? {}) as { type?: string; dataDir?: string };
  const bridged = plainType(String(main.type)) !== 'ptp';
  return {
    name: String(conflist.name ?? ''),
    podCIDR,
    bridge: bridged ? String(main.bridge ?? 'cni0') : undefined,
    dataDir: isHostLocal(ipam.type) ? (ipam.dataDir ?? DEFAULT_DATA_DIR) : undefined,
  };
}

/**
 * The node's pod CIDR changed from `old.podCIDR`: take the old gateway off the bridge (an ADD would otherwise
 * refuse the bridge's second address) and free the old range's reservations. Returns what it did, for the log.
 */
export async function forgetPodCIDR(old: NodeNet): Promise<string[]> {
  const done: string[] = [];
  if (old.bridge) {
    const [links] = await readState([{ read: 'links' }]);
    const br = links.find((l) => l.ifname === old.bridge);
    const inOld = insideAny([old.podCIDR]);
    const ops: KernelOp[] = (br?.addr_info ?? [])
      .filter((a) => inOld(a.local))
      .map((a) => ({ op: 'addr-del', dev: old.bridge!, cidr: `${a.local}/${a.prefixlen}` }));
    if (ops.length) {
      await applyOps(ops);
      done.push(`removed ${ops.map((o) => (o as { cidr: string }).cidr).join(', ')} from ${old.bridge}`);
    }
  }
  if (old.dataDir && old.name) {
    const { releaseRange } = require('../ipam/host-local/plugin') as typeof import('../ipam/host-local/plugin');
    const n = await releaseRange(old.dataDir, old.name, old.podCIDR);
    if (n) done.push(`freed ${n} reservation(s) of ${old.podCIDR} in ${path.join(old.dataDir, old.name)}`);
  }
  return done;
}

/** With BGP routing: BIRD's routes inside these cluster CIDRs are ours (they persist after BIRD), and its directory. */
export interface RenderedBgp {
  clusterCIDRs: string[];
  dir: string;
}

export interface UninstallInput {
  /** the pod network of the rendered conflist (read before it is removed); undefined when there is none */
  net?: NodeNet & { bgp?: RenderedBgp };
  /** the rendered files: conflist, fabric conf, peers file */
  files: string[];
  binDir: string;
}

/**
 * Remove tscni from the node: pod veths on our bridge and the bridge, fabric devices (by their alias) and every
 * route of our protocol, the network's NAT and MAC-spoof rules (and our tables once empty), the IPAM store, the
 * rendered files, and the `tscni-` plugin names (the executable too when no plain-name link still uses it).
 * Everything absent is skipped. Returns one line per thing removed.
 */
export async function uninstallNode(u: UninstallInput): Promise<string[]> {
  const done: string[] = [];
  const [links, routes4, routes6] = await readState([
    { read: 'links' },
    { read: 'routes', table: 'main', family: 4 },
    { read: 'routes', table: 'main', family: 6 },
  ]);
  const ours = String(RTPROT_TSCNI);
  const bgp = u.net?.bgp;
  const inCluster = insideAny(bgp?.clusterCIDRs ?? []);
  const birds = (r: IpRoute) => r.protocol === 'bird' && inCluster(r.dst.split('/')[0]);
  const routeOps: KernelOp[] = [
    ...[...routes4, ...routes6].filter((r) => r.protocol === ours).map((r): KernelOp => ({ op: 'route-del', dst: r.dst, proto: RTPROT_TSCNI })),
    ...routes4.filter(birds).map((r): KernelOp => ({ op: 'route-del', dst: r.dst, proto: RTPROT_BIRD })),
  ];
  const bridge = u.net?.bridge;
  const doomed = links.filter((l) => l.ifalias === FABRIC_ALIAS || (bridge && (l.master === bridge || l.ifname === bridge)));
  // routes first: those through a device go with it, and deleting them after would fail
  if (routeOps.length) {
    await applyOps(routeOps);
    done.push(`${routeOps.length} route(s) of protocol ${RTPROT_TSCNI}${bgp ? ' and BGP-learned ones (bird)' : ''}`);
  }
  if (bgp && fs.existsSync(bgp.dir)) {
    fs.rmSync(bgp.dir, { recursive: true, force: true });
    done.push(bgp.dir);
  }
  for (const l of doomed) {
    await applyOps([{ op: 'link-del', name: l.ifname }]);
    done.push(`link ${l.ifname}`);
  }
  if (u.net?.name) {
    const { removeNetworkRules } = require('../pkg/nat') as typeof import('../pkg/nat');
    const tables = await removeNetworkRules(u.net.name);
    done.push(`NAT rules of network ${u.net.name}${tables.length ? `, tables ${tables.join(', ')}` : ''}`);
  }
  if (u.net?.dataDir && u.net.name) {
    for (const p of [u.net.name, `.tscni.${u.net.name}.index`, `.tscni.${u.net.name}.lock`].map((x) => path.join(u.net!.dataDir!, x))) {
      if (!fs.existsSync(p)) continue;
      fs.rmSync(p, { recursive: true, force: true });
      done.push(p);
    }
  }
  for (const f of u.files) {
    if (!fs.existsSync(f)) continue;
    fs.rmSync(f, { force: true });
    done.push(f);
  }
  done.push(...removeBinaries(u.binDir));
  return done;
}

/** The `tscni-` links to our executable, then the executable unless a plain-name link (make install) still uses it. */
function removeBinaries(binDir: string): string[] {
  if (!binDir || !fs.existsSync(binDir)) return [];
  const done: string[] = [];
  const linkTo = (n: string) => {
    try {
      return fs.readlinkSync(path.join(binDir, n));
    } catch {
      return undefined;
    }
  };
  for (const n of fs.readdirSync(binDir)) {
    if (n.startsWith(NAME_PREFIX) && linkTo(n) === 'tscni') {
      fs.rmSync(path.join(binDir, n));
      done.push(path.join(binDir, n));
    }
  }
  const used = fs.readdirSync(binDir).some((n) => linkTo(n) === 'tscni');
  if (!used && fs.existsSync(path.join(binDir, 'tscni'))) {
    fs.rmSync(path.join(binDir, 'tscni'));
    done.push(path.join(binDir, 'tscni'));
  }
  return done;
}
