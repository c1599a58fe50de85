// The single place that runs external programs: argv arrays, no shell, bounded time.
// execa is required lazily so that commands which spawn nothing (VERSION, IPAM) skip its load cost.
import type { ExecaReturnValue } from 'execa';
import { nowDoing, overBudget, remainingMs } from './cni/budget';
import { CniError, ErrCode } from './cni/errors';
import { nowMs } from './clock';
import { observing, spawned } from './doorlog';

export interface RunOptions {
  input?: string;
  /** milliseconds; the kernel tools we call answer in a few ms, so a hang is a bug worth surfacing */
  timeout?: number;
  /** return the result instead of throwing on a non-zero exit */
  allowFailure?: boolean;
  env?: Record<string, string>;
  /** inside this network namespace, given by path: `nsenter --net=<path>` (how a spawn enters one; in-process, pkg/netlink's setns) */
  netns?: string;
  /** the signal that ends a child at its time limit (default SIGTERM); SIGKILL for fault tests */
  killSignal?: NodeJS.Signals;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

let execaModule: typeof import('execa') | undefined;

/**
 * TSCNI_TRACE=1: one stderr line per spawn (`tscni-trace <start ms> <duration ms> <argv>`, ms since process
 * start) and one at exit; bench/run.sh counts spawns per verb from them. Off, it costs one env lookup.
 */
const trace = process.env.TSCNI_TRACE === '1';
const fsModule = () => require('fs') as typeof import('fs');
if (trace) {
  // resident memory, because every spawn forks this process: a bigger heap makes each spawn slower
  process.on('exit', (code) => {
    // anonymous memory is what fork copies (file pages are not), so it is told apart
    const anon = /RssAnon:\s+(\d+)/.exec(fsModule().readFileSync('/proc/self/status', 'utf8'))?.[1];
    const mib = (kib: number) => (kib / 1024).toFixed(1);
    process.stderr.write(
      `tscni-trace ${nowMs().toFixed(1)} exit ${code} rss ${mib(process.memoryUsage.rss() / 1024)} MiB anon ${anon ? mib(+anon) : '?'} MiB\n`,
    );
  });
}

let inputSeq = 0;

/**
 * A child's input (an `ip -batch -` or `nft -f -` script) as a descriptor of an unlinked temp file, whole
 * before the child starts. Through a pipe, EOF comes only when the event loop next runs the pipe's close,
 * and `ip`/`nft` wait for it before doing anything, for as long as IPAM keeps the loop busy alongside.
 * undefined when no temp file can be made (read-only or full TMPDIR): the caller then uses a pipe.
 */
function inputFile(input: string): number | undefined {
  const fs = fsModule();
  const name = `${(require('os') as typeof import('os')).tmpdir()}/.tscni-in-${process.pid}-${inputSeq++}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(name, 'wx+', 0o600); // O_EXCL: never an existing file or a planted symlink
    fs.unlinkSync(name);
    const buf = Buffer.from(input);
    // positional writes leave the descriptor's offset at 0, where the child starts reading
    for (let off = 0; off < buf.length;) off += fs.writeSync(fd, buf, off, buf.length - off, off);
    return fd;
  } catch {
    // a name that was already there (open failed) is not ours to remove
    if (fd !== undefined) {
      fs.closeSync(fd);
      fs.rmSync(name, { force: true });
    }
    return undefined;
  }
}

export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  execaModule ??= require('execa') as typeof import('execa');
  if (opts.netns) [file, args] = ['nsenter', [`--net=${opts.netns}`, '--', file, ...args]];
  let r: ExecaReturnValue;
  let inputFd: number | undefined;
  const watched = observing();
  const tObs = watched ? nowMs() : 0;
  const t0 = trace ? nowMs() : 0;
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  // a plugin call's whole budget bounds each spawn too (pkg/cni/budget.ts)
  const limit = Math.min(opts.timeout ?? 20_000, remainingMs());
  const argv = [file, ...args].join(' ');
  if (limit <= 0) throw overBudget(`about to run ${argv}`);
  const before = nowDoing(`running ${argv}`);
  try {
    inputFd = opts.input === undefined ? undefined : inputFile(opts.input);
    const child = execaModule(file, args as string[], {
      input: inputFd === undefined ? opts.input : undefined,
      // no input: /dev/null, so a child that reads stdin sees EOF instead of waiting on a pipe nobody closes
      stdin: inputFd ?? (opts.input === undefined ? 'ignore' : 'pipe'),
      // our own timer, not execa's `timeout`: execa hands that to child_process.spawn, whose timer is cleared
      // only on 'exit', which a program that failed to start (ENOENT) never emits, so it kept this process alive
      reject: false,
      stripFinalNewline: false,
      env: opts.env,
      extendEnv: opts.env === undefined ? true : false,
      shell: false,
      // execa's exit-time kill hooks every signal (signal-exit) around each spawn; a child
      // outliving a killed plugin is one short `ip`/`nft` that finishes on its own (or at its timeout)
      cleanup: false,
    });
    timer = setTimeout(() => {
      timedOut = true;
      child.kill(opts.killSignal);
    }, limit);
    r = await child;
  } catch (e) {
    throw new CniError(ErrCode.Internal, `failed to run ${file}: ${(e as Error).message}`);
  } finally {
    nowDoing(before);
    clearTimeout(timer);
    if (inputFd !== undefined) fsModule().closeSync(inputFd);
  }
  if (trace) process.stderr.write(`tscni-trace ${t0.toFixed(1)} ${(nowMs() - t0).toFixed(1)} spawn ${file} ${args.join(' ')}\n`);
  if (watched) spawned(file, args, nowMs() - tObs, r.exitCode);
  // a timed-out child is killed by a signal and has no exit code: test for the timeout first
  if (timedOut) {
    const what = `${file} ${args.join(' ')}`;
    throw limit < (opts.timeout ?? 20_000) ? overBudget(`running ${what}`) : new CniError(ErrCode.TryAgainLater, `${what} timed out`);
  }
  if (r.failed && r.exitCode === undefined) {
    throw new CniError(ErrCode.Internal, `failed to run ${file}: ${(r as unknown as { shortMessage?: string }).shortMessage ?? 'spawn error'}`);
  }
  const res: RunResult = { stdout: r.stdout ?? '', stderr: r.stderr ?? '', exitCode: r.exitCode ?? -1 };
  if (res.exitCode !== 0 && !opts.allowFailure) {
    throw new CommandError(file, args, res);
  }
  return res;
}

/** A non-zero exit of an external program, keeping its stderr for callers that match on it. */
export class CommandError extends CniError {
  constructor(
    readonly file: string,
    readonly args: readonly string[],
    readonly result: RunResult,
  ) {
    super(ErrCode.Internal, `${file} ${args.join(' ')}: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
  }
}

/** A long-running program started by an agent (its routing daemon), and how to end it. */
export interface Daemon {
  readonly pid: number | undefined;
  /** resolves when it has exited: its exit code, or the name of the signal that ended it */
  readonly exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): void;
}

/**
 * Start a program that runs until stopped: no time limit, stdin from /dev/null, each line of its stdout and
 * stderr handed to onLine. A program that cannot start (ENOENT) exits at once with code 127.
 */
export function startDaemon(file: string, args: readonly string[], o: { env?: Record<string, string>; onLine?: (line: string) => void } = {}): Daemon {
  execaModule ??= require('execa') as typeof import('execa');
  const child = execaModule(file, args as string[], {
    stdin: 'ignore',
    reject: false,
    buffer: false,
    env: o.env,
    extendEnv: o.env === undefined,
    shell: false,
    // the agent stops its daemon itself (stop()); a daemon outliving a killed agent keeps routing
    cleanup: false,
  });
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (d: string) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) o.onLine?.(l);
    });
  }
  const exited = child.then(
    (r) => (r.signal ?? (r.exitCode === undefined ? 127 : r.exitCode)) as number | string,
    () => 127,
  );
  return { pid: child.pid, exited, stop: (signal = 'SIGTERM') => void child.kill(signal) };
}
