// A pod on a node-local bridge: ADD, DEL and CHECK of the wiring that bridge, host-gw, ipip and vxlan share.
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from '../cni/delegate';
import { CniError, ErrCode, everyStep } from '../cni/errors';
import { settled } from '../settled';
import type { Attachment, CmdArgs, DNS, Result } from '../cni/types';
import { ipBatch, ipJson } from '../ip/batch';
import { bridgeBatch } from '../ip/bridgevlan';
import { macFromIPv4, randomMac } from '../ip/mac';
import { netnsExists } from '../ip/netns';
import { linkExists, readLink } from '../ip/sysfs';
import { readSysctl, setSysctls } from '../ip/sysctl';
import { checkMasq, gcMasq, resolveBackend, setupMasq, teardownMasq, type MasqBackend } from '../nat';
import { ensureBridge, ensureBridgeSysctls, gatewayCommands, globalAddresses, type AddrInfo } from './bridge';
import { calcGateways, vlanBridgeCommands, vlanGatewayDevCommands } from './gateway';
import { hostVethName } from './names';
import { checkPod, forwardingSysctls, masqRules, podRoutes, podSysctls, prevMasqRules, waitOperUp } from './pod';
import { applyNodeSide, applyPodSide, deleteLink, pairCreated, planVeth } from './veth';

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

