// The cross-node fabric as plain data: who the peers are, what the underlay looks like, what the kernel should hold.
import type { FdbRecord, IpLink, IpNeigh, IpRoute, KernelOp, LinkType, RouteSpec } from '../ip/ops';

/**
 * Route protocol number marking the routes tscni's fabric owns (unassigned in /etc/iproute2/rt_protos).
 * Reconcile lists and deletes only routes with this number, so nobody else's routes are touched.
 */
export const RTPROT_TSCNI = 252;

/**
 * The alias (ifalias) of the tunnel devices tscni's fabric makes: a device carrying it that the plan no longer
 * names (the VNI, name or mode changed) is deleted, with its neighbour and FDB entries. One fabric per node.
 */
export const FABRIC_ALIAS = 'tscni-fabric'; // one word: ip -batch splits lines on blanks

/** One node of the cluster as the fabric needs it: where it is and which pod CIDR lives behind it. */
export interface Peer {
  nodeIP: string;
  podCIDR: string;
  /** the node's name, when the peers file gives one (`node`, as `tscni k8s` writes it) */
  name?: string;
  /** where it came from in the config, for error messages: `peers[1]`, `peersFile /etc/x.json[1]` */
  key: string;
}

/** What the underlay looks like on this node, read once per call (`ip -json addr show`). */
export interface UnderlayFacts {
  /** the interface holding nodeIP */
  dev: string;
  mtu: number;
  nodeIP: string;
  /** subnets connected on `dev` (its addresses with their prefix): peers inside them are on-link */
  connected: string[];
  /** the same interface's first global address of the other family and its subnets, if it has one (dual stack) */
  other?: { nodeIP: string; connected: string[] };
}

export interface DesiredDevice {
  name: string;
  /** linkinfo.info_kind, e.g. vxlan, ipip */
  kind: string;
  /** what it is made as */
  link: LinkType;
  mtu: number;
  mac?: string;
  /** CIDRs the device holds (the pod CIDR's network address /32) */
  addresses: string[];
  /** linkinfo.info_data values the kernel must report; a mismatch recreates the device */
  infoData: Record<string, string | number | boolean>;
}

export interface NeighEntry {
  ip: string;
  lladdr: string;
  dev: string;
}

export interface FdbEntry {
  mac: string;
  dev: string;
  dst: string;
}

export interface DesiredFabric {
  mode: string;
  /** of every pod CIDR (dual stack: both), the first pod CIDR's first */
  families: Array<4 | 6>;
  /** the MTU pods get: the fabric's MTU */
  mtu: number;
  /** what the mode's encapsulation takes of the underlay MTU (by the underlay's family, not the pods') */
  overhead: number;
  device?: DesiredDevice;
  /** the device carries FDB entries (read with `bridge fdb`) */
  usesFdb: boolean;
  /** all carry proto RTPROT_TSCNI */
  routes: RouteSpec[];
  neighs: NeighEntry[];
  fdb: FdbEntry[];
  /** node-wide sysctls (slashed keys); device ones are written once the device exists */
  sysctls: Record<string, string>;
  /** which peers go through the tunnel and which directly, for logs and tests */
  paths: { peer: string; name?: string; via: 'direct' | 'tunnel' }[];
  /** peers not programmed, and why: the others are, and an ADD does not fail for them */
  leftOut: LeftOutPeer[];
}

/** A peer the fabric leaves out; `peer` is its key (`node worker-2`, `peersFile /etc/...[3]`). */
export interface LeftOutPeer {
  peer: string;
  why: string;
}

/** The kernel's view of what the fabric touches, as `ip -json` and `bridge -json` print it. */
export interface FabricState {
  links: IpLink[];
  /** routes with proto RTPROT_TSCNI */
  routes: IpRoute[];
  /** the main table's other routes (of the pod family): a peer's pod CIDR among them belongs to someone else */
  otherRoutes?: IpRoute[];
  /** neighbours on the device (empty when it does not exist) */
  neighs: IpNeigh[];
  fdb: FdbRecord[];
}

/** What reconcile has to do, and the same as a list of problems for CHECK. */
export interface FabricDiff {
  /** device create/repair, applied first (FDB entries need the device) */
  device: KernelOp[];
  /** forwarding entries of the VTEP */
  fdb: KernelOp[];
  /** neighbours and routes, applied last so a route never points into a half-made device */
  ip: KernelOp[];
  problems: string[];
  /** what the plan wants that another owner holds (a route to a peer's pod CIDR): that peer's route is left alone */
  conflicts: string[];
}
