// Error codes of the CNI spec (SPEC.md "Error codes"); 100+ are ours.
export enum ErrCode {
  IncompatibleVersion = 1,
  UnsupportedField = 2,
  UnknownContainer = 3,
  InvalidEnv = 4,
  IOFailure = 5,
  DecodeFailure = 6,
  InvalidConfig = 7,
  TryAgainLater = 11,
  NotAvailable = 50,
  NotAvailableLimitedConnectivity = 51,
  /** IPAM pool has no free address */
  NoAddressAvailable = 100,
  /** the kernel refused or lacked something we asked for */
  KernelOperation = 101,
  /** CHECK found state that differs from what ADD created */
  CheckFailed = 102,
  Internal = 999,
}

export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
    this.name = 'CniError';
  }
}

/** Any thrown value as a CniError: unknown failures become 999 with their message, never a stack. */
export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof Error) return new CniError(ErrCode.Internal, e.message);
  return new CniError(ErrCode.Internal, String(e));
}

export function invalidConfig(key: string, why: string): CniError {
  return new CniError(ErrCode.InvalidConfig, `invalid config: ${key}: ${why}`);
}

/**
 * Run every step, going on past failures (GC must, as the spec asks), then throw one error naming them all
 * with the first one's code: a config error stays code 7, a store error code 5.
 */
export async function everyStep(what: string, steps: Array<() => Promise<unknown>>): Promise<void> {
  const errors: CniError[] = [];
  for (const step of steps) await step().catch((e: unknown) => errors.push(toCniError(e)));
  if (errors.length) throw new CniError(errors[0].code, `${what}: ${errors.map((e) => e.message).join('; ')}`);
}
