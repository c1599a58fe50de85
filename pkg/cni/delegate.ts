// Delegation to another plugin (IPAM), as libcni's invoke package does: same stdin, same env, other CNI_COMMAND.
// When the plugin found in CNI_PATH is this very executable, it runs in-process: same code, one process fewer.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../exec';
import { CniError, ErrCode } from './errors';
import type { CmdArgs, Command, Plugin, Result } from './types';
import { validAttachments } from './skel';
import { parseResult } from './version';

const inProcess = new Map<string, () => Plugin>();

/** Called by the multi-call entry point with the plugins it carries. */
export function registerInProcess(type: string, load: () => Plugin): void {
  inProcess.set(type, load);
}

function realpath(p: string): string | undefined {
  try {
    return fs.realpathSync(p);
  } catch {
    return undefined;
  }
}

export function findInPath(type: string, dirs: string[]): string {
  if (type.includes('/') || type === '.' || type === '..') {
    throw new CniError(ErrCode.InvalidConfig, `invalid config: ipam.type: ${JSON.stringify(type)} is not a plugin name`);
  }
  for (const d of dirs) {
    const p = path.join(d, type);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* try the next directory */
    }
  }
  throw new CniError(ErrCode.InvalidConfig, `invalid config: ipam.type: failed to find plugin ${JSON.stringify(type)} in path [${dirs.join(' ')}]`);
}

function localPlugin(file: string, type: string): Plugin | undefined {
  const load = inProcess.get(type);
  if (!load) return undefined;
  const self = realpath(process.execPath);
  return self !== undefined && realpath(file) === self ? load() : undefined;
}

async function invoke(type: string, command: Command, a: CmdArgs): Promise<string> {
  const file = findInPath(type, a.path);
  const local = localPlugin(file, type);
  const sub: CmdArgs = { ...a, command };
  if (local) {
    switch (command) {
      case 'ADD':
        return JSON.stringify(await local.add(sub));
      case 'DEL':
        await local.del(sub);
        return '';
      case 'CHECK':
        await local.check(sub);
        return '';
      case 'GC':
        await local.gc?.(sub, validAttachments(a.conf));
        return '';
      case 'STATUS':
        await local.status?.(sub);
        return '';
      default:
        throw new CniError(ErrCode.Internal, `cannot delegate ${command}`);
    }
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  Object.assign(env, {
    CNI_COMMAND: command,
    CNI_CONTAINERID: a.containerId,
    CNI_NETNS: a.netns,
    CNI_IFNAME: a.ifName,
    CNI_PATH: a.path.join(':'),
  });
  const r = await run(file, [], { input: a.stdin.toString('utf8'), env, allowFailure: true });
  if (r.exitCode !== 0) {
    let code: number = ErrCode.Internal;
    let msg = r.stderr.trim() || `exit ${r.exitCode}`;
    try {
      const e = JSON.parse(r.stdout) as { code?: number; msg?: string; details?: string };
      if (typeof e.code === 'number') code = e.code;
      if (e.msg) msg = e.msg + (e.details ? `; ${e.details}` : '');
    } catch {
      /* not an error JSON: keep stderr */
    }
    throw new CniError(code, `${type}: ${msg}`);
  }
  return r.stdout;
}

function ipamType(a: CmdArgs): string {
  const t = a.conf.ipam?.type;
  if (!t) throw new CniError(ErrCode.InvalidConfig, 'invalid config: ipam.type: missing');
  return t;
}

export async function ipamAdd(a: CmdArgs): Promise<Result> {
  const out = await invoke(ipamType(a), 'ADD', a);
  try {
    return parseResult(JSON.parse(out), a.conf.cniVersion);
  } catch (e) {
    throw new CniError(ErrCode.DecodeFailure, `${ipamType(a)}: bad result: ${(e as Error).message}`);
  }
}

export async function ipamDel(a: CmdArgs): Promise<void> {
  await invoke(ipamType(a), 'DEL', a);
}

export async function ipamCheck(a: CmdArgs): Promise<void> {
  await invoke(ipamType(a), 'CHECK', a);
}

export async function ipamStatus(a: CmdArgs): Promise<void> {
  await invoke(ipamType(a), 'STATUS', a);
}

/** GC is forwarded with the same stdin, which carries cni.dev/valid-attachments. */
export async function ipamGc(a: CmdArgs): Promise<void> {
  await invoke(ipamType(a), 'GC', a);
}
