// `tscni doctor`: what the plan for a network config says the node and its pods should hold, compared with what
// the kernel holds, as findings in plain words. The comparisons are the plugins' own CHECK code (bridgePodProblems,
// ptpPodProblems, checkFabric, checkMasq); doctor adds what CHECK cannot know: the expected result of each pod,
// rebuilt from host-local's reservations and the config, and the node-wide state no single pod owns.
import * as fs from 'fs';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { plainType } from '../../pkg/cni/names';
import { parseNetConf } from '../../pkg/cni/skel';
import type { CmdArgs, NetConf, Result } from '../../pkg/cni/types';
import { readState } from '../../pkg/ip/ops';
import { netnsExists } from '../../pkg/ip/netns';
import { readLink } from '../../pkg/ip/sysfs';
import { listReservations } from '../../ipam/host-local/plugin';
import { fabricFindings, hostLocal, type DoctorView, type Finding } from './view';

export type { Finding } from './view';
export { hostLocal, mtuReason, peerIndex, peerOf } from './view';

/** Each plugin's view (plugins/doctor/view.ts), loaded only for the plugin a config names. */
const VIEWS: Record<string, () => DoctorView> = {
  bridge: () => (require('../bridge/bridge') as typeof import('../bridge/bridge')).doctorView,
  ptp: () => (require('../ptp/ptp') as typeof import('../ptp/ptp')).doctorView,
  'host-gw': () => (require('../host-gw/host-gw') as typeof import('../host-gw/host-gw')).doctorView,
  vxlan: () => (require('../vxlan/vxlan') as typeof import('../vxlan/vxlan')).doctorView,
  ipip: () => (require('../ipip/ipip') as typeof import('../ipip/ipip')).doctorView,
};
export const PLUGIN_TYPES = Object.keys(VIEWS);

export interface PodRef {
  id: string;
  ifName: string;
  /** the pod's netns path; found from the node veth when not given */
  netns?: string;
}

export interface DoctorReport {
  network: string;
  type: string;
  pods: { id: string; ifName: string; ips: string[]; netns?: string }[];
  findings: Finding[];
}

