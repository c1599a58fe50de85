// The fabric of one node: read, plan, reconcile; and the same comparison for CHECK.
import { defaultRouteInterface } from '../ip/sysfs';
import { parseCIDR } from '../ipnet';
import { loadPeers, type FabricConf } from './config';
import { fabricMode, planFabric, underlayFacts } from './plan';
import { applyFabric, diffFabric, readFabricState, sysctlProblems, type ReconcileReport } from './reconcile';
import type { DesiredFabric, FabricState } from './types';

export { parseFabricConf, loadPeers, type FabricConf } from './config';
export { planFabric, registerFabricMode, type FabricMode, type PlanContext, type PeerPlan } from './plan';
export { RTPROT_TSCNI } from './types';

/** Read the node and plan its fabric. Throws on bad input before anything is changed. */
export async function planNode(conf: FabricConf): Promise<{ desired: DesiredFabric; state: FabricState }> {
  const mode = fabricMode(conf.mode);
  const family = parseCIDR(conf.podCIDR)!.family;
  const state = await readFabricState(mode.deviceName?.(conf.opts), family, !!mode.usesFdb);
  const underlay = underlayFacts(state.links, conf.nodeIP, conf.nodeIP ? undefined : defaultRouteInterface(), family);
  const peers = loadPeers(conf, underlay.nodeIP);
  return { desired: planFabric(conf.mode, conf, peers, underlay, conf.opts), state };
}

/** Make the node's fabric match the config and the current peer set. */
export async function syncFabric(conf: FabricConf): Promise<{ desired: DesiredFabric; report: ReconcileReport }> {
  const { desired, state } = await planNode(conf);
  return { desired, report: await applyFabric(desired, state) };
}

/** What differs from the plan: every peer's route, neighbour and FDB entry, device MTU, VNI, sysctls. */
export async function checkFabric(conf: FabricConf): Promise<{ desired: DesiredFabric; problems: string[] }> {
  const { desired, state } = await planNode(conf);
  return { desired, problems: [...diffFabric(desired, state).problems, ...sysctlProblems(desired)] };
}
