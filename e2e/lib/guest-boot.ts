// What a guest backend is (e2e/lib/guest.ts chooses and drives one): boot a kernel whose root is the host's /,
// run the given init script, power off.

export type GuestName = 'qemu-kvm' | 'uml' | 'qemu-tcg';
export interface BootOptions {
  /** the init script, a host path the guest sees at the same path */
  init: string;
  scratch: string;
  /** guest memory in MiB */
  memMiB: number;
  timeoutMs: number;
}

export interface BootResult {
  /** the guest console (kernel log, init's own lines) */
  console: string;
  /** the host killed the guest at the time limit */
  killed: boolean;
}

export interface GuestBackend {
  readonly name: GuestName;
  /** Why this backend cannot even be tried here (a missing file or package), or undefined. Sync and spawn-free. */
  missing(): string | undefined;
  /** the guest kernel's modules directory (holds modules.dep) */
  modulesDir(): string;
  /** init script lines that mount the host's scratch dir read-write at its own path */
  mountScratch(scratch: string): string;
  boot(o: BootOptions): Promise<BootResult>;
  /** how long the probe's trivial guest may take to boot and power off */
  readonly probeTimeoutMs: number;
}

/** A boot the run() call threw out of: our time limit (killed) or a crash of the guest's host process. */
export function crashed(e: unknown): BootResult {
  const msg = (e as Error).message;
  const timedOut = /timed out/.test(msg);
  const signal = /killed with (SIG\w+)/.exec(msg)?.[1];
  return { console: `(guest ${timedOut ? 'killed at its time limit' : signal ? `process died of ${signal}` : `failed: ${msg}`})`, killed: timedOut };
}
