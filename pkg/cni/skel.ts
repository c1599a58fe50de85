// The plugin skeleton: read CNI_* and the config, validate per verb, dispatch, print the result or the error.
import { DEFAULT_BUDGET_SECONDS, setBudget, watchBudget } from './budget';
import { CniError, ErrCode, toCniError } from './errors';
import type { Attachment, CmdArgs, Command, NetConf, Plugin, Result } from './types';
import { CURRENT_VERSION, SUPPORTED_VERSIONS, atLeast, formatResult, isSupported, parseResult } from './version';
import { nowMs } from '../clock';

const COMMANDS: Command[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

/** Required environment per verb, as the reference skel requires it (DEL tolerates an empty netns). */
const REQUIRED_ENV: Record<Command, string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: ['CNI_PATH'],
  VERSION: [],
};

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface SkelIO {
  env: NodeJS.ProcessEnv;
  readStdin: () => Promise<Buffer>;
  write: (s: string) => Promise<void>;
  log: (s: string) => void;
  /** the real process: a throw no await catches must still end in the spec's error JSON */
  guardUncaught?: boolean;
}

/** Whether fd is a terminal, from its /proc link (tty.isatty loads the net module); isatty without /proc. */
function isTerminal(fd: number): boolean {
  try {
    return /^\/dev\/(pts\/|tty|console)/.test(require('fs').readlinkSync(`/proc/self/fd/${fd}`));
  } catch {
    return require('tty').isatty(fd);
  }
}

