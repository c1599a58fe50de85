// Against bytes captured from a kernel and iproute2 (testdata/kernel.json, made by scripts/netlink-capture.sh
// in throwaway namespaces): each op's request is the message `ip` (or `bridge`) sends for the same command
// line, and each read turns the kernel's answers into what `ip -json` printed for the same objects. Runs
// without root; e2e/netlink.e2e.ts does the same against the live kernel.
import * as fs from 'fs';
import * as path from 'path';
import type { FdbRecord, IpLink, IpNeigh, IpRoute, KernelOp } from '../ip/ops';
import { fdbKey, linkView, neighKey, routeKey, selfEntries } from './ipjson';
import { decodeMessages, encodeMessage, NLM_F_ACK, NLM_F_REQUEST, type Message } from './nl';
import { dumpFdb, dumpLinks, dumpNeighs, dumpRoutes } from './read';
import { requestOf, Rtnl, type Transport } from './rtnl';

interface Capture {
  kernel: string;
  iproute2: string;
  requests: Array<{ op: KernelOp; argv: string[]; indexes: Record<string, number>; sent: string }>;
  dumps: Array<{ read: string; dev?: string; exchanges: Array<{ sent: string[]; answers: string[] }>; ip: any }>;
}
const capture = JSON.parse(fs.readFileSync(path.join(__dirname, 'testdata', 'kernel.json'), 'utf8')) as Capture;

const IFLA_NET_NS_FD = 28;

/** ip's own descriptor for the peer's netns (IFLA_NET_NS_FD): a number of its process; any value compares */
function netnsFdIn(msg: Buffer): number {
  const at = msg.indexOf(Buffer.from([8, 0, IFLA_NET_NS_FD, 0]));
  return at < 0 ? -1 : msg.readUInt32LE(at + 4);
}

// Where the bytes differ and the kernel reads them alike, both sides are brought to one form (canonical):
//  - attribute order, and the NLA_F_NESTED flag (we set it, as the kernel's strict parsing wants; ip does not);
//  - string attributes with or without their terminating NUL (ip sends a link kind and an alias without);
//  - a device named by IFLA_IFNAME with index 0 (ours: no lookup needed) or by its index (ip looks it up);
//  - a bridge port's kind beside IFLA_INFO_SLAVE_DATA (the kernel takes the master's ops and reads no kind);
//  - the main-table byte of a route when RTA_TABLE carries the table, and RTA_DST 0.0.0.0 of a /0 route;
//  - IFA_FLAGS when it repeats the header's flags (ours always sends it), and ndm_state in a delete.
type Schema = { [type: number]: Schema | 'ifinfo+attrs' | 'string' };
const LINK: Schema = {
  3: 'string', // IFNAME
  20: 'string', // IFALIAS
  // LINKINFO: KIND, DATA (a veth's PEER is an ifinfomsg with attributes), SLAVE_KIND, SLAVE_DATA
  18: { 1: 'string', 2: { 1: 'ifinfo+attrs' }, 4: 'string', 5: {} },
  26: { 2: {}, 10: {} }, // AF_SPEC: AF_INET, AF_INET6
};
const SCHEMA: Record<number, Schema> = { 16: LINK, 17: LINK, 24: { 8: {} } };
const HEAD: Record<number, number> = { 16: 16, 17: 16, 20: 8, 21: 8, 24: 12, 25: 12, 28: 12, 29: 12 };
const IFLA_LINKINFO = 18;

const stripNul = (v: Buffer) => {
  let e = v.length;
  while (e > 0 && v[e - 1] === 0) e--;
  return v.subarray(0, e);
};

/** Attributes as sorted `type=hex` and `type{...}` by the schema, nested flag cleared. */
function attrList(b: Buffer, schema: Schema): string[] {
  const out: string[] = [];
  for (let o = 0; o + 4 <= b.length;) {
    const len = b.readUInt16LE(o);
    if (len < 4) break;
    const type = b.readUInt16LE(o + 2) & 0x3fff;
    const v = b.subarray(o + 4, o + len);
    const s = schema[type];
    if (s === 'string') out.push(`${type}=${stripNul(v).toString('hex')}`);
    else if (s === 'ifinfo+attrs') out.push(`${type}{${v.subarray(0, 16).toString('hex')} ${attrList(v.subarray(16), LINK).join(' ')}}`);
    else if (s) out.push(`${type}{${attrList(v, s).join(' ')}}`);
    else out.push(`${type}=${v.toString('hex')}`);
    o += (len + 3) & ~3;
  }
  return out.sort();
}

