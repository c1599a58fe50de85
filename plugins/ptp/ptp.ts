// The ptp plugin: routed pods the Calico way. Each pod gets a veth whose node end carries no address
// (MAC ee:ee:ee:ee:ee:ee), a /32 (/128) node route through it, and a default route via 169.254.1.1
// (fe80::ecee:eeff:feee:eeee); see pkg/wiring/ptp.ts for why the pod can use its gateway at once.
import * as fs from 'fs';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from '../../pkg/cni/delegate';
import { CniError, ErrCode, everyStep } from '../../pkg/cni/errors';
import { isHostLocal } from '../../pkg/cni/names';
import { settled } from '../../pkg/settled';
import { Undo } from '../../pkg/undo';
import type { Attachment, CmdArgs, Plugin, Result } from '../../pkg/cni/types';
import { randomMac } from '../../pkg/ip/mac';
import { netnsExists } from '../../pkg/ip/netns';
import { readSysctl } from '../../pkg/ip/sysctl';
import { linkExists, readLink } from '../../pkg/ip/sysfs';
import { canonicalIP, parseIP } from '../../pkg/ipnet';
import { checkMasq, gcMasq, resolveBackend, setupMasq, teardownMasq } from '../../pkg/nat';
import { hostVethName } from '../../pkg/wiring/names';
import { checkPod, defaultPodMtu, masqRules, prevMasqRules, waitPairUp } from '../../pkg/wiring/pod';
import {
  GATEWAY4,
  GATEWAY6,
  HOST_MAC,
  applyPtpPlan,
  asHeld,
  familiesOf,
  hostAddress,
  hostSysctls,
  planPtpPod,
  ptpResult,
  ptpRoutes,
  withSubnets,
} from '../../pkg/wiring/ptp';
import { deleteLink, readState } from '../../pkg/ip/ops';
import type { DoctorView } from '../doctor/view';
import { parsePtpConf, type PtpConf } from './config';

/** Node ends are `ptp` + 12 hex of the attachment: stable, so DEL and a repeated ADD find them. */
export const HOST_PREFIX = 'ptp';

export interface PodConf extends PtpConf {
  mtu: number;
}

export function podConf(a: CmdArgs): PodConf {
  const c = parsePtpConf(a);
  return { ...c, mtu: c.mtu ?? defaultPodMtu(a) };
}

const ipv6Available = (): boolean => fs.existsSync('/proc/sys/net/ipv6');

/**
 * A result (prevResult) with each address at the prefix of its IPAM subnet, which masquerade leaves alone: from
 * host-local's ranges. With another IPAM the addresses stay as they are (DEL then finds the rules by their tag).
 */
export function ipamSubnets(a: CmdArgs, r: Result): Result {
  if (!isHostLocal(a.conf.ipam?.type)) return r;
  let sets: import('../../ipam/host-local/config').RangeSet[];
  try {
    sets = (require('../../ipam/host-local/config') as typeof import('../../ipam/host-local/config')).parseConfig(a.conf, {}).rangeSets;
  } catch {
    return r;
  }
  return withSubnets(r, (ip) => {
    const x = parseIP(ip);
    return x && sets.map((s) => s.rangeOf(x.family, x.ip)).find(Boolean)?.subnet.prefix;
  });
}

/** The args with prevResult's addresses at their IPAM subnets (see ipamSubnets). */
function withIpamSubnets(a: CmdArgs): CmdArgs {
  const prev = a.conf.prevResult;
  return prev ? { ...a, conf: { ...a.conf, prevResult: ipamSubnets(a, prev) } } : a;
}
const attachment = (a: CmdArgs) => ({ network: a.conf.name, containerId: a.containerId, ifName: a.ifName });

