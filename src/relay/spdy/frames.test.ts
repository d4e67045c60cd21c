import * as assert from 'node:assert/strict';
import { PortForwardError } from '../errors';
import {
  encodeDataHeader,
  encodeGoAway,
  encodePing,
  encodeRawControl,
  encodeRstStream,
  encodeSettings,
  encodeSynReply,
  encodeSynStream,
  encodeWindowUpdate,
  encodeHeaders,
  Frame,
  FrameType,
} from './frames';
import { FrameDecoder } from './decoder';

function dataFrame(id: number, payload: Buffer, fin = false): Buffer {
  return Buffer.concat([encodeDataHeader(id, payload.length, fin), payload]);
}

function decodeAll(d: FrameDecoder): Frame[] {
  const out: Frame[] = [];
  for (let f = d.next(); f; f = d.next()) out.push(f);
  return out;
}

/**
 * Consecutive DATA pieces of a stream joined (the decoder returns a payload as it arrives); enough for
 * inputs with one DATA frame per stream between other frames.
 */
function joinData(frames: Frame[]): Frame[] {
  const out: Frame[] = [];
  for (const f of frames) {
    const last = out[out.length - 1];
    if (f.type === 'data' && last?.type === 'data' && last.streamId === f.streamId && !last.fin) {
      out[out.length - 1] = { ...last, fin: f.fin, data: Buffer.concat([last.data, f.data]) };
    } else {
      out.push(f);
    }
  }
  return out;
}

function assertProtocolError(fn: () => unknown, text: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PortForwardError, `a PortForwardError, not ${String(err)}`);
    assert.equal(err.kind, 'protocol');
    assert.match(err.message, text);
    return true;
  });
}

const ALL = (): Buffer[] => [
  encodeSynStream(1, Buffer.from('hdr'), { fin: true, priority: 3 }),
  encodeSynReply(1, Buffer.from('r'), true),
  encodeRstStream(3, 5),
  encodeSettings([{ id: 7, value: 65536, flags: 1 }], true),
  encodePing(2),
  encodeGoAway(5, 1),
  encodeHeaders(1, Buffer.from('h')),
  encodeWindowUpdate(0, 1000),
  dataFrame(1, Buffer.from('hello'), true),
];

