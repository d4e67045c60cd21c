import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import { startTcpServer, TcpServer } from '../../../test/support/net';
import { waitFor, waitStable } from '../../../test/support/wait';
import { PortForwardError } from '../errors';
import { startFakeSpdyServer, FakeSpdyServer } from '../testing/fake-spdy-server';
import { dialSpdy, dialSpdyOverWebSocket } from './dial';
import {
  encodeDataHeader,
  encodePing,
  encodeRawControl,
  encodeRstStream,
  encodeSynReply,
  FrameType,
  RstStatus,
} from './frames';
import { FrameDecoder } from './decoder';
import { HeaderCompressor } from './headers';
import { openPortForward } from './portforward';
import { SpdySession, SpdySessionOptions } from './spdy-session';
import { StreamResetError } from './stream';

const ECHO_PORT = 8080;

function readUntil(stream: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      n += c.length;
      if (n >= bytes) {
        stream.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

function sessionClosed(s: SpdySession): Promise<PortForwardError | undefined> {
  return new Promise((resolve) => s.once('close', resolve));
}

/** A session whose peer is a raw socket the test writes frames on. */
async function rawPair(
  options: SpdySessionOptions = {},
): Promise<{ session: SpdySession; peer: net.Socket; close: () => void }> {
  let peer!: net.Socket;
  const server = net.createServer((s) => (peer = s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  await waitFor('the peer socket', () => peer !== undefined);
  peer.on('error', () => undefined);
  return {
    session: new SpdySession(client, options),
    peer,
    close: () => (peer.destroy(), server.close()),
  };
}

describe('SPDY session against the fake spdystream server', function () {
  let echo: TcpServer;
  let fake: FakeSpdyServer;
  const sessions: SpdySession[] = [];

  async function dial(ws = false): Promise<SpdySession> {
    const dialer = ws ? dialSpdyOverWebSocket : dialSpdy;
    const s = await dialer(
      { namespace: 'test', pod: 'echo' },
      { server: fake.url, applyOptions: fake.applyOptions() },
    );
    sessions.push(s);
    return s;
  }

  before(async function () {
    echo = await startTcpServer((s) => s.pipe(s));
    fake = await startFakeSpdyServer({
      portMap: (_pod, port) => (port === ECHO_PORT ? echo.port : undefined),
    });
  });
  afterEach(function () {
    for (const s of sessions.splice(0)) s.destroy();
  });
  after(async function () {
    await fake.close();
    await echo.close();
  });

  for (const ws of [false, true]) {
    it(`relays a round trip over ${ws ? 'SPDY over WebSocket' : 'a direct SPDY upgrade'}`, async function () {
      const session = await dial(ws);
      const pf = openPortForward(session, ECHO_PORT, 0);
      const payload = Buffer.alloc(300_000, 7);
      pf.data.write(payload);
      const back = await readUntil(pf.data, payload.length);
      assert.ok(back.equals(payload));
      pf.data.end();
      await new Promise((r) => pf.data.once('end', r).resume()); // the echo's FIN came back
      assert.equal(await pf.error, undefined);
      await waitFor('the stream pair to go', () => session.stats().openStreams === 0);
    });
  }

  it('sends both SYN_STREAMs and the first data in one write, without waiting for SYN_REPLY', async function () {
    const slow = await startFakeSpdyServer({ portMap: () => echo.port, replyDelayMs: 300 });
    const writes: number[] = [];
    const socket = net.connect(Number(new URL(slow.url).port), '127.0.0.1');
    try {
      const session = await dialSpdy(
        { namespace: 'test', pod: 'p' },
        {
          server: slow.url,
          applyOptions: slow.applyOptions(),
        },
      );
      sessions.push(session);
      const sock = (session as unknown as { socket: net.Socket }).socket;
      const orig = sock._writev!.bind(sock);
      sock._writev = (chunks, cb) => {
        writes.push(chunks.length);
        orig(chunks, cb);
      };
      const started = Date.now();
      const pf = openPortForward(session, 80, 1);
      pf.data.write('hello');
      assert.equal(await readUntil(pf.data, 5).then((b) => b.toString()), 'hello');
      assert.ok(Date.now() - started >= 250, 'the reply was late, and the data went anyway');
      assert.equal(writes[0], 5, 'SYN_STREAM, error DATA FIN, SYN_STREAM, DATA header, payload: one writev');
      const log = slow.received()[0];
      const firstData = log.find((f) => f.type === 'data' && f.bytes === 5)!;
      assert.equal(firstData.replied, false, 'the server got the data before it replied');
    } finally {
      socket.destroy();
      await slow.close();
    }
  });

  it('carries two concurrent connections on one session', async function () {
    const session = await dial();
    const a = openPortForward(session, ECHO_PORT, 'a');
    const b = openPortForward(session, ECHO_PORT, 'b');
    a.data.write('A'.repeat(100_000));
    b.data.write('B'.repeat(100_000));
    const [ra, rb] = await Promise.all([readUntil(a.data, 100_000), readUntil(b.data, 100_000)]);
    assert.equal(ra.toString(), 'A'.repeat(100_000));
    assert.equal(rb.toString(), 'B'.repeat(100_000));
    assert.equal(session.stats().openStreams, 4);
  });

  it('ends only the failing connection on a node-side error', async function () {
    const session = await dial();
    const good = openPortForward(session, ECHO_PORT, 1);
    const bad = openPortForward(session, 5432, 2);
    const err = await bad.error;
    assert.ok(err instanceof PortForwardError);
    assert.equal(err.kind, 'nodeError');
    assert.match(
      err.message,
      /^error forwarding port 5432 to pod echo, uid : no forward found for port 5432/,
    );
    await waitFor('the data stream to close', () => bad.data.closed);
    assert.equal(bad.data.errored, err, 'the data stream carries the node error');
    good.data.write('still here');
    assert.equal((await readUntil(good.data, 10)).toString(), 'still here');
    assert.equal(session.stats().closed, false);
  });

  it('measures a PING and answers the server’s', async function () {
    const session = await dial();
    const rtt = await session.ping();
    assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
    await fake.ping(); // resolves only when our session echoed its even-id PING
  });

  it('on GOAWAY refuses new streams and lets open ones finish, then closes', async function () {
    const session = await dial();
    const pf = openPortForward(session, ECHO_PORT, 1);
    pf.data.write('x');
    await readUntil(pf.data, 1);
    const closed = sessionClosed(session);
    fake.goAway();
    await waitFor('the GOAWAY', () => session.stats().draining);
    assert.throws(
      () => openPortForward(session, ECHO_PORT, 2),
      (e: unknown) => (e as PortForwardError).kind === 'refused',
    );
    pf.data.write('y');
    assert.equal((await readUntil(pf.data, 1)).toString(), 'y');
    pf.data.end();
    pf.data.resume();
    assert.equal(await closed, undefined, 'a clean close once the last stream ended');
  });

  it('refuses a bad token with a typed forbidden error', async function () {
    await assert.rejects(
      dialSpdy({ namespace: 'n', pod: 'p' }, { server: fake.url, applyOptions: fake.applyOptions('nope') }),
      (e: unknown) => e instanceof PortForwardError && e.kind === 'forbidden' && e.status === 401,
    );
    await assert.rejects(
      dialSpdyOverWebSocket({ namespace: 'n', pod: 'p' }, { server: fake.url }),
      (e: unknown) => e instanceof PortForwardError && e.kind === 'forbidden',
    );
  });

  it('keeps write callbacks waiting while the server does not read (bounded memory)', async function () {
    const session = await dial();
    const pf = openPortForward(session, ECHO_PORT, 1);
    fake.stall(true);
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024);
    const pump = (): void => {
      do written += chunk.length;
      while (pf.data.write(chunk));
    };
    pf.data.on('drain', pump);
    pump();
    const total = await waitStable('the writer to stall', () => written, 300);
    assert.ok(total < 64 * 1024 * 1024, `${total} bytes accepted before the stall`);
    assert.ok(
      session.stats().queuedBytes <= 1024 * 1024,
      `${session.stats().queuedBytes} queued on the socket`,
    );
    assert.ok(pf.data.writableLength <= 1024 * 1024);
    fake.stall(false);
    pf.data.resume();
    await waitFor('writes to go on', () => written > total, 10_000);
    pf.data.off('drain', pump);
  });
});

describe('SPDY session against a misbehaving peer', function () {
  it('ends with a protocol error on a malformed frame, destroying its streams, without throwing', async function () {
    const { session, peer, close } = await rawPair();
    try {
      const stream = session.openStream({ streamtype: 'data', port: '1' });
      const streamErr = new Promise<Error>((r) => stream.once('error', r));
      const closed = sessionClosed(session);
      peer.write(encodeRawControl(FrameType.PING, 0, Buffer.alloc(4), 2)); // SPDY/2
      const err = await closed;
      assert.equal(err?.kind, 'protocol');
      assert.match(err?.message ?? '', /version 2/);
      assert.equal(await streamErr, err);
      assert.throws(() => session.openStream({}), PortForwardError);
    } finally {
      close();
    }
  });

  it('ends with a protocol error on a bad header block', async function () {
    const { session, peer, close } = await rawPair();
    try {
      session.openStream({ a: 'b' });
      const closed = sessionClosed(session);
      peer.write(encodeSynReply(1, Buffer.from('not zlib at all')));
      assert.equal((await closed)?.kind, 'protocol');
    } finally {
      close();
    }
  });

  it('destroys a stream the peer reset with a StreamResetError; the session goes on', async function () {
    const { session, peer, close } = await rawPair();
    try {
      const s1 = session.openStream({ a: '1' });
      const s3 = session.openStream({ a: '3' });
      const err = new Promise<Error>((r) => s1.once('error', r));
      const replies = new HeaderCompressor();
      peer.write(
        Buffer.concat([
          encodeSynReply(1, replies.compress({})),
          encodeSynReply(3, replies.compress({ x: 'y' })),
          encodeRstStream(1, RstStatus.REFUSED_STREAM),
          encodeDataHeader(3, 2, true),
          Buffer.from('ok'),
        ]),
      );
      const e = await err;
      assert.ok(e instanceof StreamResetError);
      assert.equal(e.code, RstStatus.REFUSED_STREAM);
      assert.equal((await readUntil(s3, 2)).toString(), 'ok');
      await waitFor('the reply headers', () => s3.replyHeaders !== undefined);
      assert.deepEqual(s3.replyHeaders, { x: 'y' });
      assert.equal(session.stats().closed, false);
    } finally {
      close();
    }
  });

  it('ignores SETTINGS, WINDOW_UPDATE and unknown frames; answers even pings', async function () {
    const { session, peer, close } = await rawPair();
    try {
      const got = new FrameDecoder();
      peer.on('data', (c: Buffer) => got.push(c));
      peer.write(
        Buffer.concat([
          encodeRawControl(FrameType.SETTINGS, 0, Buffer.from([0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0])),
          encodeRawControl(FrameType.WINDOW_UPDATE, 0, Buffer.from([0, 0, 0, 0, 0, 0, 1, 0])),
          encodeRawControl(42, 0, Buffer.alloc(3)),
          encodePing(8),
        ]),
      );
      await waitFor('the pong', () => got.bufferedBytes >= 12);
      assert.deepEqual(got.next(), { type: 'ping', id: 8 });
      assert.equal(session.stats().closed, false);
    } finally {
      close();
    }
  });

  it('sends RST_STREAM CANCEL when a stream is destroyed early, and nothing once both sides closed', async function () {
    const { session, peer, close } = await rawPair();
    try {
      const got = new FrameDecoder();
      peer.on('data', (c: Buffer) => got.push(c));
      const s1 = session.openStream({}, { fin: true });
      s1.destroy();
      const s3 = session.openStream({}, { fin: true });
      peer.write(Buffer.concat([encodeDataHeader(3, 0, true)]));
      s3.resume();
      await new Promise((r) => s3.once('close', r));
      await waitFor('frames', () => got.bufferedBytes > 0);
      await new Promise((r) => setTimeout(r, 50));
      const types: string[] = [];
      for (let f = got.next(); f; f = got.next())
        types.push(f.type === 'rstStream' ? `rst:${f.streamId}:${f.status}` : f.type);
      assert.deepEqual(types, ['synStream', `rst:1:${RstStatus.CANCEL}`, 'synStream']);
    } finally {
      close();
    }
  });
  it('drops DATA for a stream it reset, and says once when it keeps coming after the grace', async function () {
    const { session, peer, close } = await rawPair({ orphanGraceMs: 60_000 });
    try {
      const flows: number[] = [];
      session.on('orphanFlow', (id) => flows.push(id));
      const s1 = session.openStream({}, { fin: true });
      s1.destroy(); // RST_STREAM CANCEL: what the server sent meanwhile is in flight
      peer.write(Buffer.concat([encodeDataHeader(1, 3, false), Buffer.from('abc')]));
      await waitFor('the in-flight bytes to be counted', () => session.stats().orphanBytes === 3);
      assert.deepEqual(flows, [], 'within the grace: in flight, not a flow');
      peer.write(Buffer.concat([encodeDataHeader(7, 2, false), Buffer.from('xy')]));
      await waitFor('DATA for a stream it never reset', () => flows.length === 1);
      assert.deepEqual(flows, [7]);
      peer.write(Buffer.concat([encodeDataHeader(7, 2, false), Buffer.from('xy')]));
      await waitFor('the bytes', () => session.stats().orphanBytes === 7);
      assert.deepEqual(flows, [7], 'said once');
      assert.equal(session.stats().closed, false, 'the session goes on: its owner decides');
    } finally {
      close();
    }
  });

  it('takes DATA for a reset stream after the grace as a flow', async function () {
    const { session, peer, close } = await rawPair({ orphanGraceMs: 0 });
    try {
      const flows: number[] = [];
      session.on('orphanFlow', (id) => flows.push(id));
      session.openStream({}, { fin: true }).destroy();
      peer.write(Buffer.concat([encodeDataHeader(1, 1, false), Buffer.from('a')]));
      await waitFor('the flow', () => flows.length === 1);
      assert.deepEqual(flows, [1]);
    } finally {
      close();
    }
  });
});
