// `tscni doctor`: what the plan for a network config says the node and its pods should hold, compared with what
// the kernel holds, as findings in plain words. The comparisons are the plugins' own CHECK code (bridgePodProblems,
// ptpPodProblems, checkFabric, checkMasq); doctor adds what CHECK cannot know: the expected result of each pod,
// rebuilt from host-local's reservations and the config, and the node-wide state no single pod owns.
import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { parseNetConf } from '../../pkg/cni/skel';
import type { CmdArgs, NetConf, Result } from '../../pkg/cni/types';
import { readLinks, readState, type IpLink } from '../../pkg/ip/ops';
import { netnsExists } from '../../pkg/ip/netns';
import { readSysctl } from '../../pkg/ip/sysctl';
import { readLink } from '../../pkg/ip/sysfs';
import { canonicalIP, formatIP, type Family } from '../../pkg/ipnet';
import type { DesiredFabric } from '../../pkg/fabric/types';
import { hostVethName } from '../../pkg/wiring/names';
import { listReservations } from '../../ipam/host-local/plugin';

export const PLUGIN_TYPES = ['bridge', 'ptp', 'host-gw', 'vxlan', 'ipip'];
const FABRIC = ['host-gw', 'vxlan', 'ipip'];

export interface Finding {
  /** `node`, or `pod <id> <ifname> (<ips>)` */
  where: string;
  problem: string;
  /** the pod's container ID and interface */
  pod?: { id: string; ifName: string };
  /** the peer node (its node IP) a fabric finding is about */
  peer?: string;
  /** that peer's name, when the peers file gives one */
  peerName?: string;
}

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
    const p = (raw.plugins as Record<string, unknown>[]).find((x) => PLUGIN_TYPES.includes(String(x?.type)));
    if (!p) throw new CniError(ErrCode.InvalidConfig, `${file}: no ${PLUGIN_TYPES.join('/')} plugin in its plugins list`);
    raw = { ...p, cniVersion: raw.cniVersion, name: raw.name };
  }
  if (!PLUGIN_TYPES.includes(String(raw.type))) {
    throw new CniError(ErrCode.InvalidConfig, `${file}: type ${JSON.stringify(raw.type)} is not one of ${PLUGIN_TYPES.join(', ')}`);
  }
  return parseNetConf(Buffer.from(JSON.stringify(raw)));
}

function baseArgs(conf: NetConf): CmdArgs {
  return { command: 'CHECK', containerId: '', netns: '', ifName: 'eth0', args: {}, path: [], stdin: Buffer.from(JSON.stringify(conf.raw)), conf };
}

// ---- what host-local holds: the pods of the network and their addresses ----

interface HostLocal {
  dataDir: string;
  /** per range set: family, prefix and gateway of each range */
  ranges: { family: Family; net: bigint; last: bigint; prefix: number; gateway: string }[];
  routes: Result['routes'];
}

export function hostLocal(a: CmdArgs): HostLocal | undefined {
  if (a.conf.ipam?.type !== 'host-local') return undefined;
  const { parseConfig } = require('../../ipam/host-local/config') as typeof import('../../ipam/host-local/config');
  const cfg = parseConfig(a.conf, {});
  const ranges = cfg.rangeSets.flatMap((s) =>
    s.ranges.map((r) => {
      const bits = r.family === 4 ? 32 : 128;
      return {
        family: r.family,
        net: r.subnet.ip,
        last: r.subnet.ip + (1n << BigInt(bits - r.subnet.prefix)) - 1n,
        prefix: r.subnet.prefix,
        gateway: formatIP(r.family, r.gateway),
      };
    }),
  );
  return { dataDir: path.join(cfg.dataDir, cfg.name), ranges, routes: cfg.routes };
}

// ---- the pod's netns: the namespace holding the peer of its node veth ----

async function findNetns(hostVeth: string): Promise<string | undefined> {
  let out: unknown[][];
  try {
    out = await readState([{ read: 'links', dev: hostVeth }, { read: 'namespaces' }]);
  } catch {
    return undefined;
  }
  const [links, spaces] = out as [IpLink[], { name: string; id?: number }[]];
  const id = links[0]?.link_netnsid;
  const name = id === undefined ? undefined : spaces.find((s) => s.id === id)?.name;
  return name ? `/var/run/netns/${name}` : undefined;
}

// ---- node-wide state ----

