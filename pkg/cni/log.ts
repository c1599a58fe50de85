// Per-call logs, asked for by an optional `log` block in the network config: {"file": "/var/log/tscni.log",
// "level": "error" | "info" | "debug"}. The skeleton loads this module only when the block is there.
// One line per call (level debug adds one per external command), all of a call's lines in one write to a file
// opened with O_APPEND: concurrent plugin processes never interleave partial lines. A log that cannot be written
// is said on stderr and never fails the call; stdout carries only the CNI result.
import * as fs from 'fs';
import * as path from 'path';
import { nowMs } from '../clock';
import { ConfigReader } from './config';
import type { CniError } from './errors';
import type { CmdArgs, Result } from './types';

export type LogLevel = 'error' | 'info' | 'debug';
const LEVELS: readonly string[] = ['error', 'info', 'debug'];

export interface LogConf {
  file: string;
  level: LogLevel;
}

/** The `log` block, or undefined when there is none; a bad one is code 7 naming the key (log.file, log.level). */
export function parseLogConf(raw: Record<string, unknown>): LogConf | undefined {
  const c = new ConfigReader(raw).object('log');
  if (!c) return undefined;
  const file = c.requiredString('file');
  if (!path.isAbsolute(file)) throw c.fail('file', `${JSON.stringify(file)} is not an absolute path`);
  const level = c.string('level', 'info');
  if (!LEVELS.includes(level)) throw c.fail('level', `${JSON.stringify(level)} is not one of ${LEVELS.join(', ')}`);
  return { file, level: level as LogLevel };
}

type Field = [string, string | number | undefined];

/** logfmt: key=value, values with blanks, quotes or `=` JSON-quoted; undefined fields left out. */
export function formatFields(fields: Field[]): string {
  return fields
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      const s = String(v);
      return `${k}=${s === '' || /[\s"=\\]/.test(s) ? JSON.stringify(s) : s}`;
    })
    .join(' ');
}

/**
 * Append text in a single write(2) on an O_APPEND descriptor. Opened non-blocking, so a FIFO named as the log
 * cannot hold the call (without a reader the open itself would block, where no budget can end it); a FIFO is
 * refused, a character device (/dev/null) is fine.
 */
export function appendOnce(file: string, text: string): void {
  const { O_WRONLY, O_APPEND, O_CREAT, O_NONBLOCK } = fs.constants;
  const fd = fs.openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK, 0o640);
  try {
    if (fs.fstatSync(fd).isFIFO()) throw Object.assign(new Error(`${file} is a FIFO`), { code: 'EFIFO' });
    fs.writeSync(fd, text);
  } finally {
    fs.closeSync(fd);
  }
}

export interface CallLogIO {
  now: () => number;
  append: (file: string, text: string) => void;
  warn: (s: string) => void;
  clock: () => Date;
}

const realIO: CallLogIO = {
  now: nowMs,
  append: appendOnce,
  warn: (s) => process.stderr.write(s),
  clock: () => new Date(),
};

/** The log of one plugin call: collects debug lines, writes everything when the call ends. */
export class CallLog {
  private readonly lines: string[] = [];

  constructor(
    readonly conf: LogConf,
    private readonly plugin: string,
    private readonly a: CmdArgs,
    private readonly t0: number,
    private readonly io: CallLogIO = realIO,
  ) {}

  private head(): string {
    return `${this.io.clock().toISOString()} ${this.plugin} ${this.a.command}`;
  }

  /** One external command (level debug). */
  command(file: string, args: readonly string[], ms: number, exitCode: number | undefined): void {
    if (this.conf.level !== 'debug') return;
    const fields: Field[] = [
      ['id', this.a.containerId],
      ['cmd', [file, ...args].join(' ')],
      ['exit', exitCode ?? 'none'],
      ['ms', ms.toFixed(1)],
    ];
    this.lines.push(`${this.head()} ${formatFields(fields)}`);
  }

  /** One kernel op carried out in process (level debug): in ip's words, with where and the refusal if any. */
  kernelOp(op: string, netns: string | undefined, ms: number, error: string | undefined): void {
    if (this.conf.level !== 'debug') return;
    const fields: Field[] = [
      ['id', this.a.containerId],
      ['op', op],
      ['netns', netns],
      ['result', error === undefined ? 'ok' : 'error'],
      ['msg', error],
      ['ms', ms.toFixed(1)],
    ];
    this.lines.push(`${this.head()} ${formatFields(fields)}`);
  }

  /** The call's outcome: the result (ADD) or nothing on success, the error on failure. Never throws. */
  done(result: Result | undefined, err?: CniError): void {
    if (!err && this.conf.level === 'error') return;
    const fields: Field[] = [
      ['id', this.a.containerId || undefined],
      ['netns', this.a.netns || undefined],
      ['if', this.a.ifName || undefined],
    ];
    if (err) fields.push(['result', 'error'], ['code', err.code], ['msg', err.message]);
    else fields.push(['result', 'ok'], ['ips', result?.ips?.map((ip) => ip.address).join(',') || undefined]);
    fields.push(['ms', (this.io.now() - this.t0).toFixed(1)]);
    this.lines.push(`${this.head()} ${formatFields(fields)}`);
    try {
      this.io.append(this.conf.file, this.lines.join('\n') + '\n');
    } catch (e) {
      const x = e as NodeJS.ErrnoException;
      this.io.warn(`tscni: log: cannot write ${this.conf.file}: ${x.code ?? x.message}\n`);
    }
    this.lines.length = 0;
  }
}

/**
 * The log for this call, or undefined without a `log` block. With level debug every external command and every
 * kernel op is recorded (pkg/doorlog.ts).
 */
export function openCallLog(plugin: string, a: CmdArgs, t0: number): CallLog | undefined {
  const conf = parseLogConf(a.conf.raw);
  if (!conf) return undefined;
  const log = new CallLog(conf, plugin, a, t0);
  if (conf.level === 'debug') {
    (require('../doorlog') as typeof import('../doorlog')).observeDoors(
      (file, args, ms, code) => log.command(file, args, ms, code),
      (op, netns, ms, error) => log.kernelOp(op, netns, ms, error),
    );
  }
  return log;
}