async function cmdAdd(a: CmdArgs): Promise<Result> {
  const conf = podConf(a);
  if (!netnsExists(a.netns)) throw new CniError(ErrCode.UnknownContainer, `netns ${a.netns} does not exist`);
  const hostName = hostVethName(a.containerId, a.ifName, HOST_PREFIX);
  const undo = new Undo();
  try {
    // 1. addresses from IPAM
    const ipam = await undo.do(
      () => ipamAdd(a),
      () => ipamDel(a),
    );
    if (!ipam.ips?.length) throw new CniError(ErrCode.Internal, 'IPAM plugin returned no IP configuration');

    // 2. the plan: pair, /32 and /128 in the pod, gateway routes and neighbours, node routes and sysctls
    const podMac = randomMac();
    const plan = planPtpPod(
      {
        netns: a.netns,
        ifName: a.ifName,
        hostName,
        podMac,
        mtu: conf.mtu,
        ipam,
        nodeIpv6DisabledByDefault: readSysctl('net/ipv6/conf/default/disable_ipv6') === '1',
      },
      ipv6Available(),
    );

    // 3. the wiring (a node end left by an earlier ADD of this attachment is replaced) and 4. masquerade of
    // what leaves the pod subnet: independent, so their spawns run side by side
    if (conf.ipMasq) undo.push(() => teardownMasq(attachment(a)));
    await settled([
      (async () => {
        if (linkExists(hostName)) await deleteLink(hostName);
        await applyPtpPlan(plan, undo);
      })(),
      // the pod subnet is left alone: the IPAM result carries it (the CNI result has /32 and /128)
      conf.ipMasq ? resolveBackend(conf.ipMasqBackend).then((b) => setupMasq(b, masqRules(a, ipam, []))) : Promise.resolve(),
    ]);
    await waitPairUp(hostName, a.netns, a.ifName);

    // 5. the result: node end, pod interface (index 1 holds the addresses)
    const result = plan.result;
    result.interfaces = [
      { name: hostName, mac: HOST_MAC },
      { name: a.ifName, mac: podMac, mtu: conf.mtu, sandbox: a.netns },
    ];
    if (conf.dns) result.dns = conf.dns;
    else if (!result.dns || !Object.keys(result.dns).length) delete result.dns;
    return result;
  } catch (e) {
    await undo.run();
    throw e;
  }
}

async function cmdDel(a: CmdArgs): Promise<void> {
  const conf = podConf(a);
  // Deleting the node end removes the pod end and the node route with it; without a netns (gone, or
  // not sent, as containerd does) the pair went with the netns already.
  const hostName = hostVethName(a.containerId, a.ifName, HOST_PREFIX);
  // independent, so run together: the kernel's waits in a link delete and an nft element delete overlap
  await settled([
    linkExists(hostName) ? deleteLink(hostName) : Promise.resolve(false),
    // rules are found by attachment, not by address, so this works when the netns is long gone; with a
    // prevResult, nftables removes them without listing first
    conf.ipMasq ? teardownMasq(attachment(a), {}, prevMasqRules(withIpamSubnets(a), [])) : Promise.resolve(),
    ipamDel(a),
  ]);
}

const hostKey = (ip: string) => `${canonicalIP(ip.split('/')[0])}`;

async function checkNode(hostName: string, conf: PodConf, prev: Result): Promise<string[]> {
  const problems: string[] = [];
  const host = readLink(hostName);
  if (!host) return [`node veth ${hostName} is missing`];
  if (host.operstate === 'down') problems.push(`node veth ${hostName} is down`);
  if (host.mac !== HOST_MAC) problems.push(`node veth ${hostName} has MAC ${host.mac}, expected ${HOST_MAC}`);
  if (host.mtu !== conf.mtu) problems.push(`node veth ${hostName} has MTU ${host.mtu}, expected ${conf.mtu}`);
  // `table all` makes ip dump both families (a batch line cannot say -6; `root ::/0` alone lists none)
  const [addrs, routes] = await readState([
    { read: 'links', dev: hostName },
    { read: 'routes', table: 'all', dev: hostName },
  ]);
  for (const x of addrs[0]?.addr_info ?? []) {
    if (x.scope !== 'link') problems.push(`node veth ${hostName} holds address ${x.local}/${x.prefixlen}; it must hold none`);
  }
  // the pod's IPv6 routes go via this link-local address: without it the node end answers no neighbour solicitation
  if (familiesOf(prev).includes(6) && !(addrs[0]?.addr_info ?? []).some((x) => canonicalIP(x.local) === GATEWAY6)) {
    problems.push(`node veth ${hostName} lacks ${GATEWAY6}, the pods' IPv6 gateway`);
  }
  const routed = new Set(routes.filter((r) => !r.gateway && (r.type ?? 'unicast') === 'unicast' && (r.table ?? 'main') === 'main').map((r) => hostKey(r.dst)));
  for (const ip of prev.ips ?? []) {
    if (!routed.has(hostKey(ip.address))) problems.push(`node has no route to ${hostAddress(ip.address)} dev ${hostName}`);
  }
  for (const [k, v] of Object.entries(hostSysctls(hostName, familiesOf(prev), ipv6Available()))) {
    // disable_ipv6/accept_dad only matter while ADD brings the link up
    if (/accept_dad|disable_ipv6/.test(k)) continue;
    const have = readSysctl(k);
    if (have !== v) problems.push(`sysctl ${k.replace(/\//g, '.')} is ${have}, expected ${v}`);
  }
  return problems;
}

