// Netlink framing: messages (nlmsghdr), attributes (rtattr/nlattr, nested), a socket that sends a request and
// reads its acknowledgement or its dump, and errors that carry the kernel's errno and extended-ack text.
// Netlink is host-endian: this runs on little-endian machines only (x86-64, arm64), which the build targets.
import * as fs from 'fs';
import * as os from 'os';
import { native } from './native';

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
/** in an error message's header: extended-ack attributes follow */
const NLM_F_ACK_TLVS = 0x200;
/** in an error message's header: the request was not echoed back */
const NLM_F_CAPPED = 0x100;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSGERR_ATTR_MSG = 1;
export const NLA_F_NESTED = 0x8000;
/** the type bits of an attribute: without the nested and byte-order flags */
const NLA_TYPE_MASK = 0x3fff;
const HDR = 16;

export const align4 = (n: number): number => (n + 3) & ~3;

// ---- attributes

/** An attribute: its type and its payload (a nested one is itself a list of attributes, encoded). */
export interface Attr {
  type: number;
  data: Buffer;
}

export function attr(type: number, data: Buffer): Attr {
  return { type, data };
}
export const u8 = (type: number, v: number): Attr => attr(type, Buffer.from([v]));
export function u16(type: number, v: number): Attr {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return attr(type, b);
}
/** network byte order (ports) */
export function be16(type: number, v: number): Attr {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return attr(type, b);
}
export function u32(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return attr(type, b);
}
export function be32(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return attr(type, b);
}
export const str = (type: number, s: string): Attr => attr(type, Buffer.from(`${s}\0`));
export const nested = (type: number, attrs: Attr[]): Attr => attr(type | NLA_F_NESTED, encodeAttrs(attrs));

export function encodeAttrs(attrs: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(4 + a.data.length, 0);
    h.writeUInt16LE(a.type, 2);
    parts.push(h, a.data, Buffer.alloc(align4(a.data.length) - a.data.length));
  }
  return Buffer.concat(parts);
}

/**
 * Attributes of a buffer by type (the nested flag cleared); a repeated type keeps the first. A value is cut out
 * of the buffer when asked for: a fabric's dumps hold thousands of messages, of which a few attributes are read.
 */
export class Attrs {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  constructor(
    private readonly b: Buffer,
    offset = 0,
    end = b.length,
  ) {
    for (let o = offset; o + 4 <= end;) {
      const len = b.readUInt16LE(o);
      if (len < 4 || o + len > end) break;
      const type = b.readUInt16LE(o + 2) & NLA_TYPE_MASK;
      if (this.starts[type] === undefined) {
        this.starts[type] = o + 4;
        this.ends[type] = o + len;
      }
      o += align4(len);
    }
  }

  get(type: number): Buffer | undefined {
    const s = this.starts[type];
    return s === undefined ? undefined : this.b.subarray(s, this.ends[type]);
  }

  has(type: number): boolean {
    return this.starts[type] !== undefined;
  }
}

export const decodeAttrs = (b: Buffer, offset = 0, end = b.length): Attrs => new Attrs(b, offset, end);

export const cstr = (b: Buffer | undefined): string | undefined =>
  b === undefined ? undefined : b.toString('utf8', 0, b.indexOf(0) >= 0 ? b.indexOf(0) : b.length);

// ---- messages

export interface Message {
  type: number;
  flags: number;
  seq: number;
  /** the message after its header */
  body: Buffer;
}

export function encodeMessage(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const h = Buffer.alloc(HDR);
  h.writeUInt32LE(HDR + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  h.writeUInt32LE(0, 12);
  return Buffer.concat([h, body, Buffer.alloc(align4(body.length) - body.length)]);
}

export function decodeMessages(b: Buffer): Message[] {
  const out: Message[] = [];
  for (let o = 0; o + HDR <= b.length;) {
    const len = b.readUInt32LE(o);
    if (len < HDR || o + len > b.length) break;
    out.push({ type: b.readUInt16LE(o + 4), flags: b.readUInt16LE(o + 6), seq: b.readUInt32LE(o + 8), body: b.subarray(o + HDR, o + len) });
    o += align4(len);
  }
  return out;
}

const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([k, v]) => [v, k]));

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** The kernel refused a request: its errno (positive), name (EEXIST) and words, with the extended ack's text. */
export class NetlinkError extends Error {
  readonly code: string;
  constructor(
    readonly errno: number,
    readonly extack?: string,
  ) {
    const code = errnoName(errno);
    super(`${ERRNO_TEXT[code] ?? code}${extack ? ` (${extack})` : ''}`);
    this.code = code;
  }
}

/** The words iproute2 prints for the errnos a CNI call meets, so messages read as they did. */
const ERRNO_TEXT: Record<string, string> = {
  EEXIST: 'File exists',
  ENOENT: 'No such file or directory',
  ENODEV: 'No such device',
  ESRCH: 'No such process',
  EPERM: 'Operation not permitted',
  EINVAL: 'Invalid argument',
  EBUSY: 'Device or resource busy',
  ENETUNREACH: 'Network is unreachable',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EOPNOTSUPP: 'Operation not supported',
  ENOBUFS: 'No buffer space available',
  ERANGE: 'Numerical result out of range',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  ENOTSUP: 'Operation not supported',
};

