// Fuzz of the SPDY/3.1 client (src/relay/spdy/: frames, header blocks, the session and the
// portforward.k8s.io stream pairs on it) with what a server could send: valid frames of every type,
// frames with a wrong version, length or stream id, stream-id misuse (DATA, SYN_REPLY or RST_STREAM
// for streams never opened, even ids, replies twice, a pushed SYN_STREAM), bad header blocks, damaged
// bytes and a truncated end. A decoder may only return frames or raise a typed `protocol` error; a
// session must end (cleanly or with a typed error) once its peer goes away, leave no stream open,
// and throw nothing out of an event handler.
import * as assert from 'node:assert/strict';
import { duplexPair } from 'node:stream';
import { PortForwardError } from '../../src/relay/errors';
import {
  encodeDataHeader,
  encodeGoAway,
  encodeHeaders,
  encodePing,
  encodeRawControl,
  encodeRstStream,
  encodeSettings,
  encodeSynReply,
  encodeSynStream,
  encodeWindowUpdate,
  FrameType,
} from '../../src/relay/spdy/frames';
import { FrameDecoder } from '../../src/relay/spdy/decoder';
import {
  decodeHeaderBlock,
  encodeHeaderBlock,
  HeaderCompressor,
  HeaderDecompressor,
} from '../../src/relay/spdy/headers';
import { openPortForward, PortForwardConnection } from '../../src/relay/spdy/portforward';
import { SpdySession } from '../../src/relay/spdy/spdy-session';
import { fuzzCases, fuzzReport, fuzzSeed, Random } from '../support/fuzz';

function isProtocolError(err: unknown): boolean {
  return err instanceof PortForwardError && err.kind === 'protocol';
}

/** Resolves with `p`'s outcome, or 'hang' after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'hang'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<'hang'>((r) => (timer = setTimeout(() => r('hang'), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** One server frame: valid, misused or malformed. `ids`: the client's stream ids. */
function frame(rnd: Random, ids: number[], headers: HeaderCompressor): Buffer {
  const id = (): number =>
    rnd.bool(0.8) && ids.length ? rnd.pick(ids) : rnd.pick([0, 2, 4, 97, 0x7fffffff, rnd.int(1, 1000)]);
  const block = (): Buffer =>
    rnd.bool(0.9)
      ? headers.compress({ ':status': '200', 'x-n': String(rnd.int(0, 99)) })
      : rnd.pick([rnd.bytes(rnd.int(0, 40)), encodeHeaderBlock({ a: 'b' }), Buffer.alloc(0)]);
  switch (rnd.int(0, 14)) {
    case 0:
    case 1:
    case 2: {
      const data = rnd.bytes(rnd.int(0, 300));
      return Buffer.concat([encodeDataHeader(Math.max(1, id()), data.length, rnd.bool(0.2)), data]);
    }
    case 3:
    case 4:
      return encodeSynReply(Math.max(1, id()), block(), rnd.bool(0.1));
    case 5:
      return encodeHeaders(Math.max(1, id()), block(), rnd.bool(0.1));
    case 6:
      return encodeRstStream(Math.max(1, id()), rnd.int(0, 12));
    case 7:
      return encodePing(rnd.int(0, 20)); // even ids are the server's, odd ones answers nobody asked for
    case 8:
      return encodeSettings([{ id: rnd.int(1, 8), value: rnd.int(0, 1 << 20) }], rnd.bool(0.1));
    case 9:
      return encodeWindowUpdate(rnd.pick([0, ...ids]), rnd.int(0, 1 << 20));
    case 10:
      return encodeSynStream(rnd.pick([2, 4, 6]), block()); // a pushed stream
    case 11:
      return rnd.bool(0.05) ? encodeGoAway(rnd.pick([0, ...ids])) : encodePing(rnd.int(0, 20) * 2);
    case 12: // a control frame of another version, an unknown type, or a fixed-length frame of the wrong length
      return rnd.pick([
        encodeRawControl(FrameType.PING, 0, Buffer.alloc(4), 2),
        encodeRawControl(rnd.int(10, 0xffff), rnd.int(0, 255), rnd.bytes(rnd.int(0, 20))),
        encodeRawControl(
          rnd.pick([FrameType.RST_STREAM, FrameType.PING, FrameType.GOAWAY]),
          0,
          rnd.bytes(rnd.int(0, 12)),
        ),
        encodeRawControl(FrameType.SETTINGS, 0, Buffer.from([0, 0, 0, 9, 0, 0, 0, 1])),
      ]);
    case 13: // a DATA or control header announcing more than the limits
      return Buffer.from([rnd.pick([0x00, 0x80]), 0, 0, 1, 0, 0xff, 0xff, 0xff]);
    default:
      return rnd.bytes(rnd.int(1, 24)); // noise
  }
}

