// `ip -batch -`: many iproute2 commands in one spawn, optionally inside a netns given by path.
import { run } from '../exec';
import { CniError, ErrCode } from '../cni/errors';

export type IpCommand = string[];

export interface BatchOptions {
  /** run inside this network namespace (a path, e.g. /var/run/netns/x or /proc/PID/ns/net) */
  netns?: string;
  /** add -json: each `show` command prints one JSON document per line */
  json?: boolean;
  /** add -details (link kinds, bridge port flags) */
  details?: boolean;
}

/** argv to run `file args...` inside netns, or as is in ours. */
export function inNetns(netns: string | undefined, file: string, args: string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=${netns}`, '--', file, ...args]] : [file, args];
}

/** Run the commands in order; the first failure aborts the rest and is reported with the command that failed. */
export async function ipBatch(cmds: IpCommand[], opts: BatchOptions = {}): Promise<unknown[]> {
  if (cmds.length === 0) return [];
  for (const c of cmds) {
    // ip -batch splits lines on whitespace: an argument with blanks would silently change meaning
    if (c.some((a) => a === '' || /\s/.test(a))) throw new CniError(ErrCode.Internal, `bad ip argument in ${JSON.stringify(c)}`);
  }
  const flags = [...(opts.json ? ['-json'] : []), ...(opts.details ? ['-details'] : []), '-batch', '-'];
  const [file, args] = inNetns(opts.netns, 'ip', flags);
  const r = await run(file, args, { input: cmds.map((c) => c.join(' ')).join('\n') + '\n', allowFailure: true });
  if (r.exitCode !== 0) {
    const m = /Command failed -:(\d+)/.exec(r.stderr);
    const failed = m ? cmds[Number(m[1]) - 1] : undefined;
    const why = r.stderr.replace(/Command failed -:\d+\s*/g, '').trim() || `exit ${r.exitCode}`;
    const where = opts.netns ? ` in netns ${opts.netns}` : '';
    throw new BatchError(`ip ${failed ? failed.join(' ') : '-batch'}${where}: ${why}`, m ? Number(m[1]) - 1 : -1, why);
  }
  if (!opts.json) return [];
  return r.stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('['))
    .map((l) => JSON.parse(l) as unknown);
}

/** A failed batch: which command (index, -1 if unknown) and the kernel's words. */
export class BatchError extends CniError {
  constructor(
    msg: string,
    readonly failedIndex: number,
    readonly reason: string,
  ) {
    super(ErrCode.KernelOperation, msg);
  }
}

/** One `ip -json <args>` read. */
export async function ipJson<T = unknown>(args: string[], netns?: string): Promise<T[]> {
  const [file, argv] = inNetns(netns, 'ip', ['-json', ...args]);
  const r = await run(file, argv);
  const out = r.stdout.trim();
  return out ? (JSON.parse(out) as T[]) : [];
}