export function processIO(): SkelIO {
  return {
    env: process.env,
    readStdin: () => {
      const fs = require('fs') as typeof import('fs');
      // a terminal never sends EOF by itself: `CNI_COMMAND=VERSION bridge` typed by hand must not hang
      if (isTerminal(0)) return Promise.resolve(Buffer.alloc(0));
      // blocking reads to EOF: process.stdin's stream would be set up at every start for one read
      const chunks: Buffer[] = [];
      try {
        for (;;) {
          const b = Buffer.allocUnsafe(65536);
          const n = fs.readSync(0, b, 0, b.length, null);
          if (n === 0) return Promise.resolve(Buffer.concat(chunks));
          chunks.push(b.subarray(0, n));
        }
      } catch (e) {
        // a non-blocking pipe (its writer set O_NONBLOCK): the rest as a stream
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return Promise.reject(e);
      }
      return new Promise((resolve, reject) => {
        process.stdin.on('data', (c: Buffer) => chunks.push(c));
        process.stdin.on('end', () => resolve(Buffer.concat(chunks)));
        process.stdin.on('error', reject);
      });
    },
    write: (s) => {
      // a blocking write, as for stdin: process.stdout on a pipe is a net.Socket, whose module a call that
      // spawns nothing (VERSION, host-local) would load for one write; a non-blocking pipe gets the rest through the stream
      const fs = require('fs') as typeof import('fs');
      const b = Buffer.from(s);
      let off = 0;
      try {
        while (off < b.length) off += fs.writeSync(1, b, off);
        return Promise.resolve();
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return Promise.reject(e);
      }
      return new Promise((resolve) => process.stdout.write(b.subarray(off), () => resolve()));
    },
    log: (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
    guardUncaught: true,
  };
}

/**
 * An exception thrown from a callback, or a rejection nobody awaits, is a bug; Node would print its stack and
 * exit 1 with nothing on stdout, which a runtime reads as a malformed answer. Answer with code 999 instead
 * (unless a result or error was already written), the stack on stderr only.
 */
function guardUncaught(version: () => string, answered: () => boolean): void {
  const fail = (e: unknown) => {
    const fs = require('fs') as typeof import('fs');
    if (!answered()) {
      const msg = `internal error: ${e instanceof Error ? e.message : String(e)}`;
      fs.writeSync(1, JSON.stringify({ cniVersion: version(), code: ErrCode.Internal, msg }) + '\n');
    }
    fs.writeSync(2, `tscni: uncaught ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}

export function validateIfName(name: string): void {
  const bad =
    name.length === 0
      ? 'is empty'
      : name.length > 15
        ? `is longer than 15 characters`
        : name === '.' || name === '..'
          ? 'is "." or ".."'
          : /[/:\s]/.test(name)
            ? 'contains "/", ":" or whitespace'
            : '';
  if (bad) throw new CniError(ErrCode.InvalidEnv, `invalid CNI_IFNAME ${JSON.stringify(name)}: ${bad}`);
}

export function validateContainerId(id: string): void {
  if (!NAME_RE.test(id)) {
    throw new CniError(ErrCode.InvalidEnv, `invalid CNI_CONTAINERID ${JSON.stringify(id)}: must match ${NAME_RE.source}`);
  }
}

export function parseCniArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const pair of s.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(ErrCode.InvalidEnv, `invalid CNI_ARGS pair ${JSON.stringify(pair)}: expected KEY=VALUE`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Reject CNI_ARGS keys a plugin does not know, unless IgnoreUnknown is set (the reference's LoadArgs rule). */
export function checkCniArgs(args: Record<string, string>, known: readonly string[]): void {
  const iu = args.IgnoreUnknown;
  if (iu !== undefined && !/^(1|true|0|false)$/i.test(iu)) {
    throw new CniError(ErrCode.InvalidEnv, `invalid CNI_ARGS IgnoreUnknown=${JSON.stringify(iu)}: expected 1, true, 0 or false`);
  }
  if (iu !== undefined && /^(1|true)$/i.test(iu)) return;
  for (const k of Object.keys(args)) {
    if (k !== 'IgnoreUnknown' && !known.includes(k)) {
      throw new CniError(ErrCode.InvalidEnv, `unknown CNI_ARGS key ${JSON.stringify(k)} (set IgnoreUnknown=1 to ignore it)`);
    }
  }
}

/** Parse the stdin config into NetConf, with the errors the spec assigns. */
export function parseNetConf(stdin: Buffer): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin.toString('utf8'));
  } catch (e) {
    throw new CniError(ErrCode.DecodeFailure, `failed to decode network config: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrCode.DecodeFailure, 'failed to decode network config: not a JSON object');
  }
  const o = raw as Record<string, unknown>;
  // a config without cniVersion is 0.1.0 by the spec, which we do not speak
  const cniVersion = o.cniVersion === undefined ? '0.1.0' : o.cniVersion;
  if (typeof cniVersion !== 'string') throw new CniError(ErrCode.InvalidConfig, 'invalid config: cniVersion: expected a string');
  if (!isSupported(cniVersion)) {
    throw new CniError(
      ErrCode.IncompatibleVersion,
      `incompatible CNI versions: config is ${JSON.stringify(cniVersion)}, plugin supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  if (typeof o.name !== 'string' || !NAME_RE.test(o.name)) {
    throw new CniError(
      ErrCode.InvalidConfig,
      `invalid config: name: ${o.name === undefined ? 'missing' : `${JSON.stringify(o.name)} must match ${NAME_RE.source}`}`,
    );
  }
  if (typeof o.type !== 'string' || o.type === '') throw new CniError(ErrCode.InvalidConfig, 'invalid config: type: missing');
  const conf: NetConf = { cniVersion, name: o.name, type: o.type, raw: o };
  if (o.ipam !== undefined) {
    if (typeof o.ipam !== 'object' || o.ipam === null || Array.isArray(o.ipam)) {
      throw new CniError(ErrCode.InvalidConfig, 'invalid config: ipam: expected an object');
    }
    conf.ipam = o.ipam as NetConf['ipam'];
    if (conf.ipam!.type !== undefined && typeof conf.ipam!.type !== 'string') {
      throw new CniError(ErrCode.InvalidConfig, 'invalid config: ipam.type: expected a string');
    }
  }
  for (const k of ['dns', 'runtimeConfig', 'args'] as const) {
    const v = o[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'object' || Array.isArray(v)) throw new CniError(ErrCode.InvalidConfig, `invalid config: ${k}: expected an object`);
    (conf as unknown as Record<string, unknown>)[k] = v;
  }
  if (o.prevResult !== undefined && o.prevResult !== null) {
    try {
      conf.prevResult = parseResult(o.prevResult, cniVersion);
    } catch (e) {
      throw new CniError(ErrCode.DecodeFailure, `invalid prevResult: ${(e as Error).message}`);
    }
  }
  return conf;
}

export function validAttachments(conf: NetConf): Attachment[] {
  // libcni also writes the pre-1.1 spelling cni.dev/attachments
  const v = conf.raw['cni.dev/valid-attachments'] ?? conf.raw['cni.dev/attachments'];
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new CniError(ErrCode.InvalidConfig, 'invalid config: cni.dev/valid-attachments: expected a list');
  return v.map((a, i) => {
    const o = a as Record<string, unknown>;
    if (typeof o?.containerID !== 'string' || typeof o?.ifname !== 'string') {
      throw new CniError(ErrCode.InvalidConfig, `invalid config: cni.dev/valid-attachments[${i}]: needs containerID and ifname`);
    }
    return { containerID: o.containerID, ifname: o.ifname };
  });
}

function versionOf(stdin: Buffer): string {
  try {
    const v = (JSON.parse(stdin.toString('utf8')) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && isSupported(v)) return v;
  } catch {
    /* VERSION ignores a malformed stdin, as the reference does */
  }
  return CURRENT_VERSION;
}

/** Build CmdArgs from the environment and stdin, validating in the spec's order. */
export function buildArgs(command: Command, env: NodeJS.ProcessEnv, stdin: Buffer): CmdArgs {
  const conf = parseNetConf(stdin);
  const missing = REQUIRED_ENV[command].filter((k) => !env[k]);
  if (missing.length) throw new CniError(ErrCode.InvalidEnv, `required env variables [${missing.join(',')}] missing`);
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifName = env.CNI_IFNAME ?? '';
  if (command === 'ADD' || command === 'DEL' || command === 'CHECK') {
    validateContainerId(containerId);
    validateIfName(ifName);
  }
  if (command === 'CHECK' && !atLeast(conf.cniVersion, '0.4.0')) {
    throw new CniError(ErrCode.IncompatibleVersion, `config version ${conf.cniVersion} does not allow CHECK (needs 0.4.0 or later)`);
  }
  if ((command === 'GC' || command === 'STATUS') && !atLeast(conf.cniVersion, '1.1.0')) {
    throw new CniError(ErrCode.IncompatibleVersion, `config version ${conf.cniVersion} does not allow ${command} (needs 1.1.0)`);
  }
  return {
    command,
    containerId,
    netns: env.CNI_NETNS ?? '',
    ifName,
    args: parseCniArgs(env.CNI_ARGS),
    path: (env.CNI_PATH ?? '').split(':').filter(Boolean),
    stdin,
    conf,
  };
}

/** Run one plugin invocation; resolves to the process exit code. */
export async function runPlugin(name: string, load: () => Plugin, io: SkelIO = processIO()): Promise<number> {
  const command = io.env.CNI_COMMAND;
  let version = CURRENT_VERSION;
  const t0 = nowMs();
  let callLog: import('./log').CallLog | undefined;
  if (!command) {
    io.log(`CNI ${name} plugin (tscni)\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}`);
    return 0;
  }
  let answered = false;
  const write = io.write;
  io = { ...io, write: (s) => ((answered = true), write(s)) };
  if (io.guardUncaught) {
    guardUncaught(
      () => version,
      () => answered,
    );
    watchBudget((e) => {
      const fs = require('fs') as typeof import('fs');
      if (!answered) fs.writeSync(1, JSON.stringify({ cniVersion: version, code: e.code, msg: e.message }) + '\n');
      process.exit(1);
    });
  }
  setBudget(DEFAULT_BUDGET_SECONDS, 'the call budget');
  try {
    if (!COMMANDS.includes(command as Command)) {
      throw new CniError(ErrCode.InvalidEnv, `unknown CNI_COMMAND ${JSON.stringify(command)}: expected one of ${COMMANDS.join(', ')}`);
    }
    let stdin: Buffer;
    try {
      stdin = await io.readStdin();
    } catch (e) {
      throw new CniError(ErrCode.IOFailure, `failed to read stdin: ${(e as Error).message}`);
    }
    if (command === 'VERSION') {
      await io.write(JSON.stringify({ cniVersion: versionOf(stdin), supportedVersions: SUPPORTED_VERSIONS }) + '\n');
      return 0;
    }
    version = versionOf(stdin);
    const args = buildArgs(command as Command, io.env, stdin);
    // the per-call log module is loaded only when the config has a `log` block
    if (args.conf.raw.log !== undefined) callLog = (require('./log') as typeof import('./log')).openCallLog(name, args, t0);
    const plugin = load();
    let result: Result | undefined;
    switch (args.command) {
      case 'ADD': {
        result = await plugin.add(args);
        await io.write(JSON.stringify(formatResult(result, args.conf.cniVersion)) + '\n');
        break;
      }
      case 'DEL':
        await plugin.del(args);
        break;
      case 'CHECK':
        await plugin.check(args);
        break;
      case 'GC':
        if (plugin.gc) await plugin.gc(args, validAttachments(args.conf));
        break;
      case 'STATUS':
        if (plugin.status) await plugin.status(args);
        break;
    }
    callLog?.done(result);
    return 0;
  } catch (e) {
    const err = toCniError(e);
    const out: Record<string, unknown> = { cniVersion: version, code: err.code, msg: err.message };
    if (err.details) out.details = err.details;
    await io.write(JSON.stringify(out) + '\n');
    callLog?.done(undefined, err);
    return 1;
  }
}
