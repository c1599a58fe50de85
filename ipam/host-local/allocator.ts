// Which address an ADD gets from a range set: round-robin from the one after last_reserved_ip, skipping each
// range's gateway and whatever is taken, wrapping once; then a torn reservation nobody will finish. The policy
// only: what is taken and how a reservation is made is the store's (store.ts; an in-memory one in the tests).
import type { RangeSet } from './config';
import type { Owner } from './disk';

export interface Reservations {
  /** the offset in the set where the round-robin resumes (after the last address handed out), 0 at first */
  cursor(set: RangeSet): bigint;
  /** the first offset in [from, to) not known to be taken, or undefined */
  nextFree(set: RangeSet, from: bigint, to: bigint): bigint | undefined;
  /** reserve the address at this offset; false when it turned out to be taken */
  tryReserve(set: RangeSet, offset: bigint, owner: Owner): boolean;
  /** after how many refused tries to give up (a set too big to index is probed, not searched) */
  tryLimit(set: RangeSet): number;
  /** a torn reservation of the set taken over for owner (its address), or undefined */
  takeTorn(set: RangeSet, owner: Owner): bigint | undefined;
}

/** An address of the set for owner, reserved; undefined when the set is exhausted. */
export function allocate(set: RangeSet, r: Reservations, owner: Owner): bigint | undefined {
  const start = r.cursor(set) % set.total;
  const limit = r.tryLimit(set);
  let tries = 0;
  for (const [lo, hi] of [
    [start, set.total],
    [0n, start],
  ]) {
    for (let o = r.nextFree(set, lo, hi); o !== undefined && tries < limit; o = r.nextFree(set, o + 1n, hi)) {
      const { ip, range } = set.at(o);
      if (ip === range.gateway) continue;
      tries++;
      if (r.tryReserve(set, o, owner)) return ip;
    }
  }
  return r.takeTorn(set, owner);
}
