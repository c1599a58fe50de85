// One CNI plugin per fabric mode: the local pod as `bridge` wires it (pkg/wiring/bridgepod), plus the node's part
// of the cluster fabric, reconciled on every ADD. plugins/{host-gw,vxlan,ipip} are this with their mode.
import { parseBridgeConf } from '../wiring/bridgeconf';
import { ConfigReader } from '../cni/config';
import { CniError, ErrCode } from '../cni/errors';
import { isHostLocal } from '../cni/names';
import type { CmdArgs, Plugin, Result } from '../cni/types';
import { addBridgePod, checkBridgePod, delBridgePod, gcBridgePods, statusBridgePods, type BridgePodConf } from '../wiring/bridgepod';
import { parseFabricConf, type FabricConf } from './config';
import { checkFabric, fabricForPod } from './index';
import type { FabricMode } from './mode';

/**
 * The IPAM config with host-local's ranges defaulted from podCIDR: no `ipam` at all, or a host-local one without
 * `ranges`/`subnet`, allocates from this node's pod CIDR (each of them, dual stack). The stdin handed to the IPAM plugin is rewritten to match.
 */
export function withDefaultIpam(a: CmdArgs, podCIDRs: string[]): CmdArgs {
  const ipam = a.conf.ipam;
  // one range set per pod CIDR: a dual-stack pod gets an address of each family
  const ranges = podCIDRs.map((subnet) => [{ subnet }]);
  let next: Record<string, unknown> | undefined;
  if (ipam === undefined) next = { type: 'host-local', ranges };
  else if (isHostLocal(ipam.type) && ipam.ranges === undefined && ipam.subnet === undefined) next = { ...ipam, ranges };
  if (!next) return a;
  const raw = { ...a.conf.raw, ipam: next };
  return { ...a, stdin: Buffer.from(JSON.stringify(raw)), conf: { ...a.conf, raw, ipam: next as CmdArgs['conf']['ipam'] } };
}

interface Parsed<O> {
  fabric: FabricConf<O>;
  /** the args with the IPAM default applied: what the pod wiring and IPAM see */
  podArgs: CmdArgs;
  pod: BridgePodConf;
}

/** Fabric keys, then the bridge keys with this plugin's defaults: a gateway, the default route, masquerade on. */
export function parseFabricPlugin<O>(a: CmdArgs, mode: FabricMode<O>): Parsed<O> {
  const fabric = parseFabricConf(a.conf.raw, mode);
  const podArgs = withDefaultIpam(a, fabric.podCIDRs);
  const b = parseBridgeConf(podArgs);
  const c = new ConfigReader(a.conf.raw);
  const isDefaultGateway = c.bool('isDefaultGateway', true);
  const ipMasq = c.bool('ipMasq', true);
  if (ipMasq && fabric.clusterCIDRs.length < fabric.podCIDRs.length) {
    const why = fabric.clusterCIDRs.length ? 'needs one per pod address family with ipMasq' : 'is required with ipMasq';
    throw c.fail('clusterCIDR', `${why}: it is what pods reach without NAT (the pods of every node)`);
  }
  const pod: BridgePodConf = {
    ...b,
    isDefaultGateway,
    isGateway: c.bool('isGateway', true) || isDefaultGateway,
    ipMasq,
    masqExcluded: fabric.clusterCIDRs,
    // the fabric's MTU, which ADD and CHECK put here; DEL, GC and STATUS read none (and the default route's
    // MTU would cost a read of every route on the node)
    mtu: b.mtu ?? 0,
    dns: a.conf.dns,
  };
  if (!pod.isGateway) throw c.fail('isGateway', `must be true for ${mode.name}: the bridge is the pods' way to other nodes`);
  return { fabric, podArgs, pod };
}

export function fabricPlugin<O>(mode: FabricMode<O>): Plugin {
  return {
    async add(a: CmdArgs): Promise<Result> {
      const p = parseFabricPlugin(a, mode);
      // the fabric first, when its inputs changed since the node's last reconcile: bad peers or an unreachable
      // host-gw peer fail here, before a pod or an address exists
      const mtu = await fabricForPod(p.fabric);
      return addBridgePod(p.podArgs, { ...p.pod, mtu });
    },
    async del(a: CmdArgs): Promise<void> {
      // DEL needs no peers (the file may be gone) and leaves the fabric in place for the node's other pods
      const p = parseFabricPlugin(a, mode);
      await delBridgePod(p.podArgs, p.pod);
    },
    async check(a: CmdArgs): Promise<void> {
      const p = parseFabricPlugin(a, mode);
      const { desired, problems } = await checkFabric(p.fabric);
      problems.push(...(await checkBridgePod(p.podArgs, { ...p.pod, mtu: desired.mtu })));
      if (problems.length) throw new CniError(ErrCode.CheckFailed, `CHECK failed: ${problems.join('; ')}`);
    },
    async gc(a, valid) {
      const p = parseFabricPlugin(a, mode);
      await gcBridgePods(p.podArgs, p.pod, valid);
    },
    async status(a) {
      const p = parseFabricPlugin(a, mode);
      await statusBridgePods(p.podArgs, p.pod);
    },
  };
}
