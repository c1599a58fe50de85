// Pods and what a node holds for them, as the e2e files read it: one ADD that must succeed, the reservation files
// of a store, the masquerade rules in every backend, the node's links and routes.
import * as fs from 'fs';
import * as path from 'path';
import { parseIPFileName } from '../../ipam/host-local/disk';
import type { Netns, World } from './world';

export interface AddedPod {
  ns: Netns;
  id: string;
  /** the ADD result */
  result: any;
  /** its first IPv4 address (or its first address) and its first IPv6 one ('' when none), without prefix */
  ip: string;
  ip6: string;
  /** the node end of its veth (the result's first interface outside the pod that is not the bridge) */
  host: string;
}

/**
 * A new pod netns (named `name` in the world) with one ADD of `conf` on `node`; throws what the plugin said when it
 * fails. The container ID is the world's, labelled `idLabel` (default: name).
 */
export async function addPod(
  world: World,
  node: Netns,
  conf: Record<string, unknown>,
  name: string,
  o: { lo?: boolean; idLabel?: string; binDir?: string } = {},
): Promise<AddedPod> {
  const ns = await world.pod(name, { lo: o.lo });
  const id = world.containerId(o.idLabel ?? name);
  const r = await world.cni(node, { command: 'ADD', containerId: id, netns: ns, config: conf, binDir: o.binDir });
  if (r.exitCode !== 0 || r.stderr !== '') throw new Error(`ADD ${name} on ${node.name}: exit ${r.exitCode}: ${r.stdout} ${r.stderr}`);
  const ips = (r.json.ips as { address: string }[]).map((x) => x.address.split('/')[0]);
  const interfaces = (r.json.interfaces ?? []) as { name: string; sandbox?: string }[];
  return {
    ns,
    id,
    result: r.json,
    ip: ips.find((x) => !x.includes(':')) ?? ips[0],
    ip6: ips.find((x) => x.includes(':')) ?? '',
    host: interfaces.find((i) => !i.sandbox && i.name !== conf.bridge)?.name ?? '',
  };
}

/** The reservation files of a host-local network: one per allocated address. */
export function ipFiles(dataDir: string, net: string): string[] {
  try {
    return fs.readdirSync(path.join(dataDir, net)).filter((f) => parseIPFileName(f) !== undefined);
  } catch {
    return [];
  }
}

/** The reservation files of a network that container `id` holds. */
export function reservationsOf(dataDir: string, net: string, id: string): string[] {
  return ipFiles(dataDir, net).filter((f) => fs.readFileSync(path.join(dataDir, net, f), 'utf8').startsWith(id));
}

/** Who holds a network's reservations: a container ID per reservation file, sorted. */
export function holders(dataDir: string, net: string): string[] {
  return ipFiles(dataDir, net)
    .map((f) => fs.readFileSync(path.join(dataDir, net, f), 'utf8').split('\r\n')[0])
    .sort();
}

/** Every masquerade backend's NAT state of a node as text: nftables, iptables and ip6tables (their timestamps dropped). */
export async function natRuleset(node: Netns): Promise<string> {
  const [nft, ipt, ip6t] = await Promise.all([
    node.exec(['nft', 'list', 'ruleset'], { allowFailure: true }),
    node.exec(['iptables-save', '-t', 'nat'], { allowFailure: true }),
    node.exec(['ip6tables-save', '-t', 'nat'], { allowFailure: true }),
  ]);
  return (nft.stdout + ipt.stdout + ip6t.stdout).replace(/^#.*\n/gm, '');
}

export async function nodeLinks(node: Netns): Promise<string[]> {
  return (await node.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname);
}

/** The node's IPv4 and IPv6 routes of the main table, as ip prints them. */
export async function nodeRoutes(node: Netns): Promise<string> {
  const [v4, v6] = await Promise.all([node.ip(['route', 'show']), node.ip(['-6', 'route', 'show'])]);
  return v4.stdout + v6.stdout;
}
