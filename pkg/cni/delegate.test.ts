import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { findInPath, ipamAdd, ipamDel, ipamGc } from './delegate';
import { CniError, ErrCode } from './errors';
import type { CmdArgs } from './types';
import { thrown } from '../testing';

// A fake IPAM plugin: records its stdin and CNI_* env next to itself, prints <self>.out, exits with <self>.rc.
const FAKE = `#!/bin/sh
cat > "$0.stdin"
env | grep '^CNI_' | sort > "$0.env"
[ -f "$0.out" ] && cat "$0.out"
[ -f "$0.err" ] && cat "$0.err" >&2
exit "$(cat "$0.rc" 2>/dev/null || echo 0)"
`;

let dir: string;
let bin: string;
let empty: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-t-delegate-'));
  bin = path.join(dir, 'bin');
  empty = path.join(dir, 'empty');
  fs.mkdirSync(bin);
  fs.mkdirSync(empty);
  fs.writeFileSync(path.join(bin, 'fake-ipam'), FAKE, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'not-exec'), FAKE, { mode: 0o644 });
  fs.mkdirSync(path.join(bin, 'a-dir'));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function setFake(out: string, rc = 0, err = ''): void {
  const base = path.join(bin, 'fake-ipam');
  fs.writeFileSync(`${base}.out`, out);
  fs.writeFileSync(`${base}.rc`, String(rc));
  fs.writeFileSync(`${base}.err`, err);
}

function args(over: Partial<CmdArgs> = {}, ipamType = 'fake-ipam'): CmdArgs {
  const raw = { cniVersion: '1.0.0', name: 'net1', type: 'bridge', ipam: { type: ipamType, subnet: '10.22.0.0/16' } };
  const stdin = Buffer.from(JSON.stringify(raw));
  return {
    command: 'ADD',
    containerId: 'ctr-1',
    netns: '/var/run/netns/p',
    ifName: 'eth0',
    args: {},
    path: [empty, bin],
    stdin,
    conf: { cniVersion: '1.0.0', name: 'net1', type: 'bridge', ipam: raw.ipam, raw },
    ...over,
  };
}

async function rejection(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error('expected a rejection');
}

describe('findInPath', () => {
  it('finds an executable file in the first directory that has it', () => {
    expect(findInPath('fake-ipam', [empty, bin])).toBe(path.join(bin, 'fake-ipam'));
  });

  it.each(['not-exec', 'a-dir', 'missing'])('%s is not a plugin: code 7 naming ipam.type and the path', (t) => {
    const e = thrown(() => findInPath(t, [empty, bin]));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toContain('ipam.type');
    expect(e.message).toContain(t);
    expect(e.message).toContain(bin);
  });

  it.each(['../bin/fake-ipam', '/bin/sh', '.', '..'])('refuses a path-like type %p', (t) => {
    expect(thrown(() => findInPath(t, [bin])).code).toBe(ErrCode.InvalidConfig);
  });
});

describe('delegation to an IPAM executable', () => {
  it('ADD passes the same stdin and env, and parses a 0.4.0 result into the 1.1 shape', async () => {
    setFake(JSON.stringify({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.22.0.5/16', gateway: '10.22.0.1' }], routes: [{ dst: '0.0.0.0/0' }] }));
    const a = args();
    const r = await ipamAdd(a);
    expect(r).toEqual({ cniVersion: '0.4.0', ips: [{ address: '10.22.0.5/16', gateway: '10.22.0.1' }], routes: [{ dst: '0.0.0.0/0' }] });
    const base = path.join(bin, 'fake-ipam');
    expect(fs.readFileSync(`${base}.stdin`, 'utf8')).toBe(a.stdin.toString());
    const env = fs.readFileSync(`${base}.env`, 'utf8');
    expect(env).toContain('CNI_COMMAND=ADD\n');
    expect(env).toContain('CNI_CONTAINERID=ctr-1\n');
    expect(env).toContain('CNI_NETNS=/var/run/netns/p\n');
    expect(env).toContain('CNI_IFNAME=eth0\n');
    expect(env).toContain(`CNI_PATH=${empty}:${bin}\n`);
  });

  it('DEL and GC run the same plugin with their verb', async () => {
    setFake('');
    await ipamDel(args({ command: 'DEL', netns: '' }));
    expect(fs.readFileSync(path.join(bin, 'fake-ipam.env'), 'utf8')).toContain('CNI_COMMAND=DEL\n');
    await ipamGc(args({ command: 'GC' }));
    expect(fs.readFileSync(path.join(bin, 'fake-ipam.env'), 'utf8')).toContain('CNI_COMMAND=GC\n');
  });

  it("a plugin's error JSON keeps its code, and names the plugin", async () => {
    setFake(JSON.stringify({ cniVersion: '1.0.0', code: 100, msg: 'no IP addresses available in range set', details: '10.22.0.1-10.22.0.6' }), 1);
    const e = await rejection(ipamAdd(args()));
    expect(e.code).toBe(100);
    expect(e.message).toContain('fake-ipam');
    expect(e.message).toContain('no IP addresses available');
    expect(e.message).toContain('10.22.0.1-10.22.0.6');
  });

  it('a failure without error JSON is 999 with stderr', async () => {
    setFake('', 2, 'panic: runtime error\n');
    const e = await rejection(ipamDel(args({ command: 'DEL' })));
    expect(e.code).toBe(ErrCode.Internal);
    expect(e.message).toContain('panic: runtime error');
    setFake('null', 3);
    expect((await rejection(ipamDel(args({ command: 'DEL' })))).code).toBe(ErrCode.Internal);
  });

  it('a success with garbage on stdout is code 6', async () => {
    setFake('not json');
    const e = await rejection(ipamAdd(args()));
    expect(e.code).toBe(ErrCode.DecodeFailure);
    expect(e.message).toContain('fake-ipam');
  });

  it('no ipam.type: code 7', async () => {
    const a = args();
    a.conf = { ...a.conf, ipam: {} };
    const e = await rejection(ipamAdd(a));
    expect(e.code).toBe(ErrCode.InvalidConfig);
    expect(e.message).toContain('ipam.type');
  });
});