describe('fuzz: SPDY/3.1 frames, header blocks and sessions', function () {
  this.timeout(600_000);

  it('decodes any byte stream, cut anywhere, to frames or a typed protocol error', function () {
    const seed = fuzzSeed();
    const rnd = new Random(seed);
    const cases = fuzzCases(20_000);
    let frames = 0;
    let errors = 0;
    for (let i = 0; i < cases; i++) {
      const headers = new HeaderCompressor();
      const parts: Buffer[] = [];
      for (let n = rnd.int(1, 12); n > 0; n--) {
        const f = frame(rnd, [1, 3, 5], headers);
        parts.push(rnd.bool(0.03) ? rnd.mutate(f) : f);
      }
      const bytes = Buffer.concat(parts);
      const d = new FrameDecoder({ maxControlBytes: 64 * 1024, maxDataBytes: 1 << 20 });
      try {
        for (const c of rnd.chunks(bytes)) {
          d.push(c);
          for (let f = d.next(); f; f = d.next()) frames++;
        }
      } catch (err) {
        assert.ok(isProtocolError(err), `case ${i} (seed ${seed}): ${String(err)}`);
        errors++;
      }
    }
    fuzzReport(
      'SPDY frame decoder',
      cases,
      seed,
      `${frames} frames decoded, ${errors} streams ended in a protocol error`,
    );
  });

  it('decodes any header block to headers or a typed protocol error, in order, never hanging', async function () {
    const seed = fuzzSeed();
    const rnd = new Random(seed);
    const cases = fuzzCases(5_000);
    let bad = 0;
    for (let i = 0; i < cases; i++) {
      const raw = encodeHeaderBlock({ host: 'x', ':path': `/${rnd.int(0, 999)}`, v: ['a', 'b'] });
      try {
        decodeHeaderBlock(rnd.bool(0.7) ? rnd.mutate(raw) : rnd.bytes(rnd.int(0, 64)));
      } catch (err) {
        assert.ok(isProtocolError(err), `case ${i} (seed ${seed}): ${String(err)}`);
      }
      // Compressed: a context that sees good blocks, then a damaged one; every promise settles.
      const z = new HeaderCompressor();
      const d = new HeaderDecompressor(4096);
      const blocks = Array.from({ length: rnd.int(1, 4) }, () => z.compress({ n: String(rnd.int(0, 9)) }));
      const last = blocks.length - 1;
      if (rnd.bool(0.8)) blocks[last] = rnd.bool(0.8) ? rnd.mutate(blocks[last]) : rnd.bytes(rnd.int(0, 32));
      const results = await within(Promise.allSettled(blocks.map((b) => d.decompress(b))), 5_000);
      assert.notEqual(results, 'hang', `case ${i} (seed ${seed}): a header block never settled`);
      for (const r of results as PromiseSettledResult<unknown>[]) {
        if (r.status === 'rejected') {
          bad++;
          assert.ok(isProtocolError(r.reason), `case ${i} (seed ${seed}): ${String(r.reason)}`);
        }
      }
      d.close();
    }
    fuzzReport('SPDY header blocks', cases, seed, `${bad} compressed blocks refused`);
  });

  it('ends a session fed such frames once its peer goes away, with every stream closed and nothing thrown', async function () {
    const seed = fuzzSeed();
    const rnd = new Random(seed);
    const cases = fuzzCases(2_000);
    const escaped: unknown[] = [];
    const onEscape = (err: unknown): void => void escaped.push(err);
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
    let withError = 0;
    try {
      for (let i = 0; i < cases; i++) {
        const [client, server] = duplexPair();
        server.on('data', () => undefined); // the server reads what the client sends
        server.on('error', () => undefined);
        const session = new SpdySession(client, { name: `case ${i}`, maxReceiveControlBytes: 64 * 1024 });
        const closed = new Promise<PortForwardError | undefined>((r) => session.once('close', r));
        const conns: PortForwardConnection[] = [];
        for (let n = rnd.int(1, 4); n > 0; n--) {
          const c = openPortForward(session, rnd.int(1, 65535), n);
          c.data.on('error', () => undefined);
          c.data.on('data', () => undefined);
          if (rnd.bool(0.5)) c.data.write(rnd.bytes(rnd.int(1, 100)));
          conns.push(c);
        }
        const ids = conns.flatMap((_, n) => [2 * n * 2 + 1, 2 * n * 2 + 3]);
        const headers = new HeaderCompressor();
        const parts: Buffer[] = [];
        for (let n = rnd.int(0, 16); n > 0; n--) {
          const f = frame(rnd, ids, headers);
          parts.push(rnd.bool(0.03) ? rnd.mutate(f) : f);
        }
        for (const c of rnd.chunks(Buffer.concat(parts))) server.write(c);
        if (rnd.bool(0.2)) server.write(encodeSynReply(1, Buffer.alloc(3)).subarray(0, rnd.int(1, 10))); // cut short
        // The peer goes away: ends, or vanishes; else the operator closes the session itself.
        const how = rnd.pick(['end', 'destroy', 'close', 'session-destroy'] as const);
        await new Promise((r) => setImmediate(r));
        if (how === 'end') server.end();
        else if (how === 'destroy') server.destroy();
        else if (how === 'close') session.close();
        else session.destroy();
        if (how === 'close') {
          // A clean close waits for open streams: the relay resets them when it gives up on them.
          await new Promise((r) => setImmediate(r));
          for (const c of conns) c.close();
          server.end();
        }
        const err = await within(closed, 5_000);
        assert.notEqual(
          err,
          'hang',
          `case ${i} (seed ${seed}): the session did not end after its peer went (${how})`,
        );
        if (err) {
          withError++;
          assert.ok(err instanceof PortForwardError, `case ${i} (seed ${seed}): ${String(err)}`);
        }
        const verdicts = await within(Promise.all(conns.map((c) => c.error)), 5_000);
        assert.notEqual(
          verdicts,
          'hang',
          `case ${i} (seed ${seed}): a connection's error stream never settled`,
        );
        await new Promise((r) => setImmediate(r));
        for (const c of conns)
          assert.ok(c.data.destroyed, `case ${i} (seed ${seed}): stream ${c.requestId} left open`);
        assert.equal(session.stats().openStreams, 0);
        assert.deepEqual(escaped, [], `case ${i} (seed ${seed}): thrown out of an event handler`);
      }
    } finally {
      process.off('uncaughtException', onEscape);
      process.off('unhandledRejection', onEscape);
    }
    fuzzReport(
      'SPDY session (portforward.k8s.io stream pairs)',
      cases,
      seed,
      `${withError} ended with a typed error, the rest cleanly`,
    );
  });
});
