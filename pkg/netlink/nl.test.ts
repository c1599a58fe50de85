// Netlink framing: attributes and messages byte for byte as <linux/netlink.h> lays them out, and the kernel's
// refusals (NLMSG_ERROR, and a dump's NLMSG_DONE) read back with their extended-ack text.
import { attr, be16, cstr, decodeAttrs, decodeMessages, doneErrorOf, encodeAttrs, encodeMessage, errorOf, nested, NetlinkError, str, u32, u8 } from './nl';

const hex = (b: Buffer) => b.toString('hex');

describe('attributes', () => {
  it('are length, type, payload, padded to 4 bytes; the length leaves the padding out', () => {
    expect(hex(encodeAttrs([u8(1, 7)]))).toBe('05000100' + '07000000');
    expect(hex(encodeAttrs([str(3, 'eth0')]))).toBe('09000300' + '6574683000' + '000000');
    expect(hex(encodeAttrs([u32(4, 1500)]))).toBe('08000400' + 'dc050000');
    expect(hex(encodeAttrs([be16(15, 8472)]))).toBe('06000f00' + '2118' + '0000');
  });

  it('nested ones carry the nested flag and their children encoded; decoding clears the flag', () => {
    const b = encodeAttrs([nested(18, [str(1, 'veth'), u8(2, 1)])]);
    expect(b.readUInt16LE(2)).toBe(18 | 0x8000);
    const outer = decodeAttrs(b);
    const inner = decodeAttrs(outer.get(18)!);
    expect(cstr(inner.get(1))).toBe('veth');
    expect(inner.get(2)).toEqual(Buffer.from([1]));
  });

  it('decoding starts at an offset, keeps the first of a repeated type, and stops at a truncated one', () => {
    const b = Buffer.concat([Buffer.alloc(4), encodeAttrs([u32(1, 1), u32(1, 2), attr(2, Buffer.from('ab'))])]);
    const m = decodeAttrs(b, 4);
    expect(m.get(1)!.readUInt32LE(0)).toBe(1);
    expect(m.get(2)).toEqual(Buffer.from('ab'));
    const cut = decodeAttrs(b.subarray(0, b.length - 6), 4);
    expect([cut.has(1), cut.has(2)]).toEqual([true, false]);
  });

  it('a string attribute reads up to its NUL', () => {
    expect(cstr(Buffer.from('tscni.1\0\0\0'))).toBe('tscni.1');
    expect(cstr(Buffer.from('abc'))).toBe('abc');
    expect(cstr(undefined)).toBeUndefined();
  });
});

describe('messages', () => {
  it('a header of length, type, flags, seq and port id, then the body padded', () => {
    const m = encodeMessage(16, 0x405, 9, Buffer.from([1, 2, 3]));
    expect(hex(m)).toBe('13000000' + '1000' + '0504' + '09000000' + '00000000' + '010203' + '00');
  });

  it('several in one read decode one by one', () => {
    const both = Buffer.concat([encodeMessage(16, 2, 1, Buffer.alloc(5, 0xaa)), encodeMessage(3, 2, 1, Buffer.alloc(4))]);
    const ms = decodeMessages(both);
    expect(ms.map((m) => [m.type, m.seq, m.body.length])).toEqual([
      [16, 1, 5],
      [3, 1, 4],
    ]);
  });
});

/** an NLMSG_ERROR body: -errno, the request's header, then (with ack TLVs) NLMSGERR_ATTR_MSG */
function errorMessage(errno: number, text?: string): { type: number; flags: number; seq: number; body: Buffer } {
  const e = Buffer.alloc(4);
  e.writeInt32LE(-errno);
  const request = encodeMessage(16, 5, 1, Buffer.alloc(0));
  const tlvs = text ? encodeAttrs([str(1, text)]) : Buffer.alloc(0);
  // NLM_F_CAPPED (0x100): only the request's header is echoed; NLM_F_ACK_TLVS (0x200)
  return { type: 2, flags: 0x100 | (text ? 0x200 : 0), seq: 1, body: Buffer.concat([e, request, tlvs]) };
}

describe('refusals', () => {
  it('an ack is no error; an error carries errno, its name, ip words and the kernel text', () => {
    expect(errorOf(errorMessage(0))).toBeUndefined();
    const e = errorOf(errorMessage(17, 'Device exists'))!;
    expect(e).toBeInstanceOf(NetlinkError);
    expect([e.errno, e.code, e.extack, e.message]).toEqual([17, 'EEXIST', 'Device exists', 'File exists (Device exists)']);
    expect(errorOf(errorMessage(19))!.message).toBe('No such device');
    expect(errorOf(errorMessage(95))!.code).toBe('EOPNOTSUPP');
  });

  it('a dump refused comes in its DONE message, with its text after the errno', () => {
    const body = Buffer.concat([Buffer.from([0xea, 0xff, 0xff, 0xff]), encodeAttrs([str(1, 'Invalid values in header for neighbor dump request')])]);
    const e = doneErrorOf({ type: 3, flags: 0x200, seq: 1, body })!;
    expect([e.code, e.extack]).toEqual(['EINVAL', 'Invalid values in header for neighbor dump request']);
    expect(doneErrorOf({ type: 3, flags: 0, seq: 1, body: Buffer.alloc(4) })).toBeUndefined();
  });
});
