import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { run } from '../exec';
import { observeDoors } from '../doorlog';
import { CniError, ErrCode } from './errors';
import { CallLog, formatFields, parseLogConf } from './log';
import { runPlugin, type SkelIO } from './skel';
import type { CmdArgs, Plugin } from './types';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-log-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => observeDoors(undefined, undefined));

const env = { CNI_CONTAINERID: 'ctr-1', CNI_NETNS: '/var/run/netns/p1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

function plugin(fail?: CniError): Plugin {
  const act = async () => {
    if (fail) throw fail;
  };
  return {
    add: async () => {
      await act();
      return { cniVersion: '1.1.0', ips: [{ address: '10.22.0.5/16', gateway: '10.22.0.1' }, { address: 'fd00::5/64' }] };
    },
    del: act,
    check: act,
  };
}

async function call(command: string, log: unknown, p: Plugin = plugin(), cniEnv: Record<string, string> = env) {
  const out: string[] = [];
  const err: string[] = [];
  const io: SkelIO = {
    env: { ...cniEnv, CNI_COMMAND: command },
    readStdin: async () => Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'net1', type: 'fake', ...(log === undefined ? {} : { log }) })),
    write: async (s) => void out.push(s),
    log: (s) => void err.push(s),
  };
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
  try {
    const exit = await runPlugin('fake', () => p, io);
    return { exit, stdout: out.join(''), stderr: err.join('') };
  } finally {
    stderr.mockRestore();
  }
}

const lines = (f: string) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean);

