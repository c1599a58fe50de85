// The fabric keys shared by host-gw, ipip and vxlan, and the peer sources (inline list, peers file).
import { ConfigReader } from '../cni/config';
import { CniError, ErrCode } from '../cni/errors';
import { readConfigFile } from '../files';
import { contains, formatCIDR, networkOf, parseCIDR, canonicalIP } from '../ipnet';
import { parseBgp, type BgpConf } from '../bgp/config';
import type { FabricMode } from './mode';
import type { Peer } from './types';

/** a peers file of 100k nodes is about 8 MiB; anything past this is not a peers file */
const PEERS_FILE_MAX = 64 << 20;

export interface FabricConf<O = unknown> {
  mode: FabricMode<O>;
  nodeIP?: string;
  /** this node's pod CIDR, as a network (host bits cleared): the first of podCIDRs */
  podCIDR: string;
  /** one per pod address family (dual stack: IPv4 and IPv6), the first as configured first */
  podCIDRs: string[];
  /** the cluster CIDR of podCIDR's family */
  clusterCIDR?: string;
  /** one per family, as podCIDRs has them */
  clusterCIDRs: string[];
  /** inline peers; the file's are read by loadPeers */
  peers: Peer[];
  peersFile?: string;
  /** explicit MTU of the pod network (and the tunnel device); default underlay MTU minus the mode's overhead */
  mtu?: number;
  /** the mode's own keys */
  opts: O;
  /** the mode's device (VTEP, tunnel), named once from its keys; none for host-gw */
  device?: string;
  /** `"routing": "bgp"` (host-gw): peer routes come from BIRD, not from the peers; the peers are what to expect */
  bgp?: BgpConf;
}

function cidrKey(c: ConfigReader, k: string, required: boolean): string | undefined {
  const v = required ? c.requiredString(k) : c.string(k);
  if (v === undefined) return undefined;
  const n = parseCIDR(v);
  if (!n) throw c.fail(k, `${JSON.stringify(v)} is not a CIDR`);
  return formatCIDR(networkOf(n));
}

/** A CIDR, or a list of one per address family (dual stack), as networks. */
function cidrsKey(c: ConfigReader, k: string, required: boolean): string[] {
  const v = c.obj[k];
  if (v === undefined || v === null || v === '') {
    if (required) throw c.fail(k, 'is required');
    return [];
  }
  const list = Array.isArray(v) ? v : [v];
  if (!list.length || list.length > 2 || list.some((x) => typeof x !== 'string')) {
    throw c.fail(k, `expected a CIDR or a list of one per address family, got ${JSON.stringify(v)}`);
  }
  const nets = (list as string[]).map((x) => {
    const n = parseCIDR(x);
    if (!n) throw c.fail(k, `${JSON.stringify(x)} is not a CIDR`);
    return networkOf(n);
  });
  if (nets.length === 2 && nets[0].family === nets[1].family) throw c.fail(k, `${JSON.stringify(v)}: two CIDRs of one family (one per family)`);
  return nets.map(formatCIDR);
}

function ipKey(c: ConfigReader, k: string, required: boolean): string | undefined {
  const v = required ? c.requiredString(k) : c.string(k);
  if (v === undefined) return undefined;
  const ip = canonicalIP(v);
  if (!ip) throw c.fail(k, `${JSON.stringify(v)} is not an IP address`);
  return ip;
}

function readPeer(c: ConfigReader): Peer {
  const p: Peer = { nodeIP: ipKey(c, 'nodeIP', true)!, podCIDR: cidrKey(c, 'podCIDR', true)!, key: c.prefix };
  const name = c.string('node');
  // a named peer is named in what reports it (a left-out peer, a CHECK problem); its place in the file otherwise
  if (name) Object.assign(p, { name, key: `node ${name}` });
  return p;
}

