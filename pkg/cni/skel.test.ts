import { CniError, ErrCode } from './errors';
import { checkCniArgs, parseCniArgs, runPlugin, validateContainerId, validateIfName, type SkelIO } from './skel';
import type { Attachment, CmdArgs, Plugin, Result } from './types';
import { SUPPORTED_VERSIONS } from './version';

interface Call {
  verb: string;
  args: CmdArgs;
  valid?: Attachment[];
}

/** A plugin that records its calls and returns a fixed 1.1 result (or throws what it is told to). */
function fakePlugin(opts: { result?: Result; throws?: unknown; gc?: boolean; status?: boolean } = {}) {
  const calls: Call[] = [];
  const act = (verb: string, args: CmdArgs, valid?: Attachment[]) => {
    calls.push({ verb, args, valid });
    if (opts.throws !== undefined) throw opts.throws;
  };
  const plugin: Plugin = {
    async add(a) {
      act('ADD', a);
      return opts.result ?? result11;
    },
    async del(a) {
      act('DEL', a);
    },
    async check(a) {
      act('CHECK', a);
    },
  };
  if (opts.gc !== false) plugin.gc = async (a, valid) => act('GC', a, valid);
  if (opts.status !== false) plugin.status = async (a) => act('STATUS', a);
  return { plugin, calls };
}

const result11: Result = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', mac: '0a:58:0a:16:00:05', sandbox: '/var/run/netns/p', mtu: 1400 }],
  ips: [{ address: '10.22.0.5/16', gateway: '10.22.0.1', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1', mtu: 1400 }],
};

const baseEnv = {
  CNI_CONTAINERID: 'ctr-1',
  CNI_NETNS: '/var/run/netns/p',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
};

function conf(over: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: '1.1.0', name: 'net1', type: 'fake', ...over });
}

interface Outcome {
  exit: number;
  stdout: string;
  logs: string[];
  /** the single JSON document on stdout, or undefined when stdout is empty */
  doc: Record<string, unknown> | undefined;
  calls: Call[];
  loaded: number;
}

async function invoke(env: Record<string, string | undefined>, stdin: string | Buffer | Error, p = fakePlugin()): Promise<Outcome> {
  const writes: string[] = [];
  const logs: string[] = [];
  let loaded = 0;
  const io: SkelIO = {
    env: env as NodeJS.ProcessEnv,
    readStdin: async () => {
      if (stdin instanceof Error) throw stdin;
      return Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin);
    },
    write: async (s) => {
      writes.push(s);
    },
    log: (s) => logs.push(s),
  };
  const exit = await runPlugin(
    'fake',
    () => {
      loaded++;
      return p.plugin;
    },
    io,
  );
  const stdout = writes.join('');
  let doc: Record<string, unknown> | undefined;
  if (stdout !== '') {
    // exactly one JSON document, newline-terminated, and nothing else
    expect(stdout.endsWith('\n')).toBe(true);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    doc = JSON.parse(stdout);
  }
  return { exit, stdout, logs, doc, calls: p.calls, loaded };
}

function expectError(o: Outcome, code: number, msg?: RegExp | string): void {
  expect(o.exit).not.toBe(0);
  expect(o.doc).toBeDefined();
  expect(o.doc!.code).toBe(code);
  expect(typeof o.doc!.msg).toBe('string');
  expect(typeof o.doc!.cniVersion).toBe('string');
  if (msg !== undefined) expect(o.doc!.msg).toMatch(msg);
  expect(o.stdout).not.toMatch(/\n\s+at /); // never a stack
}