describe('parseLogConf', () => {
  it('is undefined without a log block and defaults the level to info', () => {
    expect(parseLogConf({})).toBeUndefined();
    expect(parseLogConf({ log: { file: '/var/log/tscni.log' } })).toEqual({ file: '/var/log/tscni.log', level: 'info' });
  });

  it('refuses a bad level, a missing or relative file, a non-object, naming the key (code 7)', () => {
    const bad = (log: unknown, re: RegExp) => {
      let e: unknown;
      try {
        parseLogConf({ log });
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(CniError);
      expect((e as CniError).code).toBe(ErrCode.InvalidConfig);
      expect((e as CniError).message).toMatch(re);
    };
    bad({ file: '/x', level: 'trace' }, /^invalid config: log\.level: "trace" is not one of error, info, debug$/);
    bad({ level: 'info' }, /log\.file: is required/);
    bad({ file: 'tscni.log' }, /log\.file: "tscni\.log" is not an absolute path/);
    bad('yes', /log: expected an object/);
  });
});

describe('formatFields', () => {
  it('quotes values with blanks, quotes or =, and leaves out undefined ones', () => {
    expect(
      formatFields([
        ['a', 'x'],
        ['b', undefined],
        ['c', 'two words'],
        ['d', 'k=v'],
        ['e', 3],
      ]),
    ).toBe('a=x c="two words" d="k=v" e=3');
  });
});

describe('a call with a log block', () => {
  it('ADD, DEL and a failing ADD each append one line; stdout stays the CNI JSON alone', async () => {
    const file = path.join(dir, 'calls.log');
    const add = await call('ADD', { file });
    expect(add.exit).toBe(0);
    expect(JSON.parse(add.stdout).ips).toHaveLength(2);
    expect(add.stdout.trim().split('\n')).toHaveLength(1);
    const del = await call('DEL', { file, level: 'info' });
    expect(del.stdout).toBe('');
    const bad = await call('ADD', { file }, plugin(new CniError(ErrCode.KernelOperation, 'ip link add: File exists')));
    expect(bad.exit).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 101, msg: 'ip link add: File exists' });
    const l = lines(file);
    expect(l).toHaveLength(3);
    expect(l[0]).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z fake ADD id=ctr-1 netns=\/var\/run\/netns\/p1 if=eth0 result=ok ips=10\.22\.0\.5\/16,fd00::5\/64 ms=\d+\.\d$/,
    );
    expect(l[1]).toMatch(/ fake DEL id=ctr-1 netns=\/var\/run\/netns\/p1 if=eth0 result=ok ms=\d+\.\d$/);
    expect(l[2]).toMatch(/ fake ADD id=ctr-1 .* result=error code=101 msg="ip link add: File exists" ms=/);
  });

  it('a DEL without CNI_NETNS leaves the netns field out', async () => {
    const file = path.join(dir, 'nonetns.log');
    const { CNI_NETNS: _, ...noNetns } = env;
    expect((await call('DEL', { file }, plugin(), noNetns)).exit).toBe(0);
    expect(lines(file)[0]).toMatch(/ fake DEL id=ctr-1 if=eth0 result=ok /);
  });

  it('level error logs failures only', async () => {
    const file = path.join(dir, 'errors.log');
    await call('CHECK', { file, level: 'error' });
    expect(fs.existsSync(file)).toBe(false);
    await call('CHECK', { file, level: 'error' }, plugin(new CniError(ErrCode.CheckFailed, 'CHECK failed: x')));
    expect(lines(file)).toEqual([expect.stringMatching(/ fake CHECK .* result=error code=\d+ msg="CHECK failed: x"/)]);
  });

  it('a bad level fails the call with code 7 naming log.level, before the plugin runs', async () => {
    let ran = false;
    const p: Plugin = { ...plugin(), add: async () => ((ran = true), { cniVersion: '1.1.0' }) };
    const r = await call('ADD', { file: path.join(dir, 'x.log'), level: 'loud' }, p);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/log\.level/) });
    expect(ran).toBe(false);
  });

  it('a log that cannot be written never fails the call: stderr says so, stdout is the result', async () => {
    const file = path.join(dir, 'no-such-dir', 'x.log');
    const r = await call('ADD', { file });
    expect(r.exit).toBe(0);
    expect(JSON.parse(r.stdout).ips).toHaveLength(2);
    expect(r.stderr).toMatch(new RegExp(`tscni: log: cannot write ${file.replace(/[.]/g, '\\.')}: ENOENT`));
  });

  it('a FIFO named as the log cannot hold the call (its open would block without a reader): stderr says so', async () => {
    const file = path.join(dir, 'fifo');
    await run('mkfifo', [file]);
    const r = await call('ADD', { file });
    expect(r.exit).toBe(0);
    expect(JSON.parse(r.stdout).ips).toHaveLength(2);
    expect(r.stderr).toMatch(/tscni: log: cannot write .*fifo: (ENXIO|EFIFO)/);
  });

  it('level debug adds a line per external command, written with the call line in one append', async () => {
    const file = path.join(dir, 'debug.log');
    const p: Plugin = {
      ...plugin(),
      add: async () => (await run('true', []), await run('sh', ['-c', 'exit 3'], { allowFailure: true }), { cniVersion: '1.1.0' }),
    };
    expect((await call('ADD', { file, level: 'debug' }, p)).exit).toBe(0);
    const l = lines(file);
    expect(l).toHaveLength(3);
    expect(l[0]).toMatch(/ fake ADD id=ctr-1 cmd=true exit=0 ms=\d+\.\d$/);
    expect(l[1]).toMatch(/ fake ADD id=ctr-1 cmd="sh -c exit 3" exit=3 ms=/);
    expect(l[2]).toMatch(/ result=ok ms=/);
  });
});

describe('CallLog', () => {
  it('writes all lines of a call in a single append', () => {
    const appends: string[] = [];
    const a = { command: 'ADD', containerId: 'c', netns: '/n', ifName: 'eth0' } as CmdArgs;
    const log = new CallLog({ file: '/f', level: 'debug' }, 'bridge', a, 0, {
      now: () => 12.34,
      append: (_f, t) => void appends.push(t),
      warn: () => undefined,
      clock: () => new Date(0),
    });
    log.command('ip', ['-batch', '-'], 2, 0);
    log.kernelOp('ip link set veth1 up', undefined, 0.04, undefined);
    log.kernelOp('ip addr replace 10.0.0.2/24 dev eth0', '/n', 0.25, 'File exists');
    log.done({ cniVersion: '1.1.0' });
    expect(appends).toEqual([
      [
        '1970-01-01T00:00:00.000Z bridge ADD id=c cmd="ip -batch -" exit=0 ms=2.0',
        '1970-01-01T00:00:00.000Z bridge ADD id=c op="ip link set veth1 up" result=ok ms=0.0',
        '1970-01-01T00:00:00.000Z bridge ADD id=c op="ip addr replace 10.0.0.2/24 dev eth0" netns=/n result=error msg="File exists" ms=0.3',
        '1970-01-01T00:00:00.000Z bridge ADD id=c netns=/n if=eth0 result=ok ms=12.3\n',
      ].join('\n'),
    ]);
  });
});
