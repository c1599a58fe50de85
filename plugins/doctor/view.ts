// What `tscni doctor` asks of each plugin (its DoctorView, exported beside the plugin), and the node-wide checks
// the plugins' views share: host-local's ranges, the bridge and its gateways, forwarding, the fabric with the peer
// each finding is about.
import * as path from 'path';
import { isHostLocal } from '../../pkg/cni/names';
import type { CmdArgs, Result } from '../../pkg/cni/types';
import { checkFabric } from '../../pkg/fabric';
import type { FabricMode } from '../../pkg/fabric/mode';
import { parseFabricPlugin } from '../../pkg/fabric/plugin';
import type { DesiredFabric } from '../../pkg/fabric/types';
import { readLinks } from '../../pkg/ip/ops';
import { readSysctl } from '../../pkg/ip/sysctl';
import { readLink } from '../../pkg/ip/sysfs';
import { canonicalIP, formatIP, type Family } from '../../pkg/ipnet';
import { forwardingSysctls } from '../../pkg/wiring/pod';

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

/**
 * What the doctor needs of a plugin to check a node and its pods: each plugin exports a DoctorView that builds one
 * from a config, after pushing its node-wide findings (bridge, forwarding, fabric).
 */
export interface PodView {
  /** the args its IPAM sees (the fabric plugins default host-local's range from podCIDR) */
  ipamArgs: CmdArgs;
  /** the node veth's name */
  hostVeth: (id: string, ifName: string) => string;
  /** the result ADD returned for these IPAM addresses (interfaces, ips, routes) */
  expected: (a: CmdArgs, ipam: Result) => Result;
  problems: (a: CmdArgs, prev: Result) => Promise<string[]>;
}

/** A plugin's view for a config; node-wide findings go to `findings`. */
export type DoctorView = (a: CmdArgs, findings: Finding[]) => Promise<PodView>;

// ---- what host-local holds: the pods of the network and their addresses ----

export interface HostLocal {
  dataDir: string;
  /** per range set: family, prefix and gateway of each range */
  ranges: { family: Family; net: bigint; last: bigint; prefix: number; gateway: string }[];
  routes: Result['routes'];
}

export function hostLocal(a: CmdArgs): HostLocal | undefined {
  if (!isHostLocal(a.conf.ipam?.type)) return undefined;
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

// ---- node-wide state ----

export function sysctlFindings(want: Record<string, string>): string[] {
  return Object.entries(want)
    .filter(([k, v]) => readSysctl(k) !== v)
    .map(([k, v]) => `sysctl ${k.replace(/\//g, '.')} is ${readSysctl(k) ?? 'absent'}, expected ${v}`);
}

/** Forwarding for the families of the ranges, as ADD enables it for a pod's addresses. */
export function forwarding(h: HostLocal): Record<string, string> {
  return forwardingSysctls({ cniVersion: '', ips: h.ranges.map((r) => ({ address: `${r.gateway}/${r.prefix}` })) });
}

/** The bridge: there, a bridge, up; with isGateway the gateway of every range on it and forwarding on. */
export async function bridgeNode(bridge: string, isGateway: boolean, vlan: number, h: HostLocal | undefined): Promise<string[]> {
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
  return ` (underlay MTU ${d.mtu + d.overhead} - ${d.overhead} for ${d.mode})`;
}

/** The node's fabric against the plan of a host-gw/vxlan/ipip config, each finding with the peer it is about. */
export async function fabricFindings<O>(a: CmdArgs, mode: FabricMode<O>, findings: Finding[]) {
  const parsed = parseFabricPlugin(a, mode);
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