describe('VERSION', () => {
  it('without stdin prints the supported versions', async () => {
    const o = await invoke({ CNI_COMMAND: 'VERSION' }, '');
    expect(o.exit).toBe(0);
    expect(o.doc!.supportedVersions).toEqual([...SUPPORTED_VERSIONS]);
    expect(SUPPORTED_VERSIONS).toContain(o.doc!.cniVersion);
    expect(o.loaded).toBe(0); // VERSION must not load the plugin code
  });

  it('with a config on stdin', async () => {
    const o = await invoke({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: '0.4.0' }));
    expect(o.exit).toBe(0);
    expect(o.doc).toEqual({ cniVersion: '0.4.0', supportedVersions: [...SUPPORTED_VERSIONS] });
  });

  it('ignores a malformed or unsupported stdin', async () => {
    for (const stdin of ['{not json', JSON.stringify({ cniVersion: '0.1.0' })]) {
      const o = await invoke({ CNI_COMMAND: 'VERSION' }, stdin);
      expect(o.exit).toBe(0);
      expect(o.doc!.supportedVersions).toEqual([...SUPPORTED_VERSIONS]);
    }
  });

  it('needs no other env variables', async () => {
    const o = await invoke({ CNI_COMMAND: 'VERSION', CNI_CONTAINERID: '../x', CNI_IFNAME: 'a/b' }, '');
    expect(o.exit).toBe(0);
  });
});

describe('command', () => {
  it('missing CNI_COMMAND: about text on the log, nothing on stdout, exit 0', async () => {
    const o = await invoke({ ...baseEnv }, conf());
    expect(o.exit).toBe(0);
    expect(o.stdout).toBe('');
    const log = o.logs.join('\n');
    expect(log).toContain('fake');
    expect(log).toContain(SUPPORTED_VERSIONS.join(', '));
    expect(o.loaded).toBe(0);
  });

  it.each(['FOO', 'add', ' ADD'])('unknown CNI_COMMAND %p gives code 4', async (cmd) => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: cmd }, conf());
    expectError(o, ErrCode.InvalidEnv, /CNI_COMMAND/);
    expect(o.calls).toHaveLength(0);
  });

  it('a failure reading stdin gives code 5', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, new Error('EIO'));
    expectError(o, ErrCode.IOFailure, /EIO/);
  });
});

describe('config decoding', () => {
  it('malformed JSON gives code 6', async () => {
    expectError(await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, '{"cniVersion": "1.0.0",'), ErrCode.DecodeFailure);
  });

  it.each(['', '[]', '"x"', 'null', '42'])('stdin %p that is not a JSON object gives code 6', async (s) => {
    expectError(await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, s), ErrCode.DecodeFailure);
  });

  it('missing cniVersion reads as 0.1.0, which we do not speak: code 1', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, JSON.stringify({ name: 'net1', type: 'fake' }));
    expectError(o, ErrCode.IncompatibleVersion, /0\.1\.0/);
    expect(o.calls).toHaveLength(0);
  });

  it.each(['0.2.0', '2.0.0', '1.0'])('unsupported version %s: code 1', async (v) => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ cniVersion: v }));
    expectError(o, ErrCode.IncompatibleVersion, /incompatible CNI versions/);
  });

  it('cniVersion of the wrong type: code 7', async () => {
    expectError(await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ cniVersion: 1 })), ErrCode.InvalidConfig, /cniVersion/);
  });

  it.each([undefined, '', '../net', 'a/b', '-net', 'net work', 7])('bad network name %p: code 7', async (name) => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ name }));
    expectError(o, ErrCode.InvalidConfig, /name/);
    expect(o.calls).toHaveLength(0);
  });

  it.each(['net1', 'my-net_2.v6', '0net'])('good network name %p', async (name) => {
    expect((await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ name }))).exit).toBe(0);
  });

  it('missing type: code 7', async () => {
    expectError(await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ type: undefined })), ErrCode.InvalidConfig, /type/);
  });

  it.each([
    ['ipam', 'host-local'],
    ['ipam', []],
    ['runtimeConfig', 'x'],
    ['args', [1]],
    ['dns', 'x'],
  ])('%s of the wrong type: code 7 naming it', async (k, v) => {
    expectError(await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ [k]: v })), ErrCode.InvalidConfig, new RegExp(k));
  });

  it('ipam.type of the wrong type: code 7', async () => {
    expectError(await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ ipam: { type: 3 } })), ErrCode.InvalidConfig, /ipam\.type/);
  });

  it('errors are reported in the config version', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD', CNI_IFNAME: 'a/b' }, conf({ cniVersion: '0.4.0' }));
    expectError(o, ErrCode.InvalidEnv);
    expect(o.doc!.cniVersion).toBe('0.4.0');
  });
});

