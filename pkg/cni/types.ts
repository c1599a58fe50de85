// CNI result types in their 1.1 shape; conversion to and from older versions lives in version.ts.

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IPConfig {
  /** CIDR notation: the address with its subnet's prefix length, e.g. 10.22.0.5/16 */
  address: string;
  gateway?: string;
  /** index into Result.interfaces */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

/** One (container, interface) pair, as listed in cni.dev/valid-attachments for GC. */
export interface Attachment {
  containerID: string;
  ifname: string;
}

/** The network configuration fields every plugin shares; each plugin reads its own keys on top. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  ipam?: { type?: string; [k: string]: unknown };
  dns?: DNS;
  prevResult?: Result;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  /** the raw object, for plugin-specific keys */
  raw: Record<string, unknown>;
}

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';

/** Everything a plugin command gets: the parsed environment and the config. */
export interface CmdArgs {
  command: Command;
  containerId: string;
  /** path of the pod's network namespace; may be empty for DEL */
  netns: string;
  ifName: string;
  /** CNI_ARGS as key/value pairs */
  args: Record<string, string>;
  path: string[];
  stdin: Buffer;
  conf: NetConf;
}

export interface Plugin {
  add(a: CmdArgs): Promise<Result>;
  del(a: CmdArgs): Promise<void>;
  check(a: CmdArgs): Promise<void>;
  gc?(a: CmdArgs, valid: Attachment[]): Promise<void>;
  status?(a: CmdArgs): Promise<void>;
}
