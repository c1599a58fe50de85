// The time budget of one plugin call. A runtime waits on every ADD and DEL, so no call may spin or wait without
// end: past its budget a call answers code 11 (try again later) naming what it was doing.
//
// Where the budget is enforced:
// - the skeleton (pkg/cni/skel.ts) starts it for every verb and arms the watchdog below, the last resort for
//   a wait nothing else bounds;
// - pkg/exec.ts gives every spawn at most the time left, and spawns nothing once it is spent;
// - host-local's lock wait (ipam/host-local/lock.ts) stops at the budget, and so does its full scan of a
//   store's files (ipam/host-local/disk.ts), before anything is written;
// - every other loop of a call is bounded by its input (path components, a fixed number of retries), so it
//   needs no clock.
// Agents (tscni fabric watch, tscni k8s run) run no plugin call and have no budget.
import { nowMs } from '../clock';
import { CniError, ErrCode } from './errors';

/** Runtimes give up on a call at about a minute (CRI's default); answering before that keeps the error ours. */
export const DEFAULT_BUDGET_SECONDS = 55;

/** deadline in ms since process start; Infinity outside a plugin call */
let deadline = Infinity;
let seconds = 0;
let source = '';
let doing = 'starting';
let watchdog: NodeJS.Timeout | undefined;
let onExpired: ((e: CniError) => void) | undefined;

/** Start (or restart) the budget of this call: `secs` from process start; `from` names where it came from. */
export function setBudget(secs: number, from: string): void {
  seconds = secs;
  source = from;
  deadline = secs * 1000;
  arm();
}

/** Milliseconds left, Infinity when no budget runs. */
export function remainingMs(): number {
  return deadline - nowMs();
}

/** Name the current step, for the watchdog's message; returns the one it replaces (to put back after). */
export function nowDoing(what: string): string {
  const before = doing;
  doing = what;
  return before;
}

/** The error of a call past its budget. */
export function overBudget(what = doing): CniError {
  return new CniError(ErrCode.TryAgainLater, `gave up after ${seconds} s (${source}) while ${what}`);
}

/** Throw code 11 when the budget is spent. */
export function checkBudget(what: string): void {
  if (nowMs() >= deadline) throw overBudget(what);
}

/**
 * Call `expired` once the budget is spent and the event loop gets to run: for a wait that nothing else bounds.
 * Writes to the IPAM store are synchronous between two awaits, so this never fires in the middle of one.
 */
export function watchBudget(expired: (e: CniError) => void): void {
  onExpired = expired;
  arm();
}

function arm(): void {
  if (watchdog) clearTimeout(watchdog);
  watchdog = undefined;
  if (!onExpired || deadline === Infinity) return;
  const fire = onExpired;
  // unref: a call that is done must not stay alive for its watchdog
  watchdog = setTimeout(() => fire(overBudget()), Math.max(0, remainingMs())).unref();
}

/** Back to no budget (tests). */
export function resetBudget(): void {
  deadline = Infinity;
  onExpired = undefined;
  arm();
  doing = 'starting';
}