describe('environment', () => {
  it.each([
    ['ADD', ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH']],
    ['CHECK', ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH']],
    ['DEL', ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH']],
    ['GC', ['CNI_PATH']],
    ['STATUS', ['CNI_PATH']],
  ])('%s requires %p, each named when missing or empty', async (cmd, vars) => {
    for (const v of vars) {
      for (const value of [undefined, '']) {
        const o = await invoke({ ...baseEnv, CNI_COMMAND: cmd, [v]: value }, conf());
        expectError(o, ErrCode.InvalidEnv, new RegExp(v));
        expect(o.calls).toHaveLength(0);
      }
    }
    // all of them missing: every one is named
    const o = await invoke({ CNI_COMMAND: cmd }, conf());
    expectError(o, ErrCode.InvalidEnv);
    for (const v of vars) expect(o.doc!.msg).toContain(v);
  });

  it('DEL without CNI_NETNS succeeds and passes an empty netns', async () => {
    for (const netns of [undefined, '']) {
      const o = await invoke({ ...baseEnv, CNI_COMMAND: 'DEL', CNI_NETNS: netns }, conf());
      expect(o.exit).toBe(0);
      expect(o.stdout).toBe('');
      expect(o.calls).toHaveLength(1);
      expect(o.calls[0].verb).toBe('DEL');
      expect(o.calls[0].args.netns).toBe('');
    }
  });

  it('GC and STATUS need neither container ID nor ifname', async () => {
    for (const cmd of ['GC', 'STATUS']) {
      const o = await invoke({ CNI_COMMAND: cmd, CNI_PATH: '/opt/cni/bin' }, conf());
      expect(o.exit).toBe(0);
      expect(o.calls.map((c) => c.verb)).toEqual([cmd]);
    }
  });

  it.each(['../x', '..', 'a/b', '', '-abc', 'a b', 'x;y', '.hidden'])('container ID %p: code 4', async (id) => {
    for (const cmd of ['ADD', 'DEL', 'CHECK']) {
      const o = await invoke({ ...baseEnv, CNI_COMMAND: cmd, CNI_CONTAINERID: id }, conf());
      expectError(o, ErrCode.InvalidEnv, /CNI_CONTAINERID/);
      expect(o.calls).toHaveLength(0);
    }
  });

  it.each(['0123456789abcdef', 'eth/0', '..', '.', 'eth 0', 'eth:0', 'eth0\n'])('ifname %p: code 4', async (ifname) => {
    for (const cmd of ['ADD', 'DEL', 'CHECK']) {
      const o = await invoke({ ...baseEnv, CNI_COMMAND: cmd, CNI_IFNAME: ifname }, conf());
      expectError(o, ErrCode.InvalidEnv, /CNI_IFNAME/);
      expect(o.calls).toHaveLength(0);
    }
  });

  it('ifname of exactly 15 characters is fine', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD', CNI_IFNAME: '0123456789abcde' }, conf());
    expect(o.exit).toBe(0);
    expect(o.calls[0].args.ifName).toBe('0123456789abcde');
  });

  it('passes env through: container ID, netns, ifname, CNI_ARGS, CNI_PATH', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-0;IP=10.22.0.9' }, conf());
    const a = o.calls[0].args;
    expect(a.command).toBe('ADD');
    expect(a.containerId).toBe('ctr-1');
    expect(a.netns).toBe('/var/run/netns/p');
    expect(a.ifName).toBe('eth0');
    expect(a.path).toEqual(['/opt/cni/bin', '/usr/lib/cni']);
    expect(a.args).toEqual({ IgnoreUnknown: '1', K8S_POD_NAME: 'web-0', IP: '10.22.0.9' });
    expect(a.conf.name).toBe('net1');
    expect(a.conf.raw.type).toBe('fake');
    expect(a.stdin.toString()).toBe(conf());
  });

  it('a malformed CNI_ARGS gives code 4', async () => {
    expectError(await invoke({ ...baseEnv, CNI_COMMAND: 'ADD', CNI_ARGS: 'novalue' }, conf()), ErrCode.InvalidEnv, /CNI_ARGS/);
  });
});

describe('version gates', () => {
  it.each(['0.3.0', '0.3.1'])('CHECK with %s: code 1', async (v) => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'CHECK' }, conf({ cniVersion: v }));
    expectError(o, ErrCode.IncompatibleVersion, /CHECK/);
    expect(o.calls).toHaveLength(0);
  });

  it.each(['0.4.0', '1.0.0', '1.1.0'])('CHECK with %s runs', async (v) => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'CHECK' }, conf({ cniVersion: v }));
    expect(o.exit).toBe(0);
    expect(o.stdout).toBe('');
    expect(o.calls.map((c) => c.verb)).toEqual(['CHECK']);
  });

  it.each([
    ['GC', '1.0.0'],
    ['STATUS', '1.0.0'],
    ['GC', '0.4.0'],
    ['STATUS', '0.3.1'],
  ])('%s with %s: code 1', async (cmd, v) => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: cmd }, conf({ cniVersion: v }));
    expectError(o, ErrCode.IncompatibleVersion, new RegExp(cmd));
    expect(o.calls).toHaveLength(0);
  });
});

