// A pod on a node-local bridge: ADD, DEL and CHECK of the wiring that bridge, host-gw, ipip and vxlan share.
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from '../cni/delegate';
import { CniError, ErrCode, everyStep } from '../cni/errors';
import { settled } from '../settled';
import type { Attachment, CmdArgs, DNS, Result } from '../cni/types';
import { macFromIPv4, randomMac } from '../ip/mac';
import { netnsExists } from '../ip/netns';
import { applyOps, deleteLink, globalAddrs, readState, type IpAddr, type KernelOp } from '../ip/ops';
import { linkExists, readLink } from '../ip/sysfs';
import { readSysctl } from '../ip/sysctl';
import { Undo } from '../undo';
import { checkMasq, gcMasq, resolveBackend, setupMasq, teardownMasq, type MasqBackend } from '../nat';
import { ensureBridge, ensureBridgeSysctls, gatewayOps } from './bridge';
import { calcGateways, vlanBridgeOps, vlanGatewayDevOps } from './gateway';
import { hostVethName } from './names';
import { checkPod, forwardingSysctls, masqRules, podRoutes, podSysctls, prevMasqRules, waitPairUp } from './pod';
import { applyPairOps, nodeOps, planNodeEnd, planPodEnd, podOps, sysctlOps, type NodeEndPlan } from './veth';

export interface BridgePodConf {
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  ipMasqBackend?: MasqBackend;
  /** CIDRs besides the pod's own subnet that are not masqueraded (a cluster's pod CIDR) */
  masqExcluded: string[];
  mtu: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  enabledad: boolean;
  portIsolation: boolean;
  /** drop frames from the pod with another MAC or source address (pkg/nat/macspoof) */
  macspoofchk?: boolean;
  disableContainerInterface: boolean;
  isLayer3: boolean;
  mac?: string;
  dns?: DNS;
}

function attachment(a: CmdArgs) {
  return { network: a.conf.name, containerId: a.containerId, ifName: a.ifName };
}

/** loaded only where a config turns macspoofchk on (and by GC) */
const spoof = () => require('../nat/macspoof') as typeof import('../nat/macspoof');
const spoofPort = (a: CmdArgs, port: string, mac: string, r: Result) => ({ att: attachment(a), port, mac, ips: (r.ips ?? []).map((ip) => ip.address) });

/** The MAC of a pod's first IPv4 address (pkg/ip/mac.ts), or undefined for an IPv6-only pod. */
function macFromPodIPv4(r: Result): string | undefined {
  const v4 = r.ips?.find((ip) => !ip.address.includes(':'));
  return v4 && macFromIPv4(v4.address.split('/')[0]);
}

/** What ADD needs to know of the node before it starts: sysfs reads, no kernel change. */
function observeNode(conf: BridgePodConf, gwDev: string) {
  const bridge = readLink(conf.bridge);
  return {
    // up and needing no fixing: the pair can be made at once, while IPAM works
    bridgeReady: !!bridge?.isBridge && bridge.adminUp && !conf.promiscMode && !conf.vlan,
    // the gateway device's addresses are read with the pair's creation, to add only what it lacks
    readGateway: conf.isGateway && linkExists(gwDev),
  };
}

/** The pair on the node, a port of the bridge, up; the gateway device's addresses read in the same go. */
async function createPair(undo: Undo, hostName: string, plan: NodeEndPlan, readGateway?: string): Promise<IpAddr[]> {
  if (!readGateway) {
    await applyPairOps(undo, hostName, nodeOps(plan));
    return [];
  }
  const [links] = await applyPairOps(undo, hostName, nodeOps(plan), { reads: [{ read: 'links', dev: readGateway }] });
  return globalAddrs(links[0]);
}

/** Masquerade of the pod's addresses, begun now; its undo waits for it to end before taking it back. */
function startMasq(undo: Undo, a: CmdArgs, r: Result, conf: BridgePodConf): Promise<unknown> {
  const setup = resolveBackend(conf.ipMasqBackend).then((b) => setupMasq(b, masqRules(a, r, conf.masqExcluded)));
  setup.catch(() => undefined); // awaited in step 4; a failure before then must not go unhandled
  undo.push(() => setup.then(undefined, () => undefined).then(() => teardownMasq(attachment(a))));
  return setup;
}

