// The fabric keys shared by host-gw, ipip and vxlan, and the peer sources (inline list, peers file).
import { ConfigReader } from '../cni/config';
import { CniError, ErrCode } from '../cni/errors';
import { readConfigFile } from '../files';
import { contains, formatCIDR, networkOf, parseCIDR, canonicalIP } from '../ipnet';
import type { FabricMode } from './mode';
import type { Peer } from './types';

/** a peers file of 100k nodes is about 8 MiB; anything past this is not a peers file */
const PEERS_FILE_MAX = 64 << 20;

export interface FabricConf<O = unknown> {
  mode: FabricMode<O>;
  nodeIP?: string;
  /** this node's pod CIDR, as a network (host bits cleared) */
  podCIDR: string;
  clusterCIDR?: string;
  /** inline peers; the file's are read by loadPeers */
  peers: Peer[];
  peersFile?: string;
  /** explicit MTU of the pod network (and the tunnel device); default underlay MTU minus the mode's overhead */
  mtu?: number;
  /** the mode's own keys */
  opts: O;
}

function cidrKey(c: ConfigReader, k: string, required: boolean): string | undefined {
  const v = required ? c.requiredString(k) : c.string(k);
  if (v === undefined) return undefined;
  const n = parseCIDR(v);
  if (!n) throw c.fail(k, `${JSON.stringify(v)} is not a CIDR`);
  return formatCIDR(networkOf(n));
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
  const podCIDR = cidrKey(c, 'podCIDR', true)!;
  const clusterCIDR = cidrKey(c, 'clusterCIDR', false);
  if (clusterCIDR) {
    const cl = parseCIDR(clusterCIDR)!;
    const pn = parseCIDR(podCIDR)!;
    if (!contains(cl, pn.family, pn.ip) || pn.prefix < cl.prefix) throw c.fail('podCIDR', `${podCIDR} is not inside clusterCIDR ${clusterCIDR}`);
  }
  if (c.string('peersFile') === '') throw c.fail('peersFile', 'is empty');
  const peersFile = c.absolutePath('peersFile');
  const mtu = c.int('mtu', undefined, 68, 65535) || undefined;
  const opts = mode.options(c);
  const peers = (c.objectList('peers') ?? []).map(readPeer);
  return { mode, nodeIP: ipKey(c, 'nodeIP', false), podCIDR, clusterCIDR, peers, peersFile, mtu, opts };
}

/**
 * Parse the text of a peers file: a JSON list of {nodeIP, podCIDR} (or {"peers": [...]}). The entry that is this
 * very node ({nodeIP, podCIDR} both ours) is skipped, so one file can serve the whole cluster; anything else that
 * collides with this node or another peer is left out by planFabric, which names it.
 */
export function parsePeersFile(text: string, file: string, self: { nodeIP?: string; podCIDR: string }): Peer[] {
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
  return list.map(readPeer).filter((p) => !(p.podCIDR === self.podCIDR && (self.nodeIP === undefined || p.nodeIP === self.nodeIP)));
}

/** All peers: inline ones, then the file's. A missing or unreadable file is an error naming it. */
export function loadPeers(conf: FabricConf, selfNodeIP?: string): Peer[] {
  if (!conf.peersFile) return conf.peers;
  const text = readConfigFile(conf.peersFile, 'peersFile', PEERS_FILE_MAX);
  return [...conf.peers, ...parsePeersFile(text, conf.peersFile, { nodeIP: selfNodeIP ?? conf.nodeIP, podCIDR: conf.podCIDR })];
}