describe('ADD', () => {
  it.each(SUPPORTED_VERSIONS)('prints the result converted to the config version %s', async (v) => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ cniVersion: v }));
    expect(o.exit).toBe(0);
    const d = o.doc!;
    expect(d.cniVersion).toBe(v);
    const ip = (d.ips as Array<Record<string, unknown>>)[0];
    expect(ip.address).toBe('10.22.0.5/16');
    expect(ip.interface).toBe(0);
    if (v.startsWith('0.')) expect(ip.version).toBe('4');
    else expect(ip).not.toHaveProperty('version');
    const iface = (d.interfaces as Array<Record<string, unknown>>)[0];
    const route = (d.routes as Array<Record<string, unknown>>)[0];
    if (v === '1.1.0') {
      expect(iface.mtu).toBe(1400);
      expect(route.mtu).toBe(1400);
    } else {
      expect(iface).not.toHaveProperty('mtu');
      expect(route).not.toHaveProperty('mtu');
    }
  });

  it('a plugin result in an older shape is still printed in the config version', async () => {
    const p = fakePlugin({ result: { cniVersion: '0.4.0', ips: [{ address: 'fd00::5/64' }] } });
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ cniVersion: '1.0.0' }), p);
    expect(o.doc).toEqual({ cniVersion: '1.0.0', ips: [{ address: 'fd00::5/64' }] });
  });

  it('prevResult is parsed into the 1.1 shape', async () => {
    const prevResult = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/p' }],
      ips: [{ version: '4', address: '10.22.0.5/16', gateway: '10.22.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0' }],
    };
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ cniVersion: '0.4.0', prevResult }));
    expect(o.exit).toBe(0);
    const prev = o.calls[0].args.conf.prevResult!;
    expect(prev.ips).toEqual([{ address: '10.22.0.5/16', gateway: '10.22.0.1', interface: 0 }]);
    expect(prev.interfaces).toEqual(prevResult.interfaces);
    expect(prev.routes).toEqual(prevResult.routes);
  });

  it('prevResult without cniVersion takes the config version', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'DEL' }, conf({ prevResult: { ips: [{ address: '10.0.0.2/24' }] } }));
    expect(o.exit).toBe(0);
    expect(o.calls[0].args.conf.prevResult).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24' }] });
  });

  it('a malformed prevResult gives code 6', async () => {
    for (const prevResult of ['x', { cniVersion: '1.0.0', ips: 'x' }, { cniVersion: '1.0.0', ips: [null] }]) {
      const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ prevResult }));
      expectError(o, ErrCode.DecodeFailure, /prevResult/);
    }
  });
});