export async function addBridgePod(a: CmdArgs, conf: BridgePodConf): Promise<Result> {
  if (!netnsExists(a.netns)) throw new CniError(ErrCode.UnknownContainer, `netns ${a.netns} does not exist`);
  const hostName = hostVethName(a.containerId, a.ifName);
  const gwDev = conf.vlan ? `${conf.bridge}.${conf.vlan}` : conf.bridge;
  const node = observeNode(conf, gwDev);
  const undo = new Undo();

  // The pod's MAC is that of its IPv4 address unless the runtime asks for one (a reused address keeps its MAC,
  // so no neighbour's entry goes stale): the pair is made while IPAM runs, with a placeholder, and the pod side
  // sets the derived MAC before its link goes up.
  const placeholderMac = conf.mac ?? randomMac();
  const derivedMac = (r: Result) => (conf.mac ? undefined : macFromPodIPv4(r));
  const nodeEnd = planNodeEnd(
    { name: hostName, mac: randomMac(), mtu: conf.mtu, master: conf.bridge, hairpin: conf.hairpinMode, isolated: conf.portIsolation },
    { netns: a.netns, ifName: a.ifName, mac: placeholderMac, mtu: conf.mtu },
  );

  try {
    // 1. IPAM; masquerade needs only the addresses, so its rules go in from the moment IPAM answers
    const ipam = async (): Promise<{ ipamResult: Result; masq: Promise<unknown> }> => {
      if (!conf.isLayer3) return { ipamResult: { cniVersion: a.conf.cniVersion }, masq: Promise.resolve() };
      const r = await undo.do(
        () => ipamAdd(a),
        () => ipamDel(a),
      );
      return { ipamResult: r, masq: conf.ipMasq && r.ips?.length ? startMasq(undo, a, r, conf) : Promise.resolve() };
    };
    // 2. the bridge (made once per node, left for its other pods) and the veth pair: a node end left by an
    //    earlier ADD of this attachment (a runtime's retry) is rewired, as ptp does
    const pair = async (): Promise<IpAddr[]> => {
      if (!node.bridgeReady) await ensureBridge({ name: conf.bridge, mtu: conf.mtu, promisc: conf.promiscMode, vlanFiltering: conf.vlan !== 0 });
      if (linkExists(hostName)) await deleteLink(hostName);
      const held = await createPair(undo, hostName, nodeEnd, node.readGateway ? gwDev : undefined);
      if (node.bridgeReady) await ensureBridgeSysctls(conf.bridge);
      await applyOps(sysctlOps({ [`net/ipv6/conf/${hostName}/accept_ra`]: '0' })).catch(() => undefined); // no such key without IPv6
      return held;
    };
    // The one overlap of this ADD: with the bridge ready, the pair is made while IPAM runs (a delegated IPAM
    // plugin is a process of its own; the reference also makes the veth before IPAM). A node's first ADD (or
    // a bridge to fix) asks IPAM first, so a config it refuses leaves the node untouched.
    const [{ ipamResult, masq }, held] = node.bridgeReady ? await settled([ipam(), pair()] as const) : [await ipam(), await pair()];
    if (conf.isLayer3 && !ipamResult.ips?.length) throw new CniError(ErrCode.Internal, 'IPAM plugin returned no IP configuration');

    // 3. the plan, now that the addresses are known: gateways on the bridge (against what it already holds),
    //    forwarding, the VLAN entries, and the pod end
    const { result, bridgeAddrs, vlanDev } = calcGateways(ipamResult, conf);
    const podMac = derivedMac(result) ?? placeholderMac;
    const nodeSide: KernelOp[] = [
      ...(conf.isGateway ? sysctlOps(forwardingSysctls(result)) : []),
      ...vlanGatewayDevOps(conf, linkExists(gwDev)),
      ...(conf.isGateway ? gatewayOps(gwDev, bridgeAddrs, held, conf.forceAddress) : []),
      ...vlanBridgeOps(conf, hostName),
    ];
    const podEnd = planPodEnd({
      netns: a.netns,
      ifName: a.ifName,
      mac: podMac,
      setMac: derivedMac(result) !== undefined,
      mtu: conf.mtu,
      addresses: (result.ips ?? []).map((ip) => ip.address),
      nodad: !conf.enabledad,
      routes: podRoutes(result, a.ifName),
      // a MAC the runtime chose may hold an address some neighbour knows with another MAC: a gratuitous ARP on
      // link up corrects it (arp_notify, as the reference sets for every pod)
      sysctls: { ...podSysctls(a.ifName, result, conf.enabledad), ...(conf.mac && conf.isLayer3 ? { [`net/ipv4/conf/${a.ifName}/arp_notify`]: '1' } : {}) },
      up: !conf.disableContainerInterface,
    });

    // 4. the apply, all independent: node side, pod side, MAC spoof checks, and the masquerade begun in 1
    if (conf.macspoofchk) undo.push(() => spoof().teardownSpoofchk(attachment(a)));
    await settled([
      masq,
      applyOps(nodeSide),
      applyOps(podOps(podEnd), { netns: a.netns }),
      conf.macspoofchk ? spoof().setupSpoofchk(spoofPort(a, hostName, podMac, result)) : Promise.resolve(),
    ]);
    if (!conf.disableContainerInterface) await waitPairUp(hostName, a.netns, a.ifName);

    // 5. the result: bridge, node veth, pod interface
    result.interfaces = [
      { name: conf.bridge, mac: readLink(conf.bridge)?.mac },
      { name: hostName, mac: readLink(hostName)?.mac },
      { name: a.ifName, mac: podMac, mtu: conf.mtu, sandbox: a.netns },
    ];
    if (vlanDev) result.interfaces.push({ name: gwDev, mac: readLink(gwDev)?.mac });
    if (conf.dns && Object.keys(conf.dns).length) result.dns = conf.dns;
    return result;
  } catch (e) {
    await undo.run();
    throw e;
  }
}