/** The gateway route and the permanent neighbour entries that ADD put in the pod. */
async function checkGateway(a: CmdArgs, prev: Result): Promise<string[]> {
  const fams = familiesOf(prev);
  const [routes, neighs] = await readState(
    [
      { read: 'routes', table: 'main', dev: a.ifName },
      { read: 'neighs', dev: a.ifName },
    ],
    { netns: a.netns },
  );
  const problems: string[] = [];
  if (fams.includes(4) && !routes.some((r) => r.dst === GATEWAY4 && r.scope === 'link')) {
    problems.push(`pod has no route ${GATEWAY4} dev ${a.ifName} scope link`);
  }
  for (const [f, gw] of [
    [4, GATEWAY4],
    [6, GATEWAY6],
  ] as const) {
    if (!fams.includes(f)) continue;
    const n = neighs.find((x) => canonicalIP(x.dst) === canonicalIP(gw));
    if (!n || n.lladdr !== HOST_MAC || !n.state?.includes('PERMANENT')) {
      problems.push(`pod has no permanent neighbour ${gw} lladdr ${HOST_MAC} on ${a.ifName}`);
    }
  }
  return problems;
}

async function cmdCheck(a: CmdArgs): Promise<void> {
  const conf = podConf(a);
  const prev = a.conf.prevResult;
  if (!prev) throw new CniError(ErrCode.InvalidConfig, 'invalid config: prevResult: required for CHECK');
  await ipamCheck(a);
  const problems = await ptpPodProblems(a, conf, prev);
  if (problems.length) throw new CniError(ErrCode.CheckFailed, `CHECK failed: ${problems.join('; ')}`);
}

/** What differs from `prev` on the node and in the pod, in words; shared by CHECK and `tscni doctor`. */
export async function ptpPodProblems(a: CmdArgs, conf: PodConf, prev: Result): Promise<string[]> {
  const hostName = hostVethName(a.containerId, a.ifName, HOST_PREFIX);
  const problems = await checkNode(hostName, conf, prev);
  // the pod holds its addresses as /32 and /128; prevResult carries the IPAM prefix
  problems.push(...(await checkPod(a, asHeld(prev), { mtu: conf.mtu, peerIfindex: readLink(hostName)?.ifindex })));
  if (!problems.some((p) => p.startsWith(`pod interface ${a.ifName}:`))) problems.push(...(await checkGateway(a, prev)));
  // the rules leave the pod subnet alone, which only host-local's ranges tell now that the result holds /32 and
  // /128: with another IPAM the masquerade rules stay out of the comparison
  if (conf.ipMasq && isHostLocal(a.conf.ipam?.type)) {
    problems.push(...(await checkMasq(await resolveBackend(conf.ipMasqBackend), masqRules(a, ipamSubnets(a, prev), []))));
  }
  return problems;
}

/** GC goes on past failures and reports them all. Stale pairs need no GC: a veth dies with its netns. */
async function cmdGc(a: CmdArgs, valid: Attachment[]): Promise<void> {
  podConf(a);
  // also when ipMasq is now off: rules of an earlier config of this network are stale too
  const keep = valid.map((v) => ({ network: a.conf.name, containerId: v.containerID, ifName: v.ifname }));
  await everyStep('GC', [() => gcMasq(a.conf.name, keep), () => ipamGc(a)]);
}

async function cmdStatus(a: CmdArgs): Promise<void> {
  podConf(a);
  await ipamStatus(a);
}

export const plugin: Plugin = { add: cmdAdd, del: cmdDel, check: cmdCheck, gc: cmdGc, status: cmdStatus };

/** tscni doctor's view of a ptp pod (plugins/doctor/view.ts): forwarding, then each pod as ADD made it. */
export const doctorView: DoctorView = async (a, findings) => {
  const { forwarding, hostLocal, sysctlFindings } = require('../doctor/view') as typeof import('../doctor/view');
  const conf = podConf(a);
  const h = hostLocal(a);
  if (h) for (const problem of sysctlFindings(forwarding(h))) findings.push({ where: 'node', problem });
  return {
    ipamArgs: a,
    hostVeth: (id, ifName) => hostVethName(id, ifName, HOST_PREFIX),
    expected: (pa, ipam) => {
      const r = ptpResult(ipam, ptpRoutes(ipam, pa.ifName, familiesOf(ipam)));
      r.interfaces = [{ name: hostVethName(pa.containerId, pa.ifName, HOST_PREFIX) }, { name: pa.ifName, sandbox: pa.netns }];
      return r;
    },
    problems: (pa, prev) => ptpPodProblems(pa, conf, prev),
  };
};