export async function addBridgePod(a: CmdArgs, conf: BridgePodConf): Promise<Result> {
  if (!netnsExists(a.netns)) throw new CniError(ErrCode.UnknownContainer, `netns ${a.netns} does not exist`);
  const hostName = hostVethName(a.containerId, a.ifName);
  // The pod's MAC is that of its IPv4 address unless the runtime asks for one: the pair is made while IPAM
  // runs, with a placeholder, and the pod batch sets the derived MAC before the link goes up
  const firstMac = conf.mac ?? randomMac();
  const macFromIpam = (ips: Result): string | undefined => {
    const v4 = conf.mac ? undefined : ips.ips?.find((ip) => !ip.address.includes(':'));
    return v4 && macFromIPv4(v4.address.split('/')[0]);
  };
  const hostMac = randomMac();
  const gwDev = conf.vlan ? `${conf.bridge}.${conf.vlan}` : conf.bridge;
  const bridge = readLink(conf.bridge);
  // The pair needs nothing from IPAM: its node batch runs while IPAM allocates (as the reference also makes
  // the veth before IPAM), and reads the gateway device's addresses in the same spawn
  const pair = (ips: Result) => {
    const derived = macFromIpam(ips);
    return planVeth(
      { name: hostName, mac: hostMac, mtu: conf.mtu, master: conf.bridge, hairpin: conf.hairpinMode, isolated: conf.portIsolation },
      {
        netns: a.netns,
        ifName: a.ifName,
        mac: derived ?? firstMac,
        setMac: derived !== undefined,
        mtu: conf.mtu,
        addresses: (ips.ips ?? []).map((ip) => ip.address),
        nodad: !conf.enabledad,
        routes: podRoutes(ips, a.ifName),
        sysctls: podSysctls(a.ifName, ips, conf.enabledad),
        up: !conf.disableContainerInterface,
      },
    );
  };
  const bridgeSpec = { name: conf.bridge, mtu: conf.mtu, promisc: conf.promiscMode, vlanFiltering: conf.vlan !== 0 };
  const readHeld = conf.isGateway && linkExists(gwDev);
  // a bridge that is up and needs no fixing: the node batch spawns at once (no await before it)
  const bridgeReady = !!bridge?.isBridge && bridge.adminUp && !conf.promiscMode && !conf.vlan;
  let tried = false; // a link add was attempted
  let pairError: unknown; // why the node batch failed, if it did
  let ipamDone = false;
  let masqTried = false;
  const nodeSide = async (): Promise<AddrInfo[]> => {
    if (!bridgeReady) await ensureBridge(bridgeSpec);
    // the node end is named after this attachment: one that exists is an earlier ADD of it (repeated by the
    // runtime, or left over), so it is rewired as ptp does, never left to fail `link add` (whose rollback
    // would then release the address and rules the earlier ADD's pod still uses)
    if (linkExists(hostName)) await deleteLink(hostName);
    tried = true;
    const batch = applyNodeSide(pair({ cniVersion: a.conf.cniVersion }), readHeld ? [['addr', 'show', 'dev', gwDev]] : []);
    if (bridgeReady) await ensureBridgeSysctls(conf.bridge);
    const out = await batch.catch((e: unknown) => Promise.reject((pairError = e)));
    // a MAC the runtime chose may hold an address some neighbour knows with another MAC: a gratuitous ARP on
    // link up (arp_notify, as the reference sets for every pod) corrects it; set while IPAM may be at work
    if (conf.mac && conf.isLayer3) await setSysctls({ [`net/ipv4/conf/${a.ifName}/arp_notify`]: '1' }, a.netns);
    return readHeld ? globalAddresses(out[0]) : [];
  };
  const ipam = async (): Promise<Result> => {
    const r = conf.isLayer3 ? await ipamAdd(a) : { cniVersion: a.conf.cniVersion };
    ipamDone = true;
    return r;
  };
  // masquerade needs only the addresses: it starts as soon as IPAM answers
  const masq = async (r: Result): Promise<void> => {
    if (!conf.ipMasq || !conf.isLayer3 || !r.ips?.length) return;
    masqTried = true;
    await setupMasq(await resolveBackend(conf.ipMasqBackend), masqRules(a, r, conf.masqExcluded));
  };

  let masqP: Promise<void> | undefined;
  try {
    let ipamP: Promise<Result>;
    let nodeP: Promise<AddrInfo[]>;
    if (bridgeReady) {
      // the usual ADD: the node batch first, so its spawn runs while IPAM works in this process (the reference
      // also makes the veth before IPAM)
      nodeP = nodeSide();
      ipamP = ipam();
    } else {
      // a node's first ADD (or a bridge to fix): IPAM first, so a config it refuses leaves the node untouched
      ipamP = Promise.resolve(await ipam());
      nodeP = nodeSide();
    }
    // the rules go in while the pod end is configured: awaited with it below, or before the rollback
    masqP = ipamP.then(masq);
    masqP.catch(() => undefined);
    const [result, held] = await settled([ipamP, nodeP] as const);
    if (conf.isLayer3 && !result.ips?.length) throw new CniError(ErrCode.Internal, 'IPAM plugin returned no IP configuration');
    const gw = calcGateways(result, conf);
    const podMac = macFromIpam(result) ?? firstMac;
    const plan = pair(result);
    // the gateway on the bridge (or its VLAN device), checked against what it already holds; nothing to
    // write when it holds just that
    const gwCmds = [...vlanGatewayDevCommands(conf), ...(conf.isGateway ? gatewayCommands(gwDev, gw.bridgeAddrs, held, conf.forceAddress) : [])];
    await setSysctls({ [`net/ipv6/conf/${hostName}/accept_ra`]: '0' }).catch(() => undefined);
    if (conf.isGateway) await setSysctls(forwardingSysctls(result));

    // independent from here: node gateway and VLAN entries, the pod end, MAC spoof checks, masquerade
    await settled([
      masqP,
      ipBatch(gwCmds).then(() => bridgeBatch(vlanBridgeCommands(conf, hostName))),
      applyPodSide(plan),
      conf.macspoofchk ? spoof().setupSpoofchk(spoofPort(a, hostName, podMac, result)) : Promise.resolve(),
    ]);
    if (!conf.disableContainerInterface) await waitOperUp(hostName);

    // the result: bridge, node veth, pod interface
    result.interfaces = [
      { name: conf.bridge, mac: readLink(conf.bridge)?.mac },
      { name: hostName, mac: readLink(hostName)?.mac },
      { name: a.ifName, mac: podMac, mtu: conf.mtu, sandbox: a.netns },
    ];
    if (gw.vlanDev) result.interfaces.push({ name: gwDev, mac: readLink(gwDev)?.mac });
    if (conf.dns && Object.keys(conf.dns).length) result.dns = conf.dns;
    return result;
  } catch (e) {
    // undo what ran: a failed `link add` created nothing (and the name may belong to a live pod)
    await masqP?.catch(() => undefined);
    const made = tried && (pairError === undefined || pairCreated(pairError));
    await settled([
      made ? deleteLink(hostName).catch(() => false) : Promise.resolve(false),
      masqTried ? teardownMasq(attachment(a)).catch(() => undefined) : Promise.resolve(),
      conf.macspoofchk && ipamDone ? spoof().teardownSpoofchk(attachment(a)).catch(() => undefined) : Promise.resolve(),
      conf.isLayer3 && ipamDone ? ipamDel(a).catch(() => undefined) : Promise.resolve(),
    ]);
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
    const l = await ipJson<{ flags?: string[] }>(['link', 'show', 'dev', conf.bridge]);
    if (!l[0]?.flags?.includes('PROMISC')) problems.push(`bridge ${conf.bridge} is not promiscuous`);
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