/** Parse the fabric keys of a plugin config (the raw object). Peers from peersFile are not read here. */
export function parseFabricConf<O>(raw: Record<string, unknown>, mode: FabricMode<O>): FabricConf<O> {
  const c = new ConfigReader(raw);
  const podCIDRs = cidrsKey(c, 'podCIDR', true);
  const clusters = cidrsKey(c, 'clusterCIDR', false);
  const famOf = (x: string) => parseCIDR(x)!.family;
  // the cluster CIDRs in podCIDRs' order; one of a family with no pod CIDR is a mistake worth naming
  for (const cl of clusters) if (!podCIDRs.some((p) => famOf(p) === famOf(cl))) throw c.fail('clusterCIDR', `${cl} has no podCIDR of its family`);
  const clusterCIDRs = podCIDRs.flatMap((p) => clusters.filter((cl) => famOf(cl) === famOf(p)));
  for (const p of podCIDRs) {
    const cl = clusters.find((x) => famOf(x) === famOf(p));
    const cn = cl ? parseCIDR(cl)! : undefined;
    const pn = parseCIDR(p)!;
    if (cn && (!contains(cn, pn.family, pn.ip) || pn.prefix < cn.prefix)) throw c.fail('podCIDR', `${p} is not inside clusterCIDR ${cl}`);
  }
  const podCIDR = podCIDRs[0];
  const clusterCIDR = clusters.find((x) => famOf(x) === famOf(podCIDR));
  if (c.string('peersFile') === '') throw c.fail('peersFile', 'is empty');
  const peersFile = c.absolutePath('peersFile');
  const mtu = c.int('mtu', undefined, 68, 65535) || undefined;
  const opts = mode.options(c);
  const peers = (c.objectList('peers') ?? []).map(readPeer);
  const routing = c.string('routing', 'static');
  if (routing !== 'static' && routing !== 'bgp') throw c.fail('routing', `${JSON.stringify(routing)} is not "static" or "bgp"`);
  if (routing === 'bgp' && mode.name !== 'host-gw') throw c.fail('routing', `"bgp" routes pods without a tunnel: it goes with host-gw, not ${mode.name}`);
  const bgp = routing === 'bgp' ? parseBgp(c) : undefined;
  if (bgp && !clusterCIDR) throw c.fail('clusterCIDR', 'is required with "routing": "bgp": it bounds what BGP may install');
  if (bgp && podCIDRs.some((x) => x.includes(':'))) {
    throw c.fail('podCIDR', 'IPv6 pod CIDRs are not announced over BGP yet (the kernel takes no IPv6 route via an IPv4 next hop): use vxlan for dual stack');
  }
  const device = mode.deviceName?.(opts);
  return {
    mode,
    nodeIP: ipKey(c, 'nodeIP', false),
    podCIDR,
    podCIDRs,
    clusterCIDR,
    clusterCIDRs,
    peers,
    peersFile,
    mtu,
    opts,
    ...(device ? { device } : {}),
    ...(bgp ? { bgp } : {}),
  };
}

/**
 * Parse the text of a peers file: a JSON list of {nodeIP, podCIDR} (or {"peers": [...]}). The entry that is this
 * very node ({nodeIP, podCIDR} both ours) is skipped, so one file can serve the whole cluster; anything else that
 * collides with this node or another peer is left out by planFabric, which names it.
 */
export function parsePeersFile(text: string, file: string, self: { nodeIP?: string; otherIP?: string; podCIDR: string; podCIDRs?: string[] }): Peer[] {
  const key = `peersFile ${file}`;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrCode.InvalidConfig, `invalid config: ${key}: not valid JSON: ${(e as Error).message}`);
  }
  if (v && typeof v === 'object' && !Array.isArray(v) && Array.isArray((v as { peers?: unknown }).peers)) v = (v as { peers: unknown }).peers;
  if (!Array.isArray(v)) throw new CniError(ErrCode.InvalidConfig, `invalid config: ${key}: expected a list of {nodeIP, podCIDR}`);
  const list = new ConfigReader({ [key]: v }).objectList(key)!;
  const mine = self.podCIDRs ?? [self.podCIDR];
  const me = (ip: string) => self.nodeIP === undefined || ip === self.nodeIP || ip === self.otherIP;
  return list.map(readPeer).filter((p) => !(mine.includes(p.podCIDR) && me(p.nodeIP)));
}

/** All peers: inline ones, then the file's. A missing or unreadable file is an error naming it. */
export function loadPeers(conf: FabricConf, selfNodeIP?: string, otherIP?: string): Peer[] {
  if (!conf.peersFile) return conf.peers;
  const text = readConfigFile(conf.peersFile, 'peersFile', PEERS_FILE_MAX);
  return [
    ...conf.peers,
    ...parsePeersFile(text, conf.peersFile, { nodeIP: selfNodeIP ?? conf.nodeIP, otherIP, podCIDR: conf.podCIDR, podCIDRs: conf.podCIDRs }),
  ];
}
