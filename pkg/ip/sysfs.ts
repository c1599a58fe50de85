// Reads of this namespace's links and routes from /sys and /proc: no process spawn.
import * as fs from 'fs';

const SYS = '/sys/class/net';

function read(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export interface SysLink {
  name: string;
  ifindex: number;
  mtu: number;
  mac: string;
  /** the bridge this link is a port of */
  master?: string;
  isBridge: boolean;
  operstate: string;
  /** administratively up (IFF_UP); a bridge without ports is up but has operstate down */
  adminUp: boolean;
  /** peer ifindex for a veth (iflink), equal to ifindex for other links */
  iflink: number;
}

export function linkExists(name: string): boolean {
  return fs.existsSync(`${SYS}/${name}`);
}

export function readLink(name: string): SysLink | undefined {
  const base = `${SYS}/${name}`;
  const ifindex = read(`${base}/ifindex`);
  if (ifindex === undefined) return undefined;
  let master: string | undefined;
  try {
    master = fs.readlinkSync(`${base}/master`).split('/').pop();
  } catch {
    master = undefined;
  }
  return {
    name,
    ifindex: Number(ifindex),
    mtu: Number(read(`${base}/mtu`)),
    mac: read(`${base}/address`) ?? '',
    master,
    isBridge: fs.existsSync(`${base}/bridge`),
    operstate: read(`${base}/operstate`) ?? 'unknown',
    adminUp: (Number(read(`${base}/flags`) ?? 0) & 1) === 1,
    iflink: Number(read(`${base}/iflink`) ?? ifindex),
  };
}

/** operstate alone (polled while a link comes up); undefined when the link is gone */
export function readOperstate(name: string): string | undefined {
  return read(`${SYS}/${name}/operstate`);
}

/** Bridge port flags (hairpin_mode, isolated, ...) from /sys/class/net/<port>/brport. */
export function readBrport(name: string, flag: string): string | undefined {
  return read(`${SYS}/${name}/brport/${flag}`);
}

/** The interface holding the IPv4 default route (lowest metric), from /proc/net/route. */
export function defaultRouteInterface(): string | undefined {
  const text = read('/proc/net/route');
  if (!text) return undefined;
  let best: { dev: string; metric: number } | undefined;
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
    if (f.length < 8 || f[1] !== '00000000' || f[7] !== '00000000') continue;
    const metric = Number(f[6]);
    if (!best || metric < best.metric) best = { dev: f[0], metric };
  }
  if (best) return best.dev;
  // IPv6-only node: /proc/net/ipv6_route lists ::/0 as 32 zeros and prefix 00
  const v6 = read('/proc/net/ipv6_route');
  for (const line of v6?.split('\n') ?? []) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 10 && /^0{32}$/.test(f[0]) && f[1] === '00' && f[9] !== 'lo') return f[9];
  }
  return undefined;
}

/** MTU of the default-route interface: the underlay pods' traffic leaves through; 1500 when unknown. */
export function defaultRouteMtu(): number {
  const dev = defaultRouteInterface();
  const mtu = dev ? Number(read(`${SYS}/${dev}/mtu`)) : NaN;
  return Number.isFinite(mtu) && mtu > 0 ? mtu : 1500;
}
