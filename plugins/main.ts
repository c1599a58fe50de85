// One multi-call executable: the name it is invoked as picks the plugin (bridge, host-local, ...).
// `tscni <name> ...` works too, for running from a checkout and for subcommands.
import * as path from 'path';
import { loadBundled } from '../pkg/bundled';
import { registerInProcess } from '../pkg/cni/delegate';
import { runPlugin } from '../pkg/cni/skel';
import type { Plugin } from '../pkg/cni/types';
import { NAME_PREFIX, plainType } from '../pkg/cni/names';

// Lazy requires: a call loads only the plugin it runs.
const PLUGINS: Record<string, () => Plugin> = {
  bridge: () => require('./bridge/bridge').plugin,
  ptp: () => require('./ptp/ptp').plugin,
  'host-local': () => require('../ipam/host-local/plugin').plugin,
  'host-gw': () => require('./host-gw/host-gw').plugin,
  vxlan: () => require('./vxlan/vxlan').plugin,
  ipip: () => require('./ipip/ipip').plugin,
};

for (const [name, load] of Object.entries(PLUGINS)) {
  registerInProcess(name, load);
  registerInProcess(`${NAME_PREFIX}${name}`, load);
}

async function main(): Promise<number> {
  let name = plainType(path.basename(process.argv0 || process.argv[0]));
  let rest = process.argv.slice(2);
  if (!(name in PLUGINS)) {
    // invoked as tscni (or node + script): the first argument names the plugin
    name = rest[0] ?? '';
    rest = rest.slice(1);
  }
  // `tscni fabric sync|watch --conf <file>`: reconcile the node's cross-node fabric outside of a CNI call
  if (name === 'fabric') return (require('./fabric-cmd') as typeof import('./fabric-cmd')).fabricMain(rest);
  // `tscni k8s install`: the Kubernetes DaemonSet's init container (conf/kubernetes/)
  if (name === 'k8s') return (require('./k8s-cmd') as typeof import('./k8s-cmd')).k8sMain(rest);
  // `tscni etcd run --conf <file>`: the node agent of cluster mode without Kubernetes (subnets and peers in etcd)
  // (bundled apart, build/etcd.js: its etcd client is three times the size of all the plugins)
  if (name === 'etcd') return loadBundled<typeof import('./etcd-cmd')>('etcd').etcdMain(rest);
  // `tscni bgp run --conf <file>`: BGP routing's node agent (BIRD announces this node's pod CIDR, learns the others')
  if (name === 'bgp') return (require('./bgp-cmd') as typeof import('./bgp-cmd')).bgpMain(rest);
  // `tscni doctor --conf <file> ...`: what the plan says should exist against what the kernel holds
  if (name === 'doctor') return (require('./doctor-cmd') as typeof import('./doctor-cmd')).doctorMain(rest);
  const load = PLUGINS[name];
  if (!load) {
    process.stderr.write(
      `usage: tscni <${Object.keys(PLUGINS).join('|')}> (or invoke through a link named after the plugin)\n` +
        '       tscni fabric sync|watch --conf <file>\n       tscni etcd run --conf <file>\n       tscni bgp run --conf <file>\n       tscni doctor --conf <file> (tscni doctor --help)\n',
    );
    return 2;
  }
  void rest;
  return runPlugin(name, load);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // runPlugin turns every error into CNI JSON; reaching here is a bug, so keep stdout clean and say it on stderr
    process.stderr.write(`tscni: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
