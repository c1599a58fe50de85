// Captures from this kernel what pkg/netlink/kernel.test.ts replays without root (run: bash scripts/netlink-capture.sh):
//  - requests: for each kernel op, the message iproute2 sends for the same command line (strace's dump of its
//    sendmsg), with the interface indexes it ran against;
//  - dumps: the messages the kernel answers our reads with (recorded at the socket), beside what `ip -json` and
//    `bridge -json` print for the same objects.
// Everything happens in two throwaway namespaces, removed at the end.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../pkg/exec';
import { commandOf, type KernelOp } from '../pkg/ip/ops';
import { encodeMessage, NetlinkSocket, type Message } from '../pkg/netlink/nl';
import { dumpFdb, dumpLinks, dumpNeighs, dumpRoutes } from '../pkg/netlink/read';
import { Rtnl, type Transport } from '../pkg/netlink/rtnl';

const NODE = 'tscni-capture-node';
const POD = 'tscni-capture-pod';
const OUT = path.resolve(process.env.CAPTURE_OUT ?? 'pkg/netlink/testdata/kernel.json');
const NETLINK_ROUTE = 0;
const NLM_F_ACK = 0x4;

const OPS: KernelOp[] = [
  { op: 'link-add', name: 'capu0', link: { type: 'veth', peer: { name: 'capu1' } } },
  { op: 'link-set', name: 'capu0', up: true },
  { op: 'link-add', name: 'capbr0', mac: '02:00:00:00:0b:01', mtu: 1400, link: { type: 'bridge' } },
  {
    op: 'link-add',
    name: 'capv0',
    mac: '02:00:00:00:0a:01',
    mtu: 1400,
    link: { type: 'veth', peer: { name: 'eth0', mac: '02:00:00:00:0a:02', mtu: 1400, netns: `/var/run/netns/${POD}` } },
  },
  { op: 'link-set', name: 'capv0', master: 'capbr0' },
  { op: 'link-set', name: 'capv0', up: true, mtu: 1380, alias: 'pod a', promisc: true },
  { op: 'link-set', name: 'capbr0', addrGenMode: 'none' },
  { op: 'link-set', name: 'capbr0', up: true },
  { op: 'port-set', name: 'capv0', hairpin: true, isolated: true },
  { op: 'addr-replace', dev: 'capu0', cidr: '192.0.2.1/24' },
  { op: 'addr-replace', dev: 'capbr0', cidr: '10.77.0.1/24' },
  { op: 'addr-replace', dev: 'capbr0', cidr: 'fd77::1/64', nodad: true },
  { op: 'link-add', name: 'capvx', mtu: 1450, link: { type: 'vxlan', vni: 4097, local: '192.0.2.1', dev: 'capu0', port: 8472, learning: false } },
  { op: 'link-set', name: 'capvx', up: true },
  { op: 'route-replace', route: { dst: '10.78.0.0/24', gw: '10.77.0.2', dev: 'capbr0', onlink: true, proto: 222, metric: 50 } },
  { op: 'route-replace', route: { dst: '10.79.0.5', dev: 'capbr0', scope: 'link' } },
  { op: 'route-replace', route: { dst: '10.80.0.0/16', gw: '10.77.0.3', dev: 'capbr0', table: 1000, mtu: 1300, advmss: 1260, src: '10.77.0.1' } },
  { op: 'route-replace', route: { dst: 'fd78::/64', gw: 'fd77::2', dev: 'capbr0', proto: 222 } },
  { op: 'route-replace', route: { dst: '0.0.0.0/0', gw: '192.0.2.254', dev: 'capu0' } },
  { op: 'route-del', dst: '10.79.0.5', dev: 'capbr0' },
  { op: 'neigh-replace', dev: 'capbr0', ip: '10.77.0.8', mac: '02:00:00:00:00:08' },
  { op: 'neigh-replace', dev: 'capbr0', ip: 'fd77::8', mac: '02:00:00:00:00:09' },
  { op: 'neigh-replace', dev: 'capbr0', ip: '10.77.0.9', mac: '02:00:00:00:00:10' },
  { op: 'neigh-del', dev: 'capbr0', ip: '10.77.0.9' },
  { op: 'fdb-append', dev: 'capvx', mac: '02:00:00:00:00:20', dst: '192.0.2.2' },
  { op: 'fdb-append', dev: 'capvx', mac: '02:00:00:00:00:21', dst: '192.0.2.3' },
  { op: 'fdb-del', dev: 'capvx', mac: '02:00:00:00:00:21', dst: '192.0.2.3' },
  { op: 'link-add', name: 'capgone', link: { type: 'bridge' } },
  { op: 'link-del', name: 'capgone' },
];

/** Every message a traced program wrote, from strace's hex dumps (-e write=all). */
function sentMessages(trace: string): Buffer[] {
  const out: Buffer[] = [];
  let cur: number[] | undefined;
  for (const line of trace.split('\n')) {
    const m = /^\s*\|\s[0-9a-f]{5}\s+((?:[0-9a-f]{2}\s+)+)/.exec(line);
    if (m) {
      cur ??= [];
      cur.push(
        ...m[1]
          .trim()
          .split(/\s+/)
          .map((x) => parseInt(x, 16)),
      );
    } else if (cur) {
      out.push(Buffer.from(cur));
      cur = undefined;
    }
  }
  if (cur) out.push(Buffer.from(cur));
  return out;
}

async function indexes(): Promise<Record<string, number>> {
  const links = JSON.parse((await run('ip', ['-n', NODE, '-j', 'link', 'show'])).stdout) as Array<{ ifname: string; ifindex: number }>;
  return Object.fromEntries(links.map((l) => [l.ifname, l.ifindex]));
}