/** The plugin config of a .conf, or of a .conflist's first tscni plugin, as the plugin would receive it. */
export function loadConf(file: string): NetConf {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new CniError(ErrCode.InvalidConfig, `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (Array.isArray(raw.plugins)) {
    const p = (raw.plugins as Record<string, unknown>[]).find((x) => PLUGIN_TYPES.includes(plainType(String(x?.type))));
    if (!p) throw new CniError(ErrCode.InvalidConfig, `${file}: no ${PLUGIN_TYPES.join('/')} plugin in its plugins list`);
    raw = { ...p, cniVersion: raw.cniVersion, name: raw.name };
  }
  if (!PLUGIN_TYPES.includes(plainType(String(raw.type)))) {
    throw new CniError(ErrCode.InvalidConfig, `${file}: type ${JSON.stringify(raw.type)} is not one of ${PLUGIN_TYPES.join(', ')}`);
  }
  return parseNetConf(Buffer.from(JSON.stringify(raw)));
}

function baseArgs(conf: NetConf): CmdArgs {
  return { command: 'CHECK', containerId: '', netns: '', ifName: 'eth0', args: {}, path: [], stdin: Buffer.from(JSON.stringify(conf.raw)), conf };
}

// ---- the pod's netns: the namespace holding the peer of its node veth ----

async function findNetns(hostVeth: string): Promise<string | undefined> {
  let out;
  try {
    out = await readState([{ read: 'links', dev: hostVeth }, { read: 'namespaces' }]);
  } catch {
    return undefined;
  }
  const [links, spaces] = out;
  const id = links[0]?.link_netnsid;
  const name = id === undefined ? undefined : spaces.find((s) => s.id === id)?.name;
  return name ? `/var/run/netns/${name}` : undefined;
}

// ---- the whole check ----

export function describePod(id: string, ifName: string, ips: string[]): string {
  // a runtime's 64-hex ID reads like docker's short form; anything else as given
  const short = /^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : id;
  return `pod ${short}${ifName === 'eth0' ? '' : ` ${ifName}`}${ips.length ? ` (${ips.map((x) => x.split('/')[0]).join(', ')})` : ''}`;
}

export interface DoctorOptions {
  /** a fabric config checked beside `conf` (fabric only, no pods): the host-gw routes kept for ptp pods */
  fabric?: NetConf;
}

/** Check the node and the pods (the given ones, else every pod host-local holds an address for). */
export async function doctor(conf: NetConf, podRefs?: PodRef[], opts: DoctorOptions = {}): Promise<DoctorReport> {
  const a = baseArgs(conf);
  const findings: Finding[] = [];
  const view = await VIEWS[plainType(conf.type)]()(a, findings);
  const plan = view;
  const ipamArgs = view.ipamArgs;

  // the pods: their addresses from host-local, their netns from the node veth's peer
  const h = hostLocal(ipamArgs);
  const held = new Map((h ? listReservations(ipamArgs.conf) : []).map((r) => [`${r.id}/${r.ifName}`, r]));
  const refs: PodRef[] = podRefs ?? [...held.values()].map((x) => ({ id: x.id, ifName: x.ifName }));
  const pods: DoctorReport['pods'] = [];
  for (const ref of refs) {
    const ips = held.get(`${ref.id}/${ref.ifName}`)?.ips ?? [];
    const where = describePod(
      ref.id,
      ref.ifName,
      ips.map((x) => x.address),
    );
    const pod = (problem: string) => findings.push({ where, problem, pod: { id: ref.id, ifName: ref.ifName } });
    const entry: DoctorReport['pods'][number] = { id: ref.id, ifName: ref.ifName, ips: ips.map((x) => x.address) };
    pods.push(entry);
    if (!h) {
      pod(`cannot rebuild its expected addresses: ipam type ${JSON.stringify(conf.ipam?.type ?? ipamArgs.conf.ipam?.type)} is not host-local`);
      continue;
    }
    if (!ips.length) {
      pod(`host-local holds no address for it in ${h.dataDir}`);
      continue;
    }
    const hostVeth = plan.hostVeth(ref.id, ref.ifName);
    const netns = ref.netns ?? (readLink(hostVeth) ? await findNetns(hostVeth) : undefined);
    entry.netns = netns;
    if (!netns || !netnsExists(netns)) {
      if (!readLink(hostVeth)) pod(`node veth ${hostVeth} is missing`);
      else pod(`its netns was not found (the peer of ${hostVeth} is in no named netns; give --pod ${ref.id}:${ref.ifName}=<netns path>)`);
      continue;
    }
    const pa: CmdArgs = { ...ipamArgs, containerId: ref.id, ifName: ref.ifName, netns };
    const ipam: Result = { cniVersion: conf.cniVersion, ips: ips.map((x) => ({ ...x })), routes: h.routes ?? [] };
    try {
      for (const p of await plan.problems(pa, plan.expected(pa, ipam))) pod(p);
    } catch (e) {
      pod((e as Error).message);
    }
  }
  if (opts.fabric) {
    const { FABRIC_MODES, fabricModeOf } = require('../fabric-modes') as typeof import('../fabric-modes');
    const mode = fabricModeOf(opts.fabric.type);
    if (!mode) throw new Error(`--fabric: type ${JSON.stringify(opts.fabric.type)} is not one of ${Object.keys(FABRIC_MODES).join(', ')}`);
    await fabricFindings(baseArgs(opts.fabric), mode, findings);
  }
  return { network: conf.name, type: conf.type, pods, findings };
}

/** One line per finding: `<where>: <problem> (peer <ip>)`. */
export function formatFinding(f: Finding): string {
  return `${f.where}: ${f.problem}${f.peer ? ` (peer ${f.peerName ? `${f.peerName} ` : ''}${f.peer})` : ''}`;
}
