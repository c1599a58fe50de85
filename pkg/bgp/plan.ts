// What this node's BIRD should run (its neighbours: the configured ones, or a full mesh of the peers) and what it
// should learn (every peer's IPv4 pod CIDR), from the same inputs as the static fabric.
import * as path from 'path';
import type { FabricConf } from '../fabric/config';
import { screenPeers } from '../fabric/plan';
import type { LeftOutPeer, Peer, UnderlayFacts } from '../fabric/types';
import { insideAny } from '../ipnet';
import { runDirs } from '../rundir';
import type { BirdPlan } from './bird';

export interface BgpPlan {
  bird: BirdPlan;
  /** peers whose pod CIDR BGP should bring: one kernel route each */
  expected: Peer[];
  leftOut: LeftOutPeer[];
  /** BIRD's config file and control socket */
  confFile: string;
  socket: string;
}

/** Where this node's BIRD keeps its config and control socket. */
export function birdFiles(conf: FabricConf): { dir: string; confFile: string; socket: string } {
  const dir = conf.bgp?.dir ?? path.join(runDirs()[0], 'bird');
  return { dir, confFile: path.join(dir, 'bird.conf'), socket: path.join(dir, 'bird.ctl') };
}

export function planBgp(conf: FabricConf, peers: Peer[], underlay: UnderlayFacts): BgpPlan {
  const bgp = conf.bgp!;
  const v4 = (c: string) => !c.includes(':');
  const podCIDR = conf.podCIDRs.find(v4);
  const clusterCIDR = conf.clusterCIDRs.find(v4);
  if (!podCIDR || !clusterCIDR || !v4(underlay.nodeIP)) {
    throw new Error(`routing bgp: announces IPv4 pod CIDRs over an IPv4 underlay; this node has ${conf.podCIDRs.join(', ')} over ${underlay.nodeIP}`);
  }
  const { kept, leftOut } = screenPeers(
    peers.filter((p) => v4(p.podCIDR)),
    { nodeIP: underlay.nodeIP, podCIDR, clusterCIDR },
  );
  const onLink = insideAny(underlay.connected);
  // no neighbours configured: every peer is one, in our own AS (iBGP full mesh)
  const neighbors = (bgp.neighbors.length ? bgp.neighbors : kept.map((p) => ({ address: p.nodeIP, asn: bgp.asn, key: p.key }))).map((n) => ({
    ...n,
    direct: onLink(n.address),
  }));
  return {
    bird: {
      routerId: bgp.routerId ?? underlay.nodeIP,
      asn: bgp.asn,
      nodeIP: underlay.nodeIP,
      underlayDev: underlay.dev,
      podCIDR,
      clusterCIDR,
      neighbors,
      holdTime: bgp.holdTime,
      restartTime: bgp.restartTime,
    },
    expected: kept,
    leftOut,
    ...birdFiles(conf),
  };
}
