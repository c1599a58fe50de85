// The host-local disk store: the reference layout (one file per IP in <dataDir>/<network>/, content
// "<containerID>\r\n<ifname>", last_reserved_ip.<N>) plus an index beside it that makes every call O(1) in the
// number of reservations. The index is derived data: it is trusted only while the network directory carries the
// exact mtime stamp the index recorded, and is rebuilt from a full scan otherwise.
//
// Why the stamp works: creating or removing a file in a directory sets the directory's mtime to the current
// (coarse) clock. After each change of ours, under the lock, we set the directory's mtime to a time two seconds
// in the past and record it. Any later create/remove by anyone (the reference host-local, an operator's rm,
// tmpfiles) stamps the present time, which can never equal our past stamp; so staleness cannot be missed even
// within one clock tick, where comparing ordinary mtimes would be racy.
import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { asIOFailure, makeDirs } from '../../pkg/files';
import { type Family, formatIP, parseIP } from '../../pkg/ipnet';
import { allocate, type Reservations } from './allocator';
import { RangeSet } from './config';
import { NetworkDir, TORN_GRACE_MS, type Entry, type Owner, type ScanEntry } from './disk';
import { NetworkLock } from './lock';

/** Ranges up to this many addresses keep a bitmap of taken addresses; larger ones are probed (never near full). */
export const BITMAP_MAX = 1 << 22;
const BUCKETS = 256;
const PROBE_MAX = 65_536;
const INDEX_VERSION = 1;

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const bucketOf = (id: string): number => fnv1a(id) % BUCKETS;
const bitmapFile = (fp: string): string => `bm-${fnv1a(fp).toString(16)}-${fp.length}`;

interface BitmapMeta {
  file: string;
  count: number;
}

interface Meta {
  v: number;
  dev: string;
  ino: string;
  /** the stamp we put on the network directory; '0' forces a rebuild */
  mtimeNs: string;
  bitmaps: Record<string, BitmapMeta>;
  torn: Array<{ ip: string; mtimeMs: number }>;
}

interface Bitmap {
  set: RangeSet;
  buf: Buffer;
  meta: BitmapMeta;
  dirty: boolean;
}

interface Change {
  add: boolean;
  ip: string;
  family: Family;
  addr: bigint;
  owner?: Owner;
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** Rebuild a RangeSet from its fingerprint, to keep bitmaps of other configs of the same network current. */
function rangeSetFromFingerprint(fp: string): RangeSet | undefined {
  const ranges = [];
  for (const part of fp.split(';')) {
    const m = /^([^-]+)-([^/]+)\/(\d+)\|(.+)$/.exec(part);
    const s = m && parseIP(m[1]);
    const e = m && parseIP(m[2]);
    const g = m && parseIP(m[4]);
    if (!m || !s || !e || !g) return undefined;
    ranges.push({ family: s.family, subnet: { family: s.family, ip: s.ip, prefix: Number(m[3]) }, start: s.ip, end: e.ip, gateway: g.ip, key: '' });
  }
  return new RangeSet(-1, ranges, '');
}

function getBit(buf: Buffer, o: number): boolean {
  return (buf[o >> 3] & (1 << (o & 7))) !== 0;
}

/** First clear bit in [from, to), or -1; whole taken bytes are skipped at once. */
function nextClear(buf: Buffer, from: number, to: number): number {
  let o = from;
  while (o < to) {
    const b = buf[o >> 3];
    if (b === 0xff && (o & 7) === 0) {
      o += 8;
      continue;
    }
    if ((b & (1 << (o & 7))) === 0) return o;
    o++;
  }
  return -1;
}

export interface OpenOptions {
  /** create the network directory (ADD); otherwise a missing directory means "nothing stored" */
  create: boolean;
}

export class Store implements Reservations {
  readonly netDir: string;
  private readonly dir: NetworkDir;
  readonly indexDir: string;
  readonly lockPath: string;
  /** set when this call had to rebuild the index (for tests and the benchmark) */
  rebuilt = false;
  private readonly lock: NetworkLock;
  private meta!: Meta;
  private metaDirty = false;
  private invalidate = false;
  private readonly buckets = new Map<number, Entry[]>();
  private readonly dirtyBuckets = new Set<number>();
  private readonly bitmaps = new Map<string, Bitmap>();
  private changes: Change[] = [];
  /** reservation files this call made: removed again when the call cannot record them in the index */
  private readonly created = new Set<string>();

