// Our host-local and the reference Go host-local on one data directory, alternately: each must honour the
// other's reservations, round-robin cursor and releases. Touches only a temp dataDir; no namespaces needed.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { run } from '../pkg/exec';

const REF = process.env.REF_HOST_LOCAL ?? '/usr/lib/cni/host-local';
const bundle = path.join(os.tmpdir(), `tscni-hl-e2e-${process.pid}.js`);
let dataDir: string;

beforeAll(async () => {
  if (!fs.existsSync(REF)) throw new Error(`reference host-local missing at ${REF}: apt-get install containernetworking-plugins`);
  await run('npx', ['esbuild', path.join(__dirname, '../plugins/main.ts'), '--bundle', '--platform=node', `--outfile=${bundle}`, '--log-level=warning']);
}, 60_000);
afterAll(() => fs.rmSync(bundle, { force: true }));
beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-hl-e2e-'));
});
afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

type Who = 'ours' | 'ref';
interface Out {
  code: number;
  json: { ips?: Array<{ address: string }>; code?: number; msg?: string };
}

function conf(ranges: unknown): string {
  // never fall back to the machine's /var/lib/cni/networks
  if (!dataDir) throw new Error('conf() before the temp dataDir exists');
  return JSON.stringify({ cniVersion: '1.0.0', name: 'interop', type: 'host-local', ipam: { type: 'host-local', dataDir, ranges } });
}

async function cni(who: Who, command: string, id: string, c: string, ifname = 'eth0'): Promise<Out> {
  const env = { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: ifname, CNI_PATH: path.dirname(REF) };
  const [file, args] = who === 'ours' ? [process.execPath, [bundle, 'host-local']] : [REF, []];
  const r = await run(file, args, { input: c, env, allowFailure: true });
  return { code: r.exitCode, json: r.stdout.trim() ? JSON.parse(r.stdout) : {} };
}

async function add(who: Who, id: string, c: string, ifname = 'eth0'): Promise<string[]> {
  const r = await cni(who, 'ADD', id, c, ifname);
  if (r.code !== 0) throw new Error(`${who} ADD ${id}: ${JSON.stringify(r.json)}`);
  return r.json.ips!.map((i) => i.address);
}

const files = () => fs.readdirSync(path.join(dataDir, 'interop')).sort();

const dual = () => conf([[{ subnet: '10.7.0.0/24', rangeEnd: '10.7.0.20' }], [{ subnet: 'fd07::/120', rangeEnd: 'fd07::20' }]]);

test('reservations of the reference are honoured by ours: CHECK, idempotent ADD, round-robin, DEL', async () => {
  expect(await add('ref', 'r1', dual())).toEqual(['10.7.0.2/24', 'fd07::2/120']);
  expect(await add('ours', 'o1', dual())).toEqual(['10.7.0.3/24', 'fd07::3/120']);
  expect((await cni('ours', 'CHECK', 'r1', dual())).code).toBe(0);
  expect(await add('ours', 'r1', dual())).toEqual(['10.7.0.2/24', 'fd07::2/120']);
  expect((await cni('ours', 'DEL', 'r1', dual())).code).toBe(0);
  expect(files()).toEqual(['10.7.0.3', 'fd07::3', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  expect((await cni('ours', 'CHECK', 'r1', dual())).json.code).toBe(102);
});

test('reservations of ours are honoured by the reference: same bytes on disk, CHECK, round-robin, DEL', async () => {
  expect(await add('ours', 'o1', dual())).toEqual(['10.7.0.2/24', 'fd07::2/120']);
  expect(await add('ref', 'r1', dual())).toEqual(['10.7.0.3/24', 'fd07::3/120']);
  const dir = path.join(dataDir, 'interop');
  expect(fs.readFileSync(path.join(dir, '10.7.0.2'), 'utf8')).toBe(fs.readFileSync(path.join(dir, '10.7.0.3'), 'utf8').replace('r1', 'o1'));
  // 0600 as upstream writes since v1.2; the Debian v1.1.1 binary still writes 0644
  expect(fs.statSync(path.join(dir, 'fd07::2')).mode & 0o777).toBe(0o600);
  expect((await cni('ref', 'CHECK', 'o1', dual())).code).toBe(0);
  expect((await cni('ref', 'DEL', 'o1', dual())).code).toBe(0);
  expect(files()).toEqual(['10.7.0.3', 'fd07::3', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  // our index learns of the release made behind its back
  expect((await cni('ours', 'CHECK', 'o1', dual())).json.code).toBe(102);
  expect(await add('ours', 'o2', dual())).toEqual(['10.7.0.4/24', 'fd07::4/120']);
  expect(await add('ref', 'r2', dual())).toEqual(['10.7.0.5/24', 'fd07::5/120']);
});

test('alternating writers fill a range without a duplicate, and both see it exhausted', async () => {
  const small = conf([[{ subnet: '10.8.0.0/24', rangeStart: '10.8.0.10', rangeEnd: '10.8.0.17' }]]);
  const got: string[] = [];
  for (let i = 0; i < 8; i++) got.push(...(await add(i % 2 ? 'ref' : 'ours', `c${i}`, small)));
  expect(new Set(got).size).toBe(8);
  const ours = await cni('ours', 'ADD', 'x', small);
  expect(ours.json.code).toBe(100);
  expect(ours.json.msg).toBe('no IP addresses available in range set: 10.8.0.10-10.8.0.17');
  const ref = await cni('ref', 'ADD', 'x', small);
  expect(ref.code).not.toBe(0);
  expect(ref.json.msg).toContain('no IP addresses available in range set: 10.8.0.10-10.8.0.17');
  expect((await cni('ours', 'STATUS', 'x', small.replace('1.0.0', '1.1.0'))).json.code).toBe(50);
  // the reference releases one of ours, ours hands it out again
  expect((await cni('ref', 'DEL', 'c0', small)).code).toBe(0);
  expect(await add('ours', 'y', small)).toEqual(['10.8.0.10/24']);
});

test('legacy id-only files of old reference versions: both release them', async () => {
  const c = conf([[{ subnet: '10.9.0.0/24' }]]);
  const dir = path.join(dataDir, 'interop');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, '10.9.0.50'), 'old1', { mode: 0o600 });
  fs.writeFileSync(path.join(dir, '10.9.0.51'), 'old2', { mode: 0o600 });
  expect((await cni('ours', 'DEL', 'old1', c)).code).toBe(0);
  expect((await cni('ref', 'DEL', 'old2', c)).code).toBe(0);
  expect(files()).toEqual(['lock']);
});