async function captureRequest(op: KernelOp) {
  const before = await indexes();
  const c = commandOf(op);
  const trace = path.join(fs.mkdtempSync('/tmp/tscni-capture-'), 'strace');
  await run('strace', ['-f', '-e', 'trace=sendmsg,sendto', '-e', 'write=all', '-o', trace, c.tool, '-n', NODE, ...c.args]);
  // the op's own message asks for an ack; the lookups iproute2 makes first do not, and its probe of the
  // kernel's extended acks (an empty message) has sequence number 0
  const sent = sentMessages(fs.readFileSync(trace, 'utf8')).filter((b) => b.length >= 16 && b.readUInt16LE(6) & NLM_F_ACK && b.readUInt32LE(8) !== 0);
  fs.rmSync(path.dirname(trace), { recursive: true });
  if (sent.length !== 1) throw new Error(`${c.tool} ${c.args.join(' ')}: ${sent.length} acked messages`);
  return { op, argv: [c.tool, ...c.args], indexes: before, sent: sent[0].toString('hex') };
}

/** A socket that records what it is asked and answers, for replay. */
class Recorder implements Transport {
  readonly exchanges: Array<{ sent: string[]; answers: string[] }> = [];
  constructor(private readonly sock: NetlinkSocket) {}
  request(type: number, flags: number, body: Buffer): void {
    this.sock.request(type, flags, body);
  }
  dump(type: number, body: Buffer): Message[] {
    const answers = this.sock.dump(type, body);
    this.exchanges.push({ sent: [encodeMessage(type, 0x301, 0, body).toString('hex')], answers: answers.map(hexOf) });
    return answers;
  }
  exchange(messages: Buffer[], onMessage: (m: Message) => void): void {
    const answers: string[] = [];
    this.sock.exchange(messages, (m) => {
      answers.push(hexOf(m));
      onMessage(m);
    });
    this.exchanges.push({ sent: messages.map((m) => Buffer.from(m).fill(0, 8, 16).toString('hex')), answers });
  }
  close(): void {
    this.sock.close();
  }
}

const hexOf = (m: Message) => encodeMessage(m.type, m.flags, 0, m.body).toString('hex');

async function ipJson(args: string[], tool = 'ip'): Promise<unknown> {
  return JSON.parse((await run(tool, ['-n', NODE, '-j', ...args])).stdout);
}

async function captureDumps() {
  const reads: Array<{ read: string; dev?: string; call: (rt: Rtnl) => unknown; ip: () => Promise<unknown> }> = [
    { read: 'links', call: (rt) => dumpLinks(rt), ip: () => ipJson(['-d', 'addr', 'show']) },
    { read: 'links', dev: 'capv0', call: (rt) => dumpLinks(rt, 'capv0'), ip: () => ipJson(['-d', 'addr', 'show', 'dev', 'capv0']) },
    { read: 'routes-main', call: (rt) => dumpRoutes(rt, 'main'), ip: () => ipJson(['-d', 'route', 'show', 'table', 'main']) },
    { read: 'routes-main-6', call: (rt) => dumpRoutes(rt, 'main', 6), ip: () => ipJson(['-d', '-6', 'route', 'show', 'table', 'main']) },
    {
      read: 'routes-all',
      call: (rt) => dumpRoutes(rt, 'all'),
      ip: async () => [
        ...((await ipJson(['-d', '-4', 'route', 'show', 'table', 'all'])) as unknown[]),
        ...((await ipJson(['-d', '-6', 'route', 'show', 'table', 'all'])) as unknown[]),
      ],
    },
    { read: 'neighs', dev: 'capbr0', call: (rt) => dumpNeighs(rt, 'capbr0'), ip: () => ipJson(['neigh', 'show', 'dev', 'capbr0']) },
    { read: 'fdb', dev: 'capvx', call: (rt) => dumpFdb(rt, 'capvx'), ip: () => ipJson(['fdb', 'show', 'dev', 'capvx'], 'bridge') },
  ];
  const out = [];
  for (const r of reads) {
    const rec = new Recorder(NetlinkSocket.open(NETLINK_ROUTE, `/var/run/netns/${NODE}`));
    r.call(new Rtnl(undefined, rec));
    rec.close();
    out.push({ read: r.read, dev: r.dev, exchanges: rec.exchanges, ip: await r.ip() });
  }
  return out;
}

async function main(): Promise<void> {
  for (const ns of [NODE, POD]) await run('ip', ['netns', 'del', ns], { allowFailure: true });
  try {
    for (const ns of [NODE, POD]) await run('ip', ['netns', 'add', ns]);
    const requests = [];
    for (const op of OPS) requests.push(await captureRequest(op));
    const dumps = await captureDumps();
    const kernel = (await run('uname', ['-r'])).stdout.trim();
    const iproute2 = (await run('ip', ['-V'])).stdout.trim();
    fs.writeFileSync(OUT, JSON.stringify({ kernel, iproute2, requests, dumps }, null, 1) + '\n');
    console.log(`netlink-capture: ${requests.length} requests, ${dumps.length} dumps -> ${OUT} (kernel ${kernel}, ${iproute2})`);
  } finally {
    for (const ns of [NODE, POD]) await run('ip', ['netns', 'del', ns], { allowFailure: true });
  }
}

main().catch((e: unknown) => {
  console.error(`netlink-capture: ${(e as Error).message}`);
  process.exitCode = 1;
});