export async function delBridgePod(a: CmdArgs, conf: BridgePodConf): Promise<void> {
  const hostName = hostVethName(a.containerId, a.ifName);
  // Independent, so run together: the kernel's waits in a link delete and an nft element delete overlap.
  // IPAM releases first, as the reference does.
  await settled([
    (async () => {
      // Deleting the node end (named after the attachment) removes both ends, without entering the netns,
      // and also when the runtime sends no CNI_NETNS (containerd, for a stopped container). A pair whose
      // node end has another name (made by another plugin) is found from the pod end.
      if (linkExists(hostName)) await deleteLink(hostName);
      else if (netnsExists(a.netns)) await deleteLink(a.ifName, a.netns);
    })(),
    // rules are found by attachment, not by address, so this works when the netns is long gone; with a
    // prevResult, nftables removes them without listing first
    conf.ipMasq ? teardownMasq(attachment(a), {}, prevMasqRules(a, conf.masqExcluded)) : Promise.resolve(),
    conf.macspoofchk ? spoof().teardownSpoofchk(attachment(a)) : Promise.resolve(),
    conf.isLayer3 ? ipamDel(a) : Promise.resolve(),
  ]);
}

export async function checkBridgePod(a: CmdArgs, conf: BridgePodConf): Promise<string[]> {
  const prev = a.conf.prevResult;
  if (!prev) throw new CniError(ErrCode.InvalidConfig, 'invalid config: prevResult: required for CHECK');
  if (conf.isLayer3) await ipamCheck(a);
  return bridgePodProblems(a, conf, prev);
}

/** What differs from `prev` on the node and in the pod, in words; shared by CHECK and `tscni doctor`. */
export async function bridgePodProblems(a: CmdArgs, conf: BridgePodConf, prev: Result): Promise<string[]> {
  const problems: string[] = [];
  const bridge = readLink(conf.bridge);
  const prevBridge = prev.interfaces?.find((i) => i.name === conf.bridge);
  if (!bridge?.isBridge) problems.push(`bridge ${conf.bridge} is missing`);
  else if (prevBridge?.mac && prevBridge.mac !== bridge.mac) problems.push(`bridge ${conf.bridge} has MAC ${bridge.mac}, expected ${prevBridge.mac}`);
  if (bridge && conf.promiscMode) {
    const [links] = await readState([{ read: 'links', dev: conf.bridge }]);
    if (!links[0]?.flags?.includes('PROMISC')) problems.push(`bridge ${conf.bridge} is not promiscuous`);
  }

  const hostName = hostVethName(a.containerId, a.ifName);
  const host = readLink(hostName);
  const prevHost = prev.interfaces?.find((i) => i.name === hostName);
  if (!host) problems.push(`node veth ${hostName} is missing`);
  else {
    if (host.operstate === 'down') problems.push(`node veth ${hostName} is down`);
    if (host.master !== conf.bridge) problems.push(`node veth ${hostName} is not a port of ${conf.bridge}`);
    if (prevHost?.mac && prevHost.mac !== host.mac) problems.push(`node veth ${hostName} has MAC ${host.mac}, expected ${prevHost.mac}`);
    if (host.mtu !== conf.mtu) problems.push(`node veth ${hostName} has MTU ${host.mtu}, expected ${conf.mtu}`);
  }
  problems.push(...(await checkPod(a, prev, { mtu: conf.mtu, peerIfindex: host?.ifindex })));
  if (conf.isGateway) {
    for (const [k, v] of Object.entries(forwardingSysctls(prev))) {
      const have = readSysctl(k);
      if (have !== v) problems.push(`sysctl ${k.replace(/\//g, '.')} is ${have}, expected ${v}`);
    }
  }
  if (conf.ipMasq && conf.isLayer3) {
    problems.push(...(await checkMasq(await resolveBackend(conf.ipMasqBackend), masqRules(a, prev, conf.masqExcluded))));
  }
  if (conf.macspoofchk) {
    const mac = prev.interfaces?.find((i) => i.name === a.ifName && i.sandbox)?.mac ?? '';
    problems.push(...(await spoof().checkSpoofchk(spoofPort(a, hostName, mac, prev))));
  }
  return problems;
}

/** GC goes on past failures and reports them all, as the spec asks. */
export async function gcBridgePods(a: CmdArgs, conf: BridgePodConf, valid: Attachment[]): Promise<void> {
  const keep = valid.map((v) => ({ network: a.conf.name, containerId: v.containerID, ifName: v.ifname }));
  await everyStep('GC', [
    () => gcMasq(a.conf.name, keep),
    // whatever the config says now: checks of a network that had macspoofchk on must not outlive their pods
    () => spoof().gcSpoofchk(a.conf.name, keep),
    async () => (conf.isLayer3 ? ipamGc(a) : undefined),
  ]);
}

export async function statusBridgePods(a: CmdArgs, conf: BridgePodConf): Promise<void> {
  if (conf.isLayer3) await ipamStatus(a);
}