describe('errors', () => {
  it('a CniError is printed as the spec error JSON with its code, msg and details', async () => {
    const p = fakePlugin({ throws: new CniError(ErrCode.TryAgainLater, 'store locked', 'held by pid 7') });
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf({ cniVersion: '1.0.0' }), p);
    expect(o.exit).toBe(1);
    expect(o.doc).toEqual({ cniVersion: '1.0.0', code: 11, msg: 'store locked', details: 'held by pid 7' });
  });

  it('an exception that is not a CniError becomes code 999 with its message and no stack', async () => {
    const e = new TypeError("Cannot read properties of undefined (reading 'x')");
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'ADD' }, conf(), fakePlugin({ throws: e }));
    expectError(o, 999, "Cannot read properties of undefined (reading 'x')");
    expect(o.stdout).not.toContain('skel.test');
    expect(o.stdout).not.toContain(e.stack!.split('\n')[1].trim());
    expect(Object.keys(o.doc!).sort()).toEqual(['cniVersion', 'code', 'msg']);
  });

  it('a thrown non-Error value becomes code 999', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'DEL' }, conf(), fakePlugin({ throws: 'boom' }));
    expectError(o, 999, 'boom');
  });

  it('a failing plugin loader becomes code 999, not a crash', async () => {
    const writes: string[] = [];
    const io: SkelIO = {
      env: { ...baseEnv, CNI_COMMAND: 'ADD' },
      readStdin: async () => Buffer.from(conf()),
      write: async (s) => void writes.push(s),
      log: () => undefined,
    };
    const exit = await runPlugin(
      'fake',
      () => {
        throw new Error('Cannot find module ./bridge');
      },
      io,
    );
    expect(exit).toBe(1);
    expect(JSON.parse(writes.join(''))).toMatchObject({ code: 999, msg: 'Cannot find module ./bridge' });
  });

  it('STATUS reports code 50 from the plugin', async () => {
    const p = fakePlugin({ throws: new CniError(ErrCode.NotAvailable, 'pool exhausted') });
    expectError(await invoke({ ...baseEnv, CNI_COMMAND: 'STATUS' }, conf(), p), 50, 'pool exhausted');
  });

  it('DEL, CHECK, GC and STATUS print nothing on success', async () => {
    for (const cmd of ['DEL', 'CHECK', 'GC', 'STATUS']) {
      const o = await invoke({ ...baseEnv, CNI_COMMAND: cmd }, conf());
      expect(o.exit).toBe(0);
      expect(o.stdout).toBe('');
    }
  });
});

describe('GC', () => {
  const atts = [
    { containerID: 'ctr-1', ifname: 'eth0' },
    { containerID: 'ctr-2', ifname: 'net1' },
  ];

  it('receives valid attachments from cni.dev/valid-attachments', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'GC' }, conf({ 'cni.dev/valid-attachments': atts }));
    expect(o.exit).toBe(0);
    expect(o.calls[0].valid).toEqual(atts);
  });

  it('receives valid attachments from the older cni.dev/attachments', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'GC' }, conf({ 'cni.dev/attachments': atts }));
    expect(o.calls[0].valid).toEqual(atts);
  });

  it('prefers cni.dev/valid-attachments when both are given', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'GC' }, conf({ 'cni.dev/valid-attachments': atts, 'cni.dev/attachments': [atts[0]] }));
    expect(o.calls[0].valid).toEqual(atts);
  });

  it('no list means no valid attachments', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'GC' }, conf());
    expect(o.calls[0].valid).toEqual([]);
  });

  it('extra keys on an attachment are dropped', async () => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'GC' }, conf({ 'cni.dev/valid-attachments': [{ containerID: 'c', ifname: 'eth0', extra: 1 }] }));
    expect(o.calls[0].valid).toEqual([{ containerID: 'c', ifname: 'eth0' }]);
  });

  it.each([
    ['not a list', { containerID: 'c', ifname: 'eth0' }],
    ['entry null', [null]],
    ['entry without ifname', [{ containerID: 'c' }]],
    ['entry with numeric id', [{ containerID: 1, ifname: 'eth0' }]],
  ])('a malformed attachment list (%s) gives code 7 and no GC', async (_w, v) => {
    const o = await invoke({ ...baseEnv, CNI_COMMAND: 'GC' }, conf({ 'cni.dev/valid-attachments': v }));
    expectError(o, ErrCode.InvalidConfig, /cni\.dev\/valid-attachments/);
    expect(o.calls).toHaveLength(0);
  });

  it('a plugin without gc or status succeeds', async () => {
    for (const cmd of ['GC', 'STATUS']) {
      const o = await invoke({ ...baseEnv, CNI_COMMAND: cmd }, conf(), fakePlugin({ gc: false, status: false }));
      expect(o.exit).toBe(0);
    }
  });
});

