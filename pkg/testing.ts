// Helpers for the unit tests (*.test.ts). No plugin code imports this module.
import { CniError } from './cni/errors';

/** The CniError that f throws; fails the test when f returns or throws something else. */
export function thrown(f: () => unknown): CniError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error('expected a CniError, nothing was thrown');
}
