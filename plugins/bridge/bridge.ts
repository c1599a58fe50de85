// The bridge plugin: pods on a node-local Linux bridge, the gateway on the bridge, optional masquerade.
// The wiring is pkg/wiring/bridgepod.ts, shared with host-gw, ipip and vxlan.
import { CniError, ErrCode } from '../../pkg/cni/errors';
import type { Attachment, CmdArgs, Plugin, Result } from '../../pkg/cni/types';
import { defaultPodMtu } from '../../pkg/wiring/pod';
import { addBridgePod, bridgePodProblems, checkBridgePod, delBridgePod, gcBridgePods, statusBridgePods, type BridgePodConf } from '../../pkg/wiring/bridgepod';
import { calcGateways } from '../../pkg/wiring/gateway';
import { hostVethName } from '../../pkg/wiring/names';
import type { FabricMode } from '../../pkg/fabric/mode';
import type { DoctorView, Finding, PodView } from '../doctor/view';

/** loaded by tscni doctor only, never by a plugin call */
const doctorLib = () => require('../doctor/view') as typeof import('../doctor/view');
import { parseBridgeConf } from '../../pkg/wiring/bridgeconf';

function podConf(a: CmdArgs): BridgePodConf {
  const c = parseBridgeConf(a);
  // MTU by default from the interface holding the default route: pods then fit the underlay
  return { ...c, mtu: c.mtu ?? defaultPodMtu(a), masqExcluded: [], dns: a.conf.dns };
}

async function cmdAdd(a: CmdArgs): Promise<Result> {
  return addBridgePod(a, podConf(a));
}

async function cmdDel(a: CmdArgs): Promise<void> {
  await delBridgePod(a, podConf(a));
}

async function cmdCheck(a: CmdArgs): Promise<void> {
  const problems = await checkBridgePod(a, podConf(a));
  if (problems.length) throw new CniError(ErrCode.CheckFailed, `CHECK failed: ${problems.join('; ')}`);
}

async function cmdGc(a: CmdArgs, valid: Attachment[]): Promise<void> {
  await gcBridgePods(a, podConf(a), valid);
}

async function cmdStatus(a: CmdArgs): Promise<void> {
  await statusBridgePods(a, podConf(a));
}

export const plugin: Plugin = { add: cmdAdd, del: cmdDel, check: cmdCheck, gc: cmdGc, status: cmdStatus };

/** tscni doctor's view of a bridge pod (plugins/doctor/view.ts): the bridge and forwarding, then each pod as ADD made it. */
export async function bridgePodView(a: CmdArgs, conf: BridgePodConf, findings: Finding[]): Promise<PodView> {
  const { bridgeNode, hostLocal } = doctorLib();
  for (const problem of await bridgeNode(conf.bridge, conf.isGateway, conf.vlan, hostLocal(a))) findings.push({ where: 'node', problem });
  return {
    ipamArgs: a,
    hostVeth: (id, ifName) => hostVethName(id, ifName),
    expected: (pa, ipam) => {
      const r: Result = calcGateways({ ...ipam, routes: ipam.routes ?? [] }, conf).result;
      r.interfaces = [{ name: conf.bridge }, { name: hostVethName(pa.containerId, pa.ifName) }, { name: pa.ifName, sandbox: pa.netns }];
      return r;
    },
    problems: (pa, prev) => bridgePodProblems(pa, conf, prev),
  };
}

export const doctorView: DoctorView = (a, findings) => bridgePodView(a, podConf(a), findings);

/** The view of a fabric plugin (host-gw, vxlan, ipip): its fabric, then its pods as bridge pods. */
export function fabricDoctorView<O>(mode: FabricMode<O>): DoctorView {
  return async (a, findings) => {
    const { parsed, desired } = await doctorLib().fabricFindings(a, mode, findings);
    return bridgePodView(parsed.podArgs, { ...parsed.pod, mtu: desired.mtu }, findings);
  };
}