describe('parseCniArgs / checkCniArgs', () => {
  it('parses K=V pairs', () => {
    expect(parseCniArgs(undefined)).toEqual({});
    expect(parseCniArgs('')).toEqual({});
    expect(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0')).toEqual({
      IgnoreUnknown: '1',
      K8S_POD_NAMESPACE: 'default',
      K8S_POD_NAME: 'web-0',
    });
    expect(parseCniArgs('IP=10.0.0.2;')).toEqual({ IP: '10.0.0.2' });
    expect(parseCniArgs('EMPTY=')).toEqual({ EMPTY: '' });
  });

  it.each(['novalue', '=x', 'A=1;;=2'])('rejects %p with code 4', (s) => {
    const e = (() => {
      try {
        parseCniArgs(s);
      } catch (x) {
        return x as CniError;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(CniError);
    expect(e!.code).toBe(ErrCode.InvalidEnv);
    expect(e!.message).toContain('CNI_ARGS');
  });

  it('unknown keys are refused unless IgnoreUnknown is 1 or true', () => {
    expect(() => checkCniArgs({ IP: '10.0.0.2' }, ['IP', 'MAC'])).not.toThrow();
    expect(() => checkCniArgs({ K8S_POD_NAME: 'x' }, ['IP'])).toThrow(/K8S_POD_NAME/);
    try {
      checkCniArgs({ K8S_POD_NAME: 'x' }, ['IP']);
    } catch (e) {
      expect((e as CniError).code).toBe(ErrCode.InvalidEnv);
    }
    for (const v of ['1', 'true', 'TRUE', 'True']) {
      expect(() => checkCniArgs({ IgnoreUnknown: v, K8S_POD_NAME: 'x' }, ['IP'])).not.toThrow();
    }
    for (const v of ['0', 'false', 'FALSE']) {
      expect(() => checkCniArgs({ IgnoreUnknown: v, K8S_POD_NAME: 'x' }, ['IP'])).toThrow(/K8S_POD_NAME/);
    }
  });

  it.each(['yes', '', '2'])('IgnoreUnknown=%p, not a boolean, is refused with code 4 as the reference does', (v) => {
    expect(() => checkCniArgs({ IgnoreUnknown: v }, [])).toThrow(/IgnoreUnknown/);
    expect(() => checkCniArgs({ IgnoreUnknown: v }, [])).toThrow(CniError);
  });
});

describe('validators', () => {
  it('validateIfName / validateContainerId throw code 4 and accept good names', () => {
    expect(() => validateIfName('eth0')).not.toThrow();
    expect(() => validateIfName('net1.100')).not.toThrow();
    expect(() => validateContainerId('f3a8c1_pod.1-x')).not.toThrow();
    expect(() => validateContainerId('default-web')).not.toThrow();
    for (const f of [() => validateIfName(''), () => validateContainerId('../x')]) {
      expect(f).toThrow(CniError);
      try {
        f();
      } catch (e) {
        expect((e as CniError).code).toBe(ErrCode.InvalidEnv);
      }
    }
  });
});

/** A fixture of testdata/ bundled to one file, to run as a real process (fd 0, process-wide hooks). */
function bundleFixture(name: string): { file: string; cleanup: () => void } {
  const fs = require('fs') as typeof import('fs');
  const os = require('os') as typeof import('os');
  const path = require('path') as typeof import('path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-fixture-'));
  const file = path.join(dir, `${name}.js`);
  require('esbuild').buildSync({
    entryPoints: [path.join(__dirname, 'testdata', `${name}.ts`)],
    bundle: true,
    platform: 'node',
    outfile: file,
    logLevel: 'silent',
  });
  return { file, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

describe('processIO reads fd 0 to its end', () => {
  let fx: ReturnType<typeof bundleFixture>;
  beforeAll(() => (fx = bundleFixture('read-stdin')));
  afterAll(() => fx.cleanup());

  it('a pipe written all at once', async () => {
    const { run } = await import('../exec');
    const r = await run(process.execPath, [fx.file], { input: '{"cniVersion":"1.0.0"}' });
    expect(JSON.parse(r.stdout)).toEqual({ text: '{"cniVersion":"1.0.0"}' });
  });

  it('a pipe written in parts, with a pause between', async () => {
    const { spawn } = await import('child_process');
    const c = spawn(process.execPath, [fx.file], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stdin.write('{"cniVersion":');
    await new Promise((r) => setTimeout(r, 200));
    c.stdin.end('"1.0.0"}');
    await new Promise((r) => c.on('close', r));
    expect(JSON.parse(out)).toEqual({ text: '{"cniVersion":"1.0.0"}' });
  });

  it('a non-blocking pipe (O_NONBLOCK set by its writer) written in parts: the rest is read as a stream', async () => {
    const { run } = await import('../exec');
    const py = [
      'import os, subprocess, sys, time',
      'r, w = os.pipe()',
      'os.set_blocking(r, False)',
      'c = subprocess.Popen(sys.argv[1:], stdin=r, stdout=subprocess.PIPE)',
      'os.close(r)',
      'os.write(w, b\'{"cniVersion":\')',
      'time.sleep(0.2)',
      'os.write(w, b\'"1.0.0"}\')',
      'os.close(w)',
      'sys.stdout.write(c.communicate()[0].decode())',
    ].join('\n');
    const r = await run('python3', ['-c', py, process.execPath, fx.file], { timeout: 5000 });
    expect(JSON.parse(r.stdout)).toEqual({ text: '{"cniVersion":"1.0.0"}' });
  });

  it('nothing from a terminal, instead of waiting for an EOF that never comes', async () => {
    const { run } = await import('../exec');
    // python's pty.spawn gives the child a terminal as fd 0 (and copies our /dev/null stdin's EOF to it late)
    const r = await run('python3', ['-c', 'import pty,sys; pty.spawn(sys.argv[1:])', process.execPath, fx.file], { timeout: 5000 });
    expect(r.stdout).toContain('{"text":""}');
  });
});

describe('a throw no await catches (a bug)', () => {
  it('still answers with the spec error JSON, code 999, and exit 1; the stack goes to stderr', async () => {
    const { run } = await import('../exec');
    // a real process: the guard hooks process-wide events, which a jest worker must not have
    const fx = bundleFixture('uncaught-plugin');
    try {
      const r = await run(process.execPath, [fx.file], {
        allowFailure: true,
        input: JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'buggy' }),
        env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' },
      });
      expect(r.exitCode).toBe(1);
      expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.0.0', code: 999, msg: 'internal error: boom in a callback' });
      expect(r.stderr).toContain('boom in a callback');
    } finally {
      fx.cleanup();
    }
  });
});

describe('the call budget (pkg/cni/budget.ts)', () => {
  it('a call stuck past its budget answers code 11 naming what it was doing, and exits 1', async () => {
    const { run } = await import('../exec');
    const fx = bundleFixture('stuck-plugin');
    try {
      const r = await run(process.execPath, [fx.file], {
        allowFailure: true,
        timeout: 30_000,
        input: JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'stuck' }),
        env: { BUDGET_SECONDS: '1', CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' },
      });
      expect(r.exitCode).toBe(1);
      expect(JSON.parse(r.stdout)).toEqual({
        cniVersion: '1.0.0',
        code: 11,
        msg: 'gave up after 1 s (a test budget) while waiting for an answer that never comes',
      });
    } finally {
      fx.cleanup();
    }
  });

  it('spawns nothing once the budget is spent, and gives each spawn only what is left', async () => {
    const budget = await import('./budget');
    const { run } = await import('../exec');
    const { nowMs } = await import('../clock');
    try {
      budget.setBudget(nowMs() / 1000 - 1, 'a spent budget');
      await expect(run('true', [])).rejects.toMatchObject({
        code: 11,
        message: expect.stringMatching(/^gave up after [\d.]+ s \(a spent budget\) while about to run true$/),
      });
      budget.setBudget(nowMs() / 1000 + 0.3, 'a short budget');
      await expect(run('sleep', ['5'])).rejects.toMatchObject({
        code: 11,
        message: expect.stringMatching(/^gave up after [\d.]+ s \(a short budget\) while running sleep 5$/),
      });
      expect(() => budget.checkBudget('x')).toThrow(/while x$/);
    } finally {
      budget.resetBudget();
    }
    expect(budget.remainingMs()).toBe(Infinity);
    await run('true', []);
  });
});
