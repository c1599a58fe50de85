// The allocation policy against an in-memory store: no files, no lock.
import { parseNetConf } from '../../pkg/cni/skel';
import { formatIP } from '../../pkg/ipnet';
import { allocate, type Reservations } from './allocator';
import { parseConfig, type RangeSet } from './config';
import type { Owner } from './disk';

function rangeSet(range: Record<string, string>): RangeSet {
  const conf = parseNetConf(
    Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'host-local', ipam: { type: 'host-local', ranges: [[range]] } })),
  );
  return parseConfig(conf).rangeSets[0];
}

/** Taken offsets in a set, the cursor after the last reservation, torn reservations, and writers the index missed. */
class Memory implements Reservations {
  readonly taken = new Set<bigint>();
  /** taken on disk by another writer, unknown to nextFree */
  readonly foreign = new Set<bigint>();
  readonly torn: bigint[] = [];
  last?: bigint;
  tries = 0;
  constructor(private readonly limit = Infinity) {}
  cursor(): bigint {
    return this.last === undefined ? 0n : this.last + 1n;
  }
  nextFree(_set: RangeSet, from: bigint, to: bigint): bigint | undefined {
    for (let o = from; o < to; o++) if (!this.taken.has(o)) return o;
    return undefined;
  }
  tryReserve(_set: RangeSet, o: bigint): boolean {
    this.tries++;
    if (this.foreign.has(o)) {
      this.taken.add(o);
      return false;
    }
    this.taken.add(o);
    this.last = o;
    return true;
  }
  tryLimit(): number {
    return this.limit;
  }
  takeTorn(set: RangeSet): bigint | undefined {
    const o = this.torn.shift();
    return o === undefined ? undefined : set.at(o).ip;
  }
}

const owner: Owner = { id: 'c', ifname: 'eth0' };
const ip = (set: RangeSet, a: bigint | undefined) => (a === undefined ? undefined : formatIP(set.family, a));

describe('allocate', () => {
  const set = rangeSet({ subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.13', gateway: '10.1.0.11' });

  it('goes round-robin from the cursor, skips the gateway, wraps once, then has nothing', () => {
    const m = new Memory();
    const got = [1, 2, 3, 4].map(() => ip(set, allocate(set, m, owner)));
    expect(got).toEqual(['10.1.0.10', '10.1.0.12', '10.1.0.13', undefined]);
    // one freed in the middle: found after wrapping from the cursor at the end
    m.taken.delete(1n + 1n);
    expect(ip(set, allocate(set, m, owner))).toBe('10.1.0.12');
  });

  it('starts after the last address handed out, not at the first free one', () => {
    const m = new Memory();
    m.last = 2n;
    expect(ip(set, allocate(set, m, owner))).toBe('10.1.0.13');
    expect(ip(set, allocate(set, m, owner))).toBe('10.1.0.10');
  });

  it('an address another writer took meanwhile is skipped for the next one', () => {
    const m = new Memory();
    m.foreign.add(0n);
    expect(ip(set, allocate(set, m, owner))).toBe('10.1.0.12');
    expect(m.tries).toBe(2);
  });

  it('an exhausted set falls back to a torn reservation nobody will finish', () => {
    const m = new Memory();
    for (const o of [0n, 2n, 3n]) m.taken.add(o);
    expect(allocate(set, m, owner)).toBeUndefined();
    m.torn.push(3n);
    expect(ip(set, allocate(set, m, owner))).toBe('10.1.0.13');
  });

  it('gives up after the store says how many refused tries are enough (a probed set)', () => {
    const big = rangeSet({ subnet: 'fd00::/64' });
    const m = new Memory(5);
    for (let o = 0n; o < 100n; o++) m.foreign.add(o);
    expect(allocate(big, m, owner)).toBeUndefined();
    expect(m.tries).toBe(5);
  });
});