function sysctlFindings(want: Record<string, string>): string[] {
  return Object.entries(want)
    .filter(([k, v]) => readSysctl(k) !== v)
    .map(([k, v]) => `sysctl ${k.replace(/\//g, '.')} is ${readSysctl(k) ?? 'absent'}, expected ${v}`);
}

/** Forwarding for the families of the ranges, as ADD enables it for a pod's addresses. */
function forwarding(h: HostLocal): Record<string, string> {
  const { forwardingSysctls } = require('../../pkg/wiring/pod') as typeof import('../../pkg/wiring/pod');
  return forwardingSysctls({ cniVersion: '', ips: h.ranges.map((r) => ({ address: `${r.gateway}/${r.prefix}` })) });
}

/** The bridge: there, a bridge, up; with isGateway the gateway of every range on it and forwarding on. */
async function bridgeNode(bridge: string, isGateway: boolean, vlan: number, h: HostLocal | undefined): Promise<string[]> {
  const l = readLink(bridge);
  if (!l) return [`bridge ${bridge} is missing`];
  const problems: string[] = [];
  if (!l.isBridge) problems.push(`${bridge} is not a bridge`);
  if (l.operstate === 'down') problems.push(`bridge ${bridge} is down`);
  if (!isGateway || !h) return problems;
  const dev = vlan ? `${bridge}.${vlan}` : bridge;
  const held = readLink(dev) ? ((await readLinks(dev))[0]?.addr_info ?? []).map((x) => `${canonicalIP(x.local)}/${x.prefixlen}`) : [];
  for (const r of h.ranges) {
    const gw = `${canonicalIP(r.gateway)}/${r.prefix}`;
    if (!held.includes(gw)) problems.push(`${dev} lacks gateway address ${gw}`);
  }
  problems.push(...sysctlFindings(forwarding(h)));
  return problems;
}

/** Which peer a fabric finding is about: by the objects the plan made for each peer. */
export function peerIndex(d: DesiredFabric): Map<string, string> {
  const m = new Map<string, string>();
  d.paths.forEach((p, i) => {
    const r = d.routes[i];
    if (r) m.set(r.dst, p.peer);
    m.set(p.peer, p.peer);
  });
  for (const f of d.fdb) m.set(f.mac, f.dst);
  for (const n of d.neighs) {
    const f = d.fdb.find((x) => x.mac === n.lladdr);
    if (f) m.set(n.ip, f.dst);
  }
  return m;
}

export function peerOf(problem: string, index: Map<string, string>): string | undefined {
  for (const t of problem.split(/[\s,]+/)) {
    const p = index.get(t);
    if (p) return p;
  }
  return undefined;
}

/** Where an expected device MTU comes from, for a finding about it. */
export function mtuReason(problem: string, d: DesiredFabric, configured: number | undefined): string {
  if (!d.device || !problem.startsWith(`${d.device.name} has MTU `)) return '';
  if (configured !== undefined) return ' (mtu in the config)';
  const { fabricModeNamed } = require('../fabric-modes') as typeof import('../fabric-modes');
  const overhead = fabricModeNamed(d.mode).overhead(d.family);
  return ` (underlay MTU ${d.mtu + overhead} - ${overhead} for ${d.mode})`;
}

// ---- the whole check ----

interface PodPlan {
  /** the node veth's name */
  hostVeth: (id: string, ifName: string) => string;
  /** the result ADD returned for these IPAM addresses (interfaces, ips, routes) */
  expected: (a: CmdArgs, ipam: Result) => Result;
  problems: (a: CmdArgs, prev: Result) => Promise<string[]>;
}

export function describePod(id: string, ifName: string, ips: string[]): string {
  // a runtime's 64-hex ID reads like docker's short form; anything else as given
  const short = /^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : id;
  return `pod ${short}${ifName === 'eth0' ? '' : ` ${ifName}`}${ips.length ? ` (${ips.map((x) => x.split('/')[0]).join(', ')})` : ''}`;
}

