// The bridge plugin: pods on a node-local Linux bridge, the gateway on the bridge, optional masquerade.
// The wiring is pkg/wiring/bridgepod.ts, shared with host-gw, ipip and vxlan.
import { CniError, ErrCode } from '../../pkg/cni/errors';
import type { Attachment, CmdArgs, Plugin, Result } from '../../pkg/cni/types';
import { defaultPodMtu } from '../../pkg/wiring/pod';
import { addBridgePod, checkBridgePod, delBridgePod, gcBridgePods, statusBridgePods, type BridgePodConf } from '../../pkg/wiring/bridgepod';
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