  private constructor(
    readonly dataDir: string,
    readonly network: string,
    private readonly sets: RangeSet[],
  ) {
    this.netDir = path.join(dataDir, network);
    this.dir = new NetworkDir(this.netDir);
    this.indexDir = path.join(dataDir, `.tscni.${network}.index`);
    this.lockPath = path.join(dataDir, `.tscni.${network}.lock`);
    this.lock = new NetworkLock(this.netDir, this.lockPath);
  }

  /** Lock the network and load (or rebuild) its index; undefined when the network has no directory and create is off. */
  static async open(dataDir: string, network: string, sets: RangeSet[], opts: OpenOptions): Promise<Store | undefined> {
    const s = new Store(dataDir, network, sets);
    if (opts.create) makeDirs(s.netDir, 'ipam.dataDir');
    else if (!fs.existsSync(s.netDir)) return undefined;
    await s.lock.acquire();
    try {
      s.load();
    } catch (e) {
      await s.lock.release();
      throw asIOFailure(e, s.indexDir);
    }
    return s;
  }

  // ---- index loading and rebuilding

  private statDir(): fs.BigIntStats {
    return fs.statSync(this.netDir, { bigint: true });
  }

  private readMeta(): Meta | undefined {
    try {
      const m = JSON.parse(fs.readFileSync(path.join(this.indexDir, 'meta'), 'utf8')) as Meta;
      return m.v === INDEX_VERSION ? m : undefined;
    } catch {
      return undefined;
    }
  }

  private load(): void {
    const st = this.statDir();
    const m = this.readMeta();
    if (!m || m.dev !== String(st.dev) || m.ino !== String(st.ino) || m.mtimeNs !== String(st.mtimeNs)) {
      this.rebuild();
      return;
    }
    this.meta = m;
    // a range set this index has not seen yet (new config, runtime ipRanges): its bitmap from the names alone
    const missing = this.sets.filter((s) => s.total <= BigInt(BITMAP_MAX) && !m.bitmaps[s.fingerprint()]);
    if (missing.length) {
      const addrs = this.dirAddrs();
      for (const s of missing) this.newBitmap(s, addrs);
      this.metaDirty = true;
    }
  }

  private newBitmap(set: RangeSet, addrs: Iterable<{ family: Family; ip: bigint } | undefined>): Bitmap {
    const fp = set.fingerprint();
    const buf = Buffer.alloc(Math.ceil(Number(set.total) / 8));
    let count = 0;
    for (const a of addrs) {
      const off = a && set.offsetOf(a.family, a.ip);
      if (off === undefined) continue;
      const o = Number(off);
      if (!getBit(buf, o)) count++;
      buf[o >> 3] |= 1 << (o & 7);
    }
    const bm: Bitmap = { set, buf, meta: { file: bitmapFile(fp), count }, dirty: true };
    this.meta.bitmaps[fp] = bm.meta;
    this.bitmaps.set(fp, bm);
    // bound the per-call cost of keeping other configs' bitmaps current
    const fps = Object.keys(this.meta.bitmaps);
    for (const old of fps.slice(0, Math.max(0, fps.length - 8))) {
      if (old !== fp && !this.sets.some((s) => s.fingerprint() === old)) delete this.meta.bitmaps[old];
    }
    return bm;
  }

  private dirAddrs(): Array<{ family: Family; ip: bigint } | undefined> {
    return this.dir.addrs();
  }

  /** Read every reservation file: the reference's view of the directory. */
  scan(): ScanEntry[] {
    return this.dir.scan();
  }