/** A dump's end: its error, if the kernel refused the dump (a refusal comes here, not as NLMSG_ERROR). */
export function doneErrorOf(m: Message): NetlinkError | undefined {
  const err = m.body.length >= 4 ? -m.body.readInt32LE(0) : 0;
  if (err <= 0) return undefined;
  // after the error: the extended-ack attributes, when the kernel sent any
  const extack = m.flags & NLM_F_ACK_TLVS ? cstr(decodeAttrs(m.body, 4).get(NLMSGERR_ATTR_MSG)) : undefined;
  return new NetlinkError(err, extack);
}

/** The error of an NLMSG_ERROR message (undefined for an ack, error 0). */
export function errorOf(m: Message): NetlinkError | undefined {
  const err = -m.body.readInt32LE(0);
  if (err === 0) return undefined;
  let extack: string | undefined;
  if (m.flags & NLM_F_ACK_TLVS) {
    // after the error: the request's header (and, unless capped, its body), then the extended-ack attributes
    const reqLen = m.flags & NLM_F_CAPPED ? HDR : m.body.readUInt32LE(4);
    extack = cstr(decodeAttrs(m.body, 4 + align4(reqLen)).get(NLMSGERR_ATTR_MSG));
  }
  return new NetlinkError(err, extack);
}

const CLONE_NEWNET = 0x40000000;
const READ_SIZE = 256 * 1024;

/**
 * A netlink socket of one protocol, in our netns or in the one at `netns` (a path): the thread enters it to make
 * the socket and comes back at once; the socket stays bound to it. Requests are synchronous: nothing else runs
 * on this thread meanwhile, and the kernel answers netlink requests without waiting on anything of ours.
 */
export class NetlinkSocket {
  private seq = 1;
  private readonly buf = Buffer.allocUnsafe(READ_SIZE);
  private closed = false;

  private constructor(readonly fd: number) {}

  static open(protocol: number, netns?: string): NetlinkSocket {
    return new NetlinkSocket(netns ? inNetns(netns, () => socketOf(protocol)) : socketOf(protocol));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }

  /** Send one request and wait for its ack; throws the kernel's refusal. */
  request(type: number, flags: number, body: Buffer): void {
    this.exchange([encodeMessage(type, flags | NLM_F_REQUEST | NLM_F_ACK, this.seq, body)], () => undefined);
  }

  /** Send a dump request and gather its messages (of the given types), until the kernel says done. */
  dump(type: number, body: Buffer): Message[] {
    const out: Message[] = [];
    this.exchange([encodeMessage(type, NLM_F_REQUEST | NLM_F_DUMP, this.seq, body)], (m) => void out.push(m));
    return out;
  }

  /**
   * Send messages in one write (a batch: each renumbered with its own seq) and read until every one that asks
   * for an answer (ack or dump) has one. `onMessage` sees every other message. An error answering a message
   * that asked for none (the head of an nf_tables batch) ends the wait: nothing more will come.
   */
  exchange(messages: Buffer[], onMessage: (m: Message) => void): void {
    const first = this.seq;
    const waiting = new Set<number>();
    messages.forEach((m, i) => {
      m.writeUInt32LE(first + i, 8);
      if (m.readUInt16LE(6) & (NLM_F_ACK | NLM_F_DUMP)) waiting.add(first + i);
    });
    this.seq += messages.length;
    const sent = (seq: number) => seq >= first && seq < first + messages.length;
    const out = Buffer.concat(messages);
    for (let o = 0; o < out.length;) o += fs.writeSync(this.fd, out, o);
    let failure: NetlinkError | undefined;
    while (waiting.size) {
      let got: number;
      try {
        got = fs.readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (e) {
        // SO_RCVTIMEO (set by the native part) ran out
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') throw new NetlinkError(os.constants.errno.ETIMEDOUT, 'no answer from the kernel');
        throw e;
      }
      // a copy: messages handed out outlive the next read into the buffer
      for (const m of decodeMessages(Buffer.from(this.buf.subarray(0, got)))) {
        if (!sent(m.seq)) continue; // an answer to an earlier exchange
        if (m.type === NLMSG_ERROR) {
          const e = errorOf(m);
          failure ??= e;
          if (e && !waiting.has(m.seq)) waiting.clear();
          waiting.delete(m.seq);
        } else if (m.type === NLMSG_DONE) {
          failure ??= doneErrorOf(m);
          waiting.delete(m.seq);
        } else {
          onMessage(m);
        }
      }
    }
    if (failure) throw failure;
  }
}

function socketOf(protocol: number): number {
  const fd = native().socket(protocol);
  if (fd < 0) throw new NetlinkError(-fd);
  return fd;
}

/**
 * Run `f` with this thread inside the network namespace at `path`, and come back whatever happens. Only
 * synchronous work may run inside: libuv's pool threads stay where they are.
 */
export function inNetns<T>(path: string, f: () => T): T {
  const n = native();
  const self = fs.openSync('/proc/thread-self/ns/net', 'r');
  let target: number | undefined;
  try {
    target = fs.openSync(path, 'r');
    const r = n.setns(target, CLONE_NEWNET);
    if (r < 0) throw new NetlinkError(-r);
    try {
      return f();
    } finally {
      const back = n.setns(self, CLONE_NEWNET);
      // staying in the pod's namespace would send every later operation there: not survivable
      if (back < 0) throw new Error(`cannot return to our network namespace: ${errnoName(-back)}`);
    }
  } finally {
    if (target !== undefined) fs.closeSync(target);
    fs.closeSync(self);
  }
}