/** One form for a request body (see above); `indexes` numbers the devices a link message names. */
function canonical(type: number, flags: number, body: Buffer, indexes: Record<string, number>): string {
  const h = HEAD[type] ?? 12;
  const head = Buffer.from(body.subarray(0, h));
  let attrs = attrList(body.subarray(h), SCHEMA[type] ?? {});
  if ((type === 16 || type === 17) && !(flags & 0x400) && head.readInt32LE(4) === 0) {
    const name = attrs.find((a) => a.startsWith('3='));
    if (name) {
      head.writeInt32LE(indexes[Buffer.from(name.slice(2), 'hex').toString()], 4);
      attrs = attrs.filter((a) => a !== name);
    }
  }
  attrs = attrs.map((a) =>
    a.startsWith(`${IFLA_LINKINFO}{`) && / 5\{/.test(` ${a.slice(3)}`) ? a.replace(/(^18\{| )(1|4)=[0-9a-f]+/g, '$1').replace(/\{ +/, '{') : a,
  );
  if (type === 24 && attrs.some((a) => a.startsWith('15='))) head.writeUInt8(0, 4);
  if (type === 24 && head.readUInt8(1) === 0) attrs = attrs.filter((a) => a !== '1=00000000' && a !== `1=${'00'.repeat(16)}`);
  if (type === 20) attrs = attrs.filter((a) => a !== `8=${Buffer.from([head[2], 0, 0, 0]).toString('hex')}`);
  if (type === 29) head.writeUInt16LE(0, 8);
  return `type ${type} flags ${(flags | NLM_F_REQUEST | NLM_F_ACK).toString(16)} head ${head.toString('hex')} ${attrs.join(' ')}`;
}

describe(`requests: the messages iproute2 sends (${capture.iproute2.replace(/^.*(iproute2-[\d.]+).*$/, '$1')}, kernel ${capture.kernel})`, () => {
  it.each(capture.requests.map((r) => [r.argv.join(' '), r] as const))('%s', (_argv, r) => {
    const ip = Buffer.from(r.sent, 'hex');
    const ours = requestOf(r.op as Exclude<KernelOp, { op: 'sysctl' }>, {
      index: (name) => {
        if (!(name in r.indexes)) throw new Error(`no device ${name}`);
        return r.indexes[name];
      },
      netnsFd: () => netnsFdIn(ip),
    });
    expect(canonical(ours.type, ours.flags, ours.body, r.indexes)).toBe(
      canonical(ip.readUInt16LE(4), ip.readUInt16LE(6), ip.subarray(16, ip.readUInt32LE(0)), r.indexes),
    );
  });

  it('the canonical form still tells different requests apart', () => {
    const [a, b] = capture.requests.filter((r) => r.op.op === 'route-replace');
    const form = (r: (typeof capture.requests)[number]) => {
      const m = Buffer.from(r.sent, 'hex');
      return canonical(m.readUInt16LE(4), m.readUInt16LE(6), m.subarray(16, m.readUInt32LE(0)), r.indexes);
    };
    expect(form(a)).not.toBe(form(b));
  });
});

/** Answers a read from the capture, and fails when the read asks anything else than it asked at capture. */
class Replay implements Transport {
  private next = 0;
  constructor(private readonly exchanges: Capture['dumps'][number]['exchanges']) {}
  private take(sent: string[]): Message[] {
    const e = this.exchanges[this.next++];
    expect(sent).toEqual(e?.sent);
    return e.answers.flatMap((a) => decodeMessages(Buffer.from(a, 'hex')));
  }
  dump(type: number, body: Buffer): Message[] {
    return this.take([encodeMessage(type, 0x301, 0, body).toString('hex')]);
  }
  exchange(messages: Buffer[], onMessage: (m: Message) => void): void {
    for (const m of this.take(messages.map((b) => Buffer.from(b).fill(0, 8, 16).toString('hex')))) onMessage(m);
  }
  request(): void {
    throw new Error('a read sent a change');
  }
  close(): void {
    expect(this.next).toBe(this.exchanges.length);
  }
}

describe('reads: the kernel answers decoded as ip -json prints them', () => {
  const replay = (read: string, dev?: string) => {
    const d = capture.dumps.find((x) => x.read === read && x.dev === dev)!;
    return { rt: new Rtnl(undefined, new Replay(d.exchanges)), ip: d.ip };
  };

  it.each([[undefined], ['capv0']])('links (%s): fields, flags, kind and addresses; a VTEP its settings', (dev) => {
    const { rt, ip } = replay('links', dev);
    const links = dumpLinks(rt, dev);
    rt.close();
    expect(links.flatMap(linkView)).toEqual((ip as IpLink[]).flatMap(linkView));
    if (!dev) {
      expect(links.find((l) => l.ifname === 'capvx')?.linkinfo?.info_data).toMatchObject({
        id: 4097,
        local: '192.0.2.1',
        link: 'capu0',
        port: 8472,
        learning: false,
      });
    }
  });

  it.each([
    ['routes-main', 'main', undefined],
    ['routes-main-6', 'main', 6],
    ['routes-all', 'all', undefined],
  ] as const)('%s: type, destination, gateway, device, protocol, scope, table, flags', (read, table, family) => {
    const { rt, ip } = replay(read);
    const routes = dumpRoutes(rt, table, family);
    rt.close();
    expect(routes.length).toBeGreaterThan(0);
    expect(routes.map(routeKey).sort()).toEqual((ip as IpRoute[]).map(routeKey).sort());
  });

  it('neighbours of a device, permanent entries of both families', () => {
    const { rt, ip } = replay('neighs', 'capbr0');
    const neighs = dumpNeighs(rt, 'capbr0');
    rt.close();
    expect(neighs.map(neighKey).sort()).toEqual((ip as IpNeigh[]).map(neighKey).sort());
    expect(neighs.length).toBe(2);
  });

  it("a VTEP's own forwarding entries (the deleted one gone)", () => {
    const { rt, ip } = replay('fdb', 'capvx');
    const fdb = dumpFdb(rt, 'capvx');
    rt.close();
    expect(fdb.map(fdbKey).sort()).toEqual(
      selfEntries(ip as FdbRecord[])
        .map(fdbKey)
        .sort(),
    );
    expect(fdb.map((e) => e.mac)).toEqual(['02:00:00:00:00:20']);
  });
});