describe('SPDY frames', function () {
  it('round-trips every frame type', function () {
    const d = new FrameDecoder();
    d.push(Buffer.concat(ALL()));
    const frames = decodeAll(d);
    assert.deepEqual(
      frames.map((f) => f.type),
      ['synStream', 'synReply', 'rstStream', 'settings', 'ping', 'goaway', 'headers', 'windowUpdate', 'data'],
    );
    assert.deepEqual(frames[0], {
      type: 'synStream',
      streamId: 1,
      associatedId: 0,
      priority: 3,
      fin: true,
      unidirectional: false,
      headerBlock: Buffer.from('hdr'),
    });
    assert.deepEqual(frames[1], { type: 'synReply', streamId: 1, fin: true, headerBlock: Buffer.from('r') });
    assert.deepEqual(frames[2], { type: 'rstStream', streamId: 3, status: 5 });
    assert.deepEqual(frames[3], {
      type: 'settings',
      clear: true,
      entries: [{ id: 7, value: 65536, flags: 1 }],
    });
    assert.deepEqual(frames[4], { type: 'ping', id: 2 });
    assert.deepEqual(frames[5], { type: 'goaway', lastGoodStreamId: 5, status: 1 });
    assert.deepEqual(frames[7], { type: 'windowUpdate', streamId: 0, delta: 1000 });
    assert.deepEqual(frames[8], { type: 'data', streamId: 1, fin: true, data: Buffer.from('hello') });
    assert.equal(d.bufferedBytes, 0);
  });

  it('decodes the same frames fed one byte at a time', function () {
    const all = Buffer.concat(ALL());
    const d = new FrameDecoder();
    const frames: Frame[] = [];
    for (let i = 0; i < all.length; i++) {
      d.push(all.subarray(i, i + 1));
      frames.push(...decodeAll(d));
    }
    const whole = new FrameDecoder();
    whole.push(all);
    const dataPieces = frames.filter((f) => f.type === 'data').length;
    assert.ok(dataPieces >= 5, `'hello' came as it arrived, byte by byte (${dataPieces} pieces)`);
    assert.deepEqual(joinData(frames), decodeAll(whole));
  });

  it('returns a DATA payload inside one chunk as a subarray of it (no copy)', function () {
    const chunk = Buffer.concat([
      encodePing(2),
      dataFrame(7, Buffer.alloc(1000, 1)),
      dataFrame(9, Buffer.from('x')),
    ]);
    const d = new FrameDecoder();
    d.push(chunk);
    const [, data] = decodeAll(d) as [Frame, Frame & { data: Buffer }];
    assert.equal(data.data.buffer, chunk.buffer, 'same memory');
    assert.equal(data.data.byteOffset, chunk.byteOffset + 12 + 8);
  });

  it('returns a payload that straddles chunks as it arrives, without copying, FIN on the last piece', function () {
    const frame = dataFrame(1, Buffer.from('abcdefghij'), true);
    const d = new FrameDecoder();
    d.push(frame.subarray(0, 3));
    assert.equal(d.next(), undefined, 'no header yet');
    const second = frame.subarray(3, 12);
    d.push(second);
    const first = d.next();
    assert.deepEqual(first, { type: 'data', streamId: 1, fin: false, data: Buffer.from('abcd') });
    assert.equal(first.data.buffer, second.buffer, 'a subarray of the input');
    assert.equal(d.next(), undefined);
    d.push(frame.subarray(12));
    assert.deepEqual(d.next(), { type: 'data', streamId: 1, fin: true, data: Buffer.from('efghij') });
    assert.equal(d.next(), undefined);
    assert.equal(d.bufferedBytes, 0);
  });

  it('returns an empty DATA frame (a bare FIN) at once', function () {
    const d = new FrameDecoder();
    d.push(encodeDataHeader(5, 0, true));
    assert.deepEqual(d.next(), { type: 'data', streamId: 5, fin: true, data: Buffer.alloc(0) });
  });

  it('skips unknown control frame types', function () {
    const d = new FrameDecoder();
    d.push(Buffer.concat([encodeRawControl(10, 0, Buffer.alloc(20)), encodePing(4)]));
    const frames = decodeAll(d);
    assert.deepEqual(frames[0], { type: 'unknown', frameType: 10, flags: 0, length: 20 });
    assert.deepEqual(frames[1], { type: 'ping', id: 4 });
  });

  it('refuses a wrong version as soon as the header is in', function () {
    const d = new FrameDecoder();
    d.push(encodeRawControl(FrameType.PING, 0, Buffer.alloc(4), 2).subarray(0, 8));
    assertProtocolError(() => d.next(), /version 2 control frame/);
  });

  it('refuses lengths above the limits before buffering the body', function () {
    const d = new FrameDecoder({ maxDataBytes: 1024 });
    d.push(encodeDataHeader(1, 4096, false));
    assertProtocolError(() => d.next(), /4096-byte DATA frame \(limit 1024\)/);
    const c = new FrameDecoder();
    const header = encodeRawControl(FrameType.HEADERS, 0, Buffer.alloc(0));
    header.writeUInt32BE(2 * 1024 * 1024, 4);
    c.push(header);
    assertProtocolError(() => c.next(), /2097152-byte control frame/);
  });

  it('refuses stream id 0 where a stream is required', function () {
    const data = Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0x61]);
    let d = new FrameDecoder();
    d.push(data);
    assertProtocolError(() => d.next(), /DATA frame on stream 0/);
    for (const [type, body] of [
      [FrameType.SYN_STREAM, Buffer.alloc(10)],
      [FrameType.SYN_REPLY, Buffer.alloc(4)],
      [FrameType.RST_STREAM, Buffer.from([0, 0, 0, 0, 0, 0, 0, 5])],
      [FrameType.HEADERS, Buffer.alloc(4)],
    ] as const) {
      d = new FrameDecoder();
      d.push(encodeRawControl(type, 0, body));
      assertProtocolError(() => d.next(), /on stream 0/);
    }
  });

  it('refuses fixed-size frames of the wrong size and malformed SETTINGS', function () {
    for (const [type, len] of [
      [FrameType.RST_STREAM, 4],
      [FrameType.PING, 8],
      [FrameType.GOAWAY, 4],
      [FrameType.WINDOW_UPDATE, 12],
      [FrameType.SYN_STREAM, 6],
    ] as const) {
      const d = new FrameDecoder();
      d.push(encodeRawControl(type, 0, Buffer.alloc(len)));
      assertProtocolError(() => d.next(), new RegExp(`${len}-byte`));
    }
    const d = new FrameDecoder();
    const body = Buffer.alloc(12);
    body.writeUInt32BE(5, 0); // 5 entries announced, 1 present
    d.push(encodeRawControl(FrameType.SETTINGS, 0, body));
    assertProtocolError(() => d.next(), /announcing 5 entries/);
  });

  it('waits on a truncated control frame without throwing', function () {
    const d = new FrameDecoder();
    d.push(encodeSynStream(1, Buffer.alloc(100)).subarray(0, 50));
    assert.equal(d.next(), undefined);
    assert.equal(d.bufferedBytes, 42);
  });

  it('returns what arrived of a truncated DATA frame, then waits for the rest', function () {
    const d = new FrameDecoder();
    d.push(dataFrame(1, Buffer.alloc(100, 7)).subarray(0, 50));
    assert.deepEqual(d.next(), { type: 'data', streamId: 1, fin: false, data: Buffer.alloc(42, 7) });
    assert.equal(d.next(), undefined);
    assert.equal(d.bufferedBytes, 0);
  });

  it('encodes a DATA header alone, for a zero-copy write of the payload', function () {
    assert.deepEqual([...encodeDataHeader(3, 5, true)], [0, 0, 0, 3, 1, 0, 0, 5]);
    assert.throws(() => encodeDataHeader(0, 1, false), RangeError);
    assert.throws(() => encodeDataHeader(1, 1 << 24, false), RangeError);
  });
});