/** The node's fabric against the plan of a host-gw/vxlan/ipip config, each finding with the peer it is about. */
async function fabricFindings(a: CmdArgs, findings: Finding[]) {
  const fp = require('../../pkg/fabric/plugin') as typeof import('../../pkg/fabric/plugin');
  const { checkFabric } = require('../../pkg/fabric') as typeof import('../../pkg/fabric');
  const { fabricModeNamed } = require('../fabric-modes') as typeof import('../fabric-modes');
  const parsed = fp.parseFabricPlugin(a, fabricModeNamed(a.conf.type));
  const { desired, problems } = await checkFabric(parsed.fabric);
  const peers = peerIndex(desired);
  const names = new Map(desired.paths.filter((p) => p.name).map((p) => [p.peer, p.name!]));
  for (const p of problems) {
    const peer = peerOf(p, peers);
    const name = peer && names.get(peer);
    findings.push({
      where: 'node',
      problem: p + mtuReason(p, desired, parsed.fabric.mtu),
      ...(peer ? { peer } : {}),
      ...(name ? { peerName: name } : {}),
    });
  }
  return { parsed, desired };
}

export interface DoctorOptions {
  /** a fabric config checked beside `conf` (fabric only, no pods): the host-gw routes kept for ptp pods */
  fabric?: NetConf;
}

/** Check the node and the pods (the given ones, else every pod host-local holds an address for). */
export async function doctor(conf: NetConf, podRefs?: PodRef[], opts: DoctorOptions = {}): Promise<DoctorReport> {
  const a = baseArgs(conf);
  const findings: Finding[] = [];
  const node = (problem: string) => findings.push({ where: 'node', problem });
  let plan: PodPlan;
  let ipamArgs = a;

  if (conf.type === 'ptp') {
    const ptp = require('../ptp/ptp') as typeof import('../ptp/ptp');
    const w = require('../../pkg/wiring/ptp') as typeof import('../../pkg/wiring/ptp');
    const pc = ptp.podConf(a);
    const h = hostLocal(a);
    if (h) for (const p of sysctlFindings(forwarding(h))) node(p);
    plan = {
      hostVeth: (id, ifName) => hostVethName(id, ifName, ptp.HOST_PREFIX),
      expected: (pa, ipam) => {
        const r = w.ptpResult(ipam, w.ptpRoutes(ipam, pa.ifName, w.familiesOf(ipam)));
        r.interfaces = [{ name: hostVethName(pa.containerId, pa.ifName, ptp.HOST_PREFIX) }, { name: pa.ifName, sandbox: pa.netns }];
        return r;
      },
      problems: (pa, prev) => ptp.ptpPodProblems(pa, pc, prev),
    };
  } else {
    const bp = require('../../pkg/wiring/bridgepod') as typeof import('../../pkg/wiring/bridgepod');
    const { calcGateways } = require('../../pkg/wiring/gateway') as typeof import('../../pkg/wiring/gateway');
    let pc: import('../../pkg/wiring/bridgepod').BridgePodConf;
    if (FABRIC.includes(conf.type)) {
      const { parsed, desired } = await fabricFindings(a, findings);
      pc = { ...parsed.pod, mtu: desired.mtu };
      ipamArgs = parsed.podArgs;
    } else {
      const { parseBridgeConf } = require('../../pkg/wiring/bridgeconf') as typeof import('../../pkg/wiring/bridgeconf');
      const { defaultRouteMtu } = require('../../pkg/ip/sysfs') as typeof import('../../pkg/ip/sysfs');
      const c = parseBridgeConf(a);
      pc = { ...c, mtu: c.mtu ?? defaultRouteMtu(), masqExcluded: [], dns: conf.dns };
    }
    for (const p of await bridgeNode(pc.bridge, pc.isGateway, pc.vlan, hostLocal(ipamArgs))) node(p);
    plan = {
      hostVeth: (id, ifName) => hostVethName(id, ifName),
      expected: (pa, ipam) => {
        const r: Result = calcGateways({ ...ipam, routes: ipam.routes ?? [] }, pc).result;
        r.interfaces = [{ name: pc.bridge }, { name: hostVethName(pa.containerId, pa.ifName) }, { name: pa.ifName, sandbox: pa.netns }];
        return r;
      },
      problems: (pa, prev) => bp.bridgePodProblems(pa, pc, prev),
    };
  }

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
    if (!FABRIC.includes(opts.fabric.type)) throw new Error(`--fabric: type ${JSON.stringify(opts.fabric.type)} is not one of ${FABRIC.join(', ')}`);
    await fabricFindings(baseArgs(opts.fabric), findings);
  }
  return { network: conf.name, type: conf.type, pods, findings };
}

/** One line per finding: `<where>: <problem> (peer <ip>)`. */
export function formatFinding(f: Finding): string {
  return `${f.where}: ${f.problem}${f.peer ? ` (peer ${f.peerName ? `${f.peerName} ` : ''}${f.peer})` : ''}`;
}
