import { CniError, ErrCode, invalidConfig, toCniError } from './errors';

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