  /** Full scan, then a fresh index written beside the old one and swapped in. */
  private rebuild(): void {
    this.rebuilt = true;
    this.dir.removeDeadTemps();
    let entries: ScanEntry[] = [];
    // a writer that ignores our lock (the reference) may change the directory while we read it: read again
    for (let i = 0; i < 3; i++) {
      const before = this.statDir().mtimeNs;
      entries = this.scan();
      if (this.statDir().mtimeNs === before) break;
    }
    const st = this.statDir();
    this.meta = { v: INDEX_VERSION, dev: String(st.dev), ino: String(st.ino), mtimeNs: '0', bitmaps: {}, torn: [] };
    this.buckets.clear();
    this.bitmaps.clear();
    for (const e of entries) {
      if (e.owner) {
        if (/[\t\n]/.test(e.owner.id + e.owner.ifname)) continue; // no valid ID or ifname can ask for it
        const b = bucketOf(e.owner.id);
        if (!this.buckets.has(b)) this.buckets.set(b, []);
        this.buckets.get(b)!.push({ ip: e.ip, ...e.owner });
      } else {
        this.meta.torn.push({ ip: e.ip, mtimeMs: e.mtimeMs });
      }
    }
    const addrs = entries.map((e) => ({ family: e.family, ip: e.addr }));
    for (const s of this.sets) if (s.total <= BigInt(BITMAP_MAX)) this.newBitmap(s, addrs);
    this.meta.mtimeNs = String(this.stamp());

    const tmp = `${this.indexDir}.new`;
    const old = `${this.indexDir}.old`;
    fs.rmSync(tmp, { recursive: true, force: true });
    try {
      fs.mkdirSync(tmp, { mode: 0o700 });
      for (const [b, list] of this.buckets) fs.writeFileSync(path.join(tmp, `b${b}`), formatBucket(list), { mode: 0o600 });
      for (const bm of this.bitmaps.values()) fs.writeFileSync(path.join(tmp, bm.meta.file), bm.buf, { mode: 0o600 });
      fs.writeFileSync(path.join(tmp, 'meta'), JSON.stringify(this.meta), { mode: 0o600 });
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true }); // no half-written index left beside the store
      throw e;
    }
    for (const bm of this.bitmaps.values()) bm.dirty = false;
    fs.rmSync(old, { recursive: true, force: true });
    if (fs.existsSync(this.indexDir)) fs.renameSync(this.indexDir, old);
    fs.renameSync(tmp, this.indexDir);
    fs.rmSync(old, { recursive: true, force: true });
    this.metaDirty = false;
    this.invalidate = false;
  }

  /** Put our past-dated stamp on the network directory (see the file comment) and return it. */
  private stamp(): bigint {
    const prev = this.statDir();
    let t = (Date.now() - 2000) / 1000;
    for (let i = 0; i < 3; i++, t -= 0.001) {
      fs.utimesSync(this.netDir, Number(prev.atimeMs) / 1000, t);
      const now = this.statDir().mtimeNs;
      if (now !== prev.mtimeNs && String(now) !== this.meta?.mtimeNs) return now;
    }
    throw new CniError(ErrCode.IOFailure, `cannot stamp ${this.netDir}: its mtime does not change`);
  }

  // ---- index reads

  private bucket(b: number): Entry[] {
    let list = this.buckets.get(b);
    if (!list) {
      list = [];
      let text = '';
      try {
        text = fs.readFileSync(path.join(this.indexDir, `b${b}`), 'utf8');
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw e;
      }
      for (const line of text.split('\n')) {
        if (!line) continue;
        const [ip, id, ifname] = line.split('\t');
        list.push({ ip, id, ifname: ifname ?? '' });
      }
      this.buckets.set(b, list);
    }
    return list;
  }

  private bitmap(set: RangeSet): Bitmap | undefined {
    if (set.total > BigInt(BITMAP_MAX)) return undefined;
    const fp = set.fingerprint();
    let bm = this.bitmaps.get(fp);
    if (bm) return bm;
    const meta = this.meta.bitmaps[fp];
    if (!meta) return this.newBitmap(set, this.dirAddrs());
    const size = Math.ceil(Number(set.total) / 8);
    let buf: Buffer | undefined;
    try {
      buf = fs.readFileSync(path.join(this.indexDir, meta.file));
    } catch {
      /* lost: rebuilt below */
    }
    if (!buf || buf.length !== size) {
      bm = this.newBitmap(set, this.dirAddrs());
      this.metaDirty = true;
      return bm;
    }
    bm = { set, buf, meta, dirty: false };
    this.bitmaps.set(fp, bm);
    return bm;
  }

  /**
   * Torn files the index holds whose writer has finished since (a scan that caught the reference between its
   * create and its write): filling a file does not touch the directory's stamp, so look at them again here.
   */
  private healTorn(): void {
    for (const t of [...this.meta.torn]) {
      // still torn, or removed (which changed the directory's stamp: the next call rebuilds)
      const owner = this.dir.readOwner(t.ip);
      if (!owner) continue;
      const a = parseIP(t.ip)!;
      this.applyChange({ add: true, ip: t.ip, family: a.family, addr: a.ip, owner });
      this.meta.torn.splice(
        this.meta.torn.findIndex((x) => x.ip === t.ip),
        1,
      );
      this.metaDirty = true;
    }
  }

  /** Reservations of a container ID (all its ifnames, and legacy id-only files), each checked against its file. */
  lookup(id: string): Entry[] {
    if (this.meta.torn.length) this.healTorn();
    for (let attempt = 0; ; attempt++) {
      const found = this.bucket(bucketOf(id)).filter((e) => e.id === id);
      const ok = found.every((e) => {
        const o = this.dir.readOwner(e.ip);
        return o !== undefined && o.id === e.id && o.ifname === e.ifname;
      });
      if (ok || attempt > 0) return ok ? found : [];
      // the index disagrees with the files: it cannot be trusted, start over from the files
      this.rebuild();
    }
  }

  // ---- changes

  /** Create the reservation file for an address (whole or not at all, disk.ts); false when it is taken. */
  reserve(family: Family, addr: bigint, owner: Owner, setIndex?: number): boolean {
    const ip = formatIP(family, addr);
    if (!this.dir.create(ip, owner)) return false;
    this.changes.push({ add: true, ip, family, addr, owner });
    this.created.add(ip);
    if (setIndex !== undefined) this.dir.writeLastReserved(setIndex, ip);
    return true;
  }

  /** Remove a reservation file (already gone is fine). */
  release(e: Entry): void {
    const a = parseIP(e.ip)!;
    this.created.delete(e.ip);
    this.dir.remove(e.ip);
    this.changes.push({ add: false, ip: e.ip, family: a.family, addr: a.ip, owner: { id: e.id, ifname: e.ifname } });
  }

  /** Release everything (id, ifname) holds; when it holds nothing, what legacy id-only files of id hold. */
  releaseOwner(id: string, ifname: string): Entry[] {
    const mine = this.lookup(id);
    let targets = mine.filter((e) => e.ifname === ifname);
    if (targets.length === 0) targets = mine.filter((e) => e.ifname === '');
    for (const e of targets) this.release(e);
    return targets;
  }

  /** Take over a torn file (empty or NUL) whose writer is provably gone: its last write is older than the grace. */
  private reclaimTorn(ip: string, owner: Owner, setIndex: number): boolean {
    if (!this.dir.removeStaleTorn(ip)) return false;
    const a = parseIP(ip)!;
    this.changes.push({ add: false, ip, family: a.family, addr: a.ip });
    return this.reserve(a.family, a.ip, owner, setIndex);
  }

  /** Reserve a requested address: free, or torn and reclaimable. */
  reserveRequested(family: Family, addr: bigint, owner: Owner, setIndex: number): boolean {
    if (this.reserve(family, addr, owner, setIndex)) return true;
    const ip = formatIP(family, addr);
    return this.meta.torn.some((t) => t.ip === ip) && this.reclaimTorn(ip, owner, setIndex);
  }

  /** An address of the set for owner, by the allocator's round-robin over this store (allocator.ts). */
  allocate(set: RangeSet, owner: Owner): bigint | undefined {
    return allocate(set, this, owner);
  }

  // ---- what the allocator asks (Reservations)

  cursor(set: RangeSet): bigint {
    const last = this.dir.readLastReserved(set.index);
    const off = last && set.offsetOf(last.family, last.ip);
    return off === undefined ? 0n : off + 1n;
  }

  nextFree(set: RangeSet, from: bigint, to: bigint): bigint | undefined {
    const bm = this.bitmap(set);
    // a set too big for a bitmap is probed address by address
    if (!bm) return from < to ? from : undefined;
    const o = nextClear(bm.buf, Number(from), Number(to));
    return o < 0 ? undefined : BigInt(o);
  }

  tryReserve(set: RangeSet, offset: bigint, owner: Owner): boolean {
    if (this.reserve(set.family, set.at(offset).ip, owner, set.index)) return true;
    const bm = this.bitmap(set);
    if (bm) {
      // taken by a writer the index has not seen: mark it, and rebuild on the next call
      bm.buf[Number(offset) >> 3] |= 1 << (Number(offset) & 7);
      this.invalidate = true;
    }
    return false;
  }

  tryLimit(set: RangeSet): number {
    return this.bitmap(set) ? Infinity : PROBE_MAX;
  }

  takeTorn(set: RangeSet, owner: Owner): bigint | undefined {
    for (const t of [...this.meta.torn]) {
      const a = parseIP(t.ip);
      const range = a && set.rangeOf(a.family, a.ip);
      if (a && range && a.ip !== range.gateway && this.reclaimTorn(t.ip, owner, set.index)) return a.ip;
    }
    return undefined;
  }

  /** Addresses still available in a set (torn files past their grace count as available); undefined: too big to count. */
  free(set: RangeSet): number | undefined {
    const bm = this.bitmap(set);
    if (!bm) return undefined;
    let n = Number(set.total) - bm.meta.count;
    for (const r of set.ranges) {
      const off = set.offsetOf(r.family, r.gateway);
      if (off !== undefined && !getBit(bm.buf, Number(off))) n--;
    }
    const now = Date.now();
    for (const t of this.meta.torn) {
      const a = parseIP(t.ip);
      if (a && set.rangeOf(a.family, a.ip) && now - t.mtimeMs >= TORN_GRACE_MS) n++;
    }
    return n;
  }

  /** GC: under the lock, read every file and remove those keep() rejects; the index is rebuilt from the result. */
  sweep(keep: (e: ScanEntry) => boolean): { removed: ScanEntry[]; errors: string[] } {
    const removed: ScanEntry[] = [];
    const errors: string[] = [];
    for (const e of this.scan()) {
      if (keep(e)) continue;
      try {
        this.dir.remove(e.ip);
        removed.push(e);
      } catch (err) {
        errors.push(`${e.ip}: ${(err as Error).message}`);
      }
    }
    this.changes = [];
    this.rebuild();
    return { removed, errors };
  }

  // ---- commit

  private applyChange(c: Change): void {
    if (c.owner && !/[\t\n]/.test(c.owner.id + c.owner.ifname)) {
      const b = bucketOf(c.owner.id);
      const list = this.bucket(b);
      const i = list.findIndex((e) => e.ip === c.ip);
      if (i >= 0) list.splice(i, 1);
      if (c.add) list.push({ ip: c.ip, ...c.owner });
      this.dirtyBuckets.add(b);
    }
    if (!c.add) {
      const i = this.meta.torn.findIndex((t) => t.ip === c.ip);
      if (i >= 0) this.meta.torn.splice(i, 1);
    }
    for (const fp of Object.keys(this.meta.bitmaps)) {
      const set = this.bitmaps.get(fp)?.set ?? rangeSetFromFingerprint(fp);
      const off = set?.offsetOf(c.family, c.addr);
      if (off === undefined || !set) continue;
      const bm = this.bitmap(set)!;
      const o = Number(off);
      const was = getBit(bm.buf, o);
      if (c.add && !was) {
        bm.buf[o >> 3] |= 1 << (o & 7);
        bm.meta.count++;
      } else if (!c.add && was) {
        bm.buf[o >> 3] &= ~(1 << (o & 7));
        bm.meta.count--;
      }
      bm.dirty = true;
    }
  }

  /** Bring the index in line with what this call did on disk, stamp the directory, unlock. */
  async close(): Promise<void> {
    try {
      // the temp file goes before the stamp: removing it changes the directory, and after the stamp that change
      // would make the next call rebuild the index from every file
      this.dir.removeTemp();
      if (this.lock.compromised) throw new CniError(ErrCode.TryAgainLater, `lock ${this.lockPath} was lost: ${this.lock.compromised.message}`);
      if (this.changes.length || this.metaDirty || this.invalidate) this.commit();
    } catch (e) {
      // a failed ADD leaves no reservation behind; the directory's changed stamp makes the next call rebuild
      for (const ip of this.created) {
        try {
          this.dir.remove(ip);
        } catch {
          /* the error being reported is the one that matters */
        }
      }
      throw asIOFailure(e, this.indexDir);
    } finally {
      this.dir.removeTemp();
      await this.lock.release();
    }
  }

  private commit(): void {
    if (this.changes.length || this.invalidate) this.meta.mtimeNs = String(this.stamp());
    for (const c of this.changes) this.applyChange(c);
    this.changes = [];
    for (const b of this.dirtyBuckets) {
      const list = this.buckets.get(b)!;
      const file = path.join(this.indexDir, `b${b}`);
      // an empty bucket is no file (a missing one reads as empty): churn leaves nothing behind
      if (list.length) fs.writeFileSync(file, formatBucket(list), { mode: 0o600 });
      else fs.rmSync(file, { force: true });
    }
    this.dirtyBuckets.clear();
    for (const bm of this.bitmaps.values()) {
      if (bm.dirty) fs.writeFileSync(path.join(this.indexDir, bm.meta.file), bm.buf, { mode: 0o600 });
      bm.dirty = false;
    }
    if (this.invalidate) this.meta.mtimeNs = '0';
    const tmp = path.join(this.indexDir, 'meta.tmp');
    fs.writeFileSync(tmp, JSON.stringify(this.meta), { mode: 0o600 });
    fs.renameSync(tmp, path.join(this.indexDir, 'meta'));
    this.metaDirty = false;
  }
}

function formatBucket(list: Entry[]): string {
  let s = '';
  for (const e of list) s += `${e.ip}\t${e.id}\t${e.ifname}\n`;
  return s;
}
