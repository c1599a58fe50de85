// The fabric of one node: read, plan, reconcile; and the same comparison for CHECK.
import { defaultRouteInterface } from '../ip/sysfs';
import { parseCIDR } from '../ipnet';
import { loadPeers, type FabricConf } from './config';
import { leftOutLines, planFabric, underlayFacts } from './plan';
import { applyFabric, diffFabric, readFabricState, sysctlProblems, type ReconcileReport } from './reconcile';
import { readStamp, stampKey, writeStamp } from './stamp';
import type { DesiredFabric, FabricState, Peer, UnderlayFacts } from './types';

export { parseFabricConf, loadPeers, type FabricConf } from './config';
export { planFabric } from './plan';
export type { FabricMode, PlanContext, PeerPlan } from './mode';
export { RTPROT_TSCNI } from './types';

/**
 * Read the node and plan its fabric. Throws on bad input before anything is changed. With BGP routing the plan
 * has no peer routes (BIRD brings them); the peers and the underlay are returned for what BGP should bring.
 */
export async function planNode<O>(conf: FabricConf<O>): Promise<{ desired: DesiredFabric; state: FabricState; peers: Peer[]; underlay: UnderlayFacts }> {
  const { mode } = conf;
  const families = conf.podCIDRs.map((c) => parseCIDR(c)!.family);
  const family = families[0];
  const state = await readFabricState(conf.device, families, !!mode.usesFdb);
  const underlay = underlayFacts(state.links, conf.nodeIP, conf.nodeIP ? undefined : defaultRouteInterface(), family);
  const peers = loadPeers(conf, underlay.nodeIP, underlay.other?.nodeIP);
  return { desired: planFabric(mode, conf, conf.bgp ? [] : peers, underlay, conf.opts, conf.mtu), state, peers, underlay };
}

/**
 * Make the node's fabric match the config and the current peer set; stamp what it was made from. The peers and the
 * underlay it planned with are returned too (the BGP agent renders BIRD's config from them).
 */
export async function syncFabric<O>(conf: FabricConf<O>): Promise<{ desired: DesiredFabric; report: ReconcileReport; peers: Peer[]; underlay: UnderlayFacts }> {
  const { desired, state, peers, underlay } = await planNode(conf);
  const report = await applyFabric(desired, state);
  // the key is taken after the changes: a device made just now is part of it
  writeStamp(conf, { key: stampKey(conf), mtu: desired.mtu });
  return { desired, report, peers, underlay };
}

/**
 * The fabric as a pod's ADD needs it: reconciled when its inputs changed since the node's last reconcile (by an
 * agent or an earlier ADD), else taken as the stamp says; the cost of the check does not depend on the peers.
 * Returns the fabric MTU.
 */
export async function fabricForPod<O>(conf: FabricConf<O>): Promise<number> {
  const stamp = readStamp(conf);
  if (stamp && stamp.key === stampKey(conf)) return stamp.mtu;
  return (await syncFabric(conf)).desired.mtu;
}

/**
 * BGP's sessions and learned routes, against BIRD's routes among those the plan read (its protocol is not ours);
 * loaded only for a BGP config (a pod's ADD never needs it).
 */
async function bgpCheck(conf: FabricConf, peers: Peer[], underlay: UnderlayFacts, state: FabricState): Promise<string[]> {
  const { bgpProblems } = require('../bgp/check') as typeof import('../bgp/check');
  const { planBgp } = require('../bgp/plan') as typeof import('../bgp/plan');
  const installed = new Set((state.otherRoutes ?? []).filter((r) => r.protocol === 'bird').map((r) => r.dst));
  return bgpProblems(planBgp(conf, peers, underlay), installed);
}

/** What differs from the plan: every peer's route, neighbour and FDB entry, device MTU, VNI, sysctls. */
export async function checkFabric<O>(conf: FabricConf<O>): Promise<{ desired: DesiredFabric; problems: string[] }> {
  const { desired, state, peers, underlay } = await planNode(conf);
  const diff = diffFabric(desired, state);
  const bgp = conf.bgp ? await bgpCheck(conf, peers, underlay, state) : [];
  // the conflicts (routes another owner holds) are among the diff's problems already
  return { desired, problems: [...leftOutLines(desired), ...diff.problems, ...sysctlProblems(desired), ...bgp] };
}
