import { CniError, ErrCode, everyStep, invalidConfig, toCniError } from './errors';

describe('errors', () => {
  it('codes are the spec numbers', () => {
    expect([ErrCode.IncompatibleVersion, ErrCode.UnsupportedField, ErrCode.UnknownContainer, ErrCode.InvalidEnv]).toEqual([1, 2, 3, 4]);
    expect([ErrCode.IOFailure, ErrCode.DecodeFailure, ErrCode.InvalidConfig, ErrCode.TryAgainLater]).toEqual([5, 6, 7, 11]);
    expect([ErrCode.NotAvailable, ErrCode.NotAvailableLimitedConnectivity, ErrCode.Internal]).toEqual([50, 51, 999]);
    for (const c of [ErrCode.NoAddressAvailable, ErrCode.KernelOperation, ErrCode.CheckFailed]) expect(c).toBeGreaterThanOrEqual(100);
  });

  it('CniError carries code, message and details', () => {
    const e = new CniError(7, 'bad', 'more');
    expect(e).toBeInstanceOf(Error);
    expect([e.code, e.message, e.details, e.name]).toEqual([7, 'bad', 'more', 'CniError']);
    expect(new CniError(4, 'x').details).toBe('');
  });

  it('toCniError keeps a CniError and turns anything else into 999 with its message', () => {
    const c = new CniError(11, 'later');
    expect(toCniError(c)).toBe(c);
    const e = toCniError(new RangeError('out of range'));
    expect([e.code, e.message]).toEqual([999, 'out of range']);
    expect(toCniError('text')).toMatchObject({ code: 999, message: 'text' });
    expect(toCniError(undefined)).toMatchObject({ code: 999, message: 'undefined' });
    expect(toCniError({ code: 7 }).code).toBe(999);
  });

  it('invalidConfig is code 7 naming the key', () => {
    const e = invalidConfig('ipam.ranges[0][0].subnet', 'not a CIDR');
    expect([e.code, e.message]).toEqual([7, 'invalid config: ipam.ranges[0][0].subnet: not a CIDR']);
  });
});

describe('everyStep', () => {
  it('runs every step past failures and throws one error naming all, with the first code', async () => {
    const ran: number[] = [];
    const p = everyStep('GC', [
      async () => ran.push(1),
      async () => {
        ran.push(2);
        throw new CniError(ErrCode.InvalidConfig, 'invalid config: ipam.dataDir: "x" is not an absolute path');
      },
      async () => {
        ran.push(3);
        throw new Error('plain');
      },
    ]);
    await expect(p).rejects.toMatchObject({ code: ErrCode.InvalidConfig, message: 'GC: invalid config: ipam.dataDir: "x" is not an absolute path; plain' });
    expect(ran).toEqual([1, 2, 3]);
    await expect(everyStep('GC', [async () => 1])).resolves.toBeUndefined();
  });
});
