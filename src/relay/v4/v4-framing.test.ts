import * as assert from 'node:assert/strict';
import { PortForwardError } from '../errors';
import { DATA_CHANNEL, encodeData, ERROR_CHANNEL, PortForwardDecoder } from './v4-framing';

function msg(channel: number, ...parts: (Buffer | number[] | string)[]): Buffer {
  return Buffer.concat([
    Buffer.from([channel]),
    ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))),
  ]);
}

function prefix(port: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(port);
  return b;
}

function assertRaises(fn: () => unknown, kind: string, text: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PortForwardError, `a PortForwardError, not ${String(err)}`);
    assert.equal(err.kind, kind);
    assert.match(err.message, text);
    return true;
  });
}

describe('relay framing (v4.channel.k8s.io)', function () {
  it('encodes client data as a channel-0 message', function () {
    assert.deepEqual(encodeData(Buffer.from('hi')), Buffer.from([DATA_CHANNEL, 0x68, 0x69]));
    assert.deepEqual(encodeData(Buffer.alloc(0)), Buffer.from([0]));
  });

  it('accepts the port prefix on both channels, then yields channel-0 data', function () {
    const d = new PortForwardDecoder(5432);
    assert.equal(d.ready, false);
    assert.equal(d.decode(msg(DATA_CHANNEL, prefix(5432))).length, 0);
    assert.equal(d.ready, false);
    assert.equal(d.decode(msg(ERROR_CHANNEL, prefix(5432))).length, 0);
    assert.equal(d.ready, true);
    assert.deepEqual(d.decode(msg(DATA_CHANNEL, 'hello')), Buffer.from('hello'));
    // Later messages are data even when they look like a port.
    assert.deepEqual(d.decode(msg(DATA_CHANNEL, prefix(5432))), prefix(5432));
  });

  it('reads the prefix as little-endian', function () {
    const d = new PortForwardDecoder(0x1f90); // 8080
    d.decode(msg(DATA_CHANNEL, [0x90, 0x1f]));
    assertRaises(
      () => d.decode(msg(ERROR_CHANNEL, [0x1f, 0x90])),
      'protocol',
      /port 36895 announced on channel 1/,
    );
  });

  it('keeps data that follows the prefix in the same message', function () {
    const d = new PortForwardDecoder(80);
    assert.deepEqual(d.decode(msg(DATA_CHANNEL, prefix(80), 'GET /')), Buffer.from('GET /'));
  });

  it('raises a protocol error when the data channel announces another port', function () {
    const d = new PortForwardDecoder(8080);
    assertRaises(
      () => d.decode(msg(DATA_CHANNEL, prefix(8081))),
      'protocol',
      /port 8081 announced on channel 0; 8080/,
    );
  });

  it('raises a protocol error when the error channel announces another port', function () {
    const d = new PortForwardDecoder(8080);
    d.decode(msg(DATA_CHANNEL, prefix(8080)));
    assertRaises(
      () => d.decode(msg(ERROR_CHANNEL, prefix(9090))),
      'protocol',
      /port 9090 announced on channel 1/,
    );
  });

  it('raises a protocol error for a short prefix, an empty message or an unknown channel', function () {
    assertRaises(
      () => new PortForwardDecoder(80).decode(msg(DATA_CHANNEL, [80])),
      'protocol',
      /1-byte port prefix/,
    );
    assertRaises(() => new PortForwardDecoder(80).decode(Buffer.alloc(0)), 'protocol', /empty message/);
    assertRaises(() => new PortForwardDecoder(80).decode(msg(2, prefix(80))), 'protocol', /channel 2/);
  });

  it('raises error-channel text as a nodeError with the text as message', function () {
    const d = new PortForwardDecoder(5432);
    d.decode(msg(DATA_CHANNEL, prefix(5432)));
    d.decode(msg(ERROR_CHANNEL, prefix(5432)));
    const text =
      'error forwarding port 5432 to pod db, uid 1: exec: "socat": executable file not found in $PATH';
    assertRaises(
      () => d.decode(msg(ERROR_CHANNEL, text)),
      'nodeError',
      /^error forwarding port 5432 .*socat.*\$PATH$/,
    );
  });

  it('raises error text that arrives with the error prefix', function () {
    const d = new PortForwardDecoder(5432);
    assertRaises(() => d.decode(msg(ERROR_CHANNEL, prefix(5432), 'boom')), 'nodeError', /^boom$/);
  });

  it('ignores an empty error-channel message after the prefix', function () {
    const d = new PortForwardDecoder(5432);
    d.decode(msg(ERROR_CHANNEL, prefix(5432)));
    assert.equal(d.decode(msg(ERROR_CHANNEL)).length, 0);
  });

  it('refuses a port outside 1-65535', function () {
    assert.throws(() => new PortForwardDecoder(0), RangeError);
    assert.throws(() => new PortForwardDecoder(65536), RangeError);
  });
});
