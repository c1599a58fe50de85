// What `ip -json` and `bridge -json` print, reduced to the fields our reads produce: the one comparison of our
// decoded dumps with iproute2's, used by the unit tests on captured bytes (kernel.test.ts) and the e2e on a live
// kernel (e2e/netlink.e2e.ts). Test code only; no plugin imports it.

/* eslint-disable @typescript-eslint/no-explicit-any -- iproute2's JSON, read loosely */

const LINK_FIELDS = ['ifindex', 'mtu', 'address', 'ifalias', 'master', 'link_index', 'link_netnsid', 'operstate'] as const;
const FLAGS = ['UP', 'BROADCAST', 'LOOPBACK', 'POINTOPOINT', 'NOARP', 'PROMISC', 'ALLMULTI', 'MULTICAST'];

/** A link as text lines: the fields we produce, the flags ip and we both print, its kind and its addresses. */
export function linkView(l: any): string[] {
  const addr = (a: any) => `addr ${a.family} ${a.local}/${a.prefixlen} ${a.scope}${a.tentative ? ' tentative' : ''}`;
  return [
    ...LINK_FIELDS.map((k) => `${l.ifname} ${k} ${l[k] ?? '-'}`),
    `${l.ifname} flags ${(l.flags ?? [])
      .filter((f: string) => FLAGS.includes(f))
      .sort()
      .join(',')}`,
    `${l.ifname} kind ${l.linkinfo?.info_kind ?? '-'}`,
    ...(l.addr_info ?? []).map((a: any) => `${l.ifname} ${addr(a)}`).sort(),
  ];
}

export const routeKey = (r: any): string =>
  [r.type ?? 'unicast', r.dst, r.gateway ?? '', r.dev ?? '', r.protocol, r.scope, r.table ?? 'main', (r.flags ?? []).join(',')].join(' ');

export const neighKey = (n: any): string => `${n.dst} ${n.lladdr ?? ''} ${(n.state ?? []).join(',')}`;

export const fdbKey = (e: any): string => `${e.mac} ${e.dst ?? ''} ${e.state ?? ''}`;

/** bridge fdb show lists the bridge's entries too: those of the device itself (self) are ours */
export const selfEntries = (entries: any[]): any[] => entries.filter((e) => e.flags?.includes('self'));
