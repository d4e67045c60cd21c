// The relay end to end on its data path: TCP client -> engine -> WebSocket (real dialer) -> fake
// port-forward server -> a real TCP server standing in for the pod's program.
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import type * as net from 'node:net';
import { closed, connect, readAll, startTcpServer, TcpServer } from '../../../test/support/net';
import { waitFor, waitStable } from '../../../test/support/wait';
import { Rig, startRig } from '../testing/rig';

const MiB = 1024 * 1024;
const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

/** Writes `payload` respecting the socket's backpressure; resolves once it is all handed to the kernel. */
async function writeAll(socket: net.Socket, payload: Buffer, chunk = 64 * 1024): Promise<void> {
  for (let off = 0; off < payload.length; off += chunk) {
    if (!socket.write(payload.subarray(off, off + chunk))) {
      await new Promise((r) => socket.once('drain', r));
    }
  }
}

describe('relay engine data path', function () {
  this.timeout(60_000);
  let rig: Rig;
  let echo: TcpServer;

  beforeEach(async function () {
    rig = await startRig({ halfCloseTimeoutMs: 500 });
    echo = await startTcpServer((s) => s.pipe(s));
    rig.routes.set('echo', { kind: 'tcp', port: echo.port });
  });

  afterEach(async function () {
    await rig.close();
    await echo.close();
  });

  it('relays 32 concurrent connections, each echoing 4 MiB intact', async function () {
    const port = await rig.listen('ns/echo', 'echo', 8080);
    const payloads = Array.from({ length: 32 }, () => crypto.randomBytes(4 * MiB));
    await Promise.all(
      payloads.map(async (payload) => {
        const sock = await connect(port);
        const reading = readAll(sock);
        await writeAll(sock, payload);
        await waitFor('the echo', () => sock.bytesRead >= payload.length, 30_000);
        sock.end();
        const back = await reading;
        assert.equal(back.data.length, payload.length);
        assert.equal(sha(back.data), sha(payload));
      }),
    );
    await waitFor('all connections to close', () => rig.engine.stats('ns/echo')?.active === 0);
    const stats = rig.engine.stats('ns/echo')!;
    assert.equal(stats.total, 32);
    assert.equal(stats.failed, 0);
    assert.equal(stats.bytesSent, 32 * 4 * MiB);
    assert.equal(stats.bytesReceived, 32 * 4 * MiB);
    assert.equal(echo.accepted(), 32);
  });

  it('bounds its memory when the client reads slowly (pauses the WebSocket)', async function () {
    const total = 32 * MiB;
    const blob = crypto.randomBytes(total);
    const firehose = await startTcpServer((s) => void writeAll(s, blob).then(() => s.end()));
    rig.routes.set('firehose', { kind: 'tcp', port: firehose.port });
    try {
      const port = await rig.listen('ns/fh', 'firehose', 9000);
      const sock = await connect(port);
      sock.pause(); // a client that does not read
      let maxBuffered = 0;
      const sample = (): number => {
        const s = rig.engine.stats('ns/fh')!;
        maxBuffered = Math.max(maxBuffered, s.bufferedBytes ?? 0);
        return s.bytesReceived;
      };
      const stalledAt = await waitStable('the relay to stop reading from the pod', sample);
      // Without backpressure the relay would read all 32 MiB into memory.
      assert.ok(stalledAt < total / 2, `relay read ${stalledAt} bytes while the client read none`);
      assert.ok(maxBuffered <= 2 * MiB, `the relay held ${maxBuffered} bytes`);
      const reading = readAll(sock);
      sock.resume();
      const back = await reading;
      assert.equal(back.how, 'end');
      assert.equal(sha(back.data), sha(blob), 'every byte arrives once the client reads');
    } finally {
      await firehose.close();
    }
  });

  it('bounds its memory when the pod reads slowly (pauses the client socket)', async function () {
    // More than the kernel can hold toward a pod that does not read: loopback receive buffers grow
    // up to net.ipv4.tcp_rmem's maximum (32 MiB on the CI machine) while the relay is not involved.
    const total = 64 * MiB;
    const blob = crypto.randomBytes(total);
    const received: Buffer[] = [];
    let podSocket: net.Socket | undefined;
    const sink = await startTcpServer((s) => {
      podSocket = s;
      s.pause(); // a pod that does not read
      s.on('data', (c: Buffer) => received.push(c));
    });
    rig.routes.set('sink', { kind: 'tcp', port: sink.port });
    try {
      const port = await rig.listen('ns/sink', 'sink', 9000);
      const sock = await connect(port);
      void writeAll(sock, blob).catch(() => undefined);
      let maxBuffered = 0;
      const stalledAt = await waitStable('the relay to stop sending to the pod', () => {
        const s = rig.engine.stats('ns/sink')!;
        maxBuffered = Math.max(maxBuffered, s.bufferedBytes ?? 0);
        return s.bytesSent;
      });
      assert.ok(stalledAt < total * 0.75, `relay took ${stalledAt} bytes while the pod read none`);
      assert.ok(maxBuffered <= 2 * MiB, `the relay held ${maxBuffered} bytes`);
      podSocket!.resume();
      await waitFor(
        'the pod to get everything',
        () => received.reduce((n, c) => n + c.length, 0) >= total,
        30_000,
      );
      assert.equal(sha(Buffer.concat(received)), sha(blob));
      sock.destroy();
    } finally {
      await sink.close();
    }
  });

  it('closes the pod side when the client closes', async function () {
    const port = await rig.listen('ns/echo', 'echo', 8080);
    const sock = await connect(port);
    sock.write('ping');
    await waitFor('the pod connection', () => echo.open() === 1);
    sock.destroy();
    await waitFor('the pod connection to close', () => echo.open() === 0);
    await waitFor(
      'the tunnel to close',
      () => rig.fake.open() === 0 && rig.engine.stats('ns/echo')?.active === 0,
    );
    assert.equal(rig.engine.stats('ns/echo')!.failed, 0);
  });

  it('ends the client connection, after the last byte, when the pod side closes', async function () {
    const reply = crypto.randomBytes(3 * MiB);
    const speaker = await startTcpServer((s) => void writeAll(s, reply).then(() => s.end()));
    rig.routes.set('speaker', { kind: 'tcp', port: speaker.port });
    try {
      const port = await rig.listen('ns/sp', 'speaker', 80);
      const back = await readAll(await connect(port));
      assert.equal(back.how, 'end');
      assert.equal(sha(back.data), sha(reply));
      await waitFor('the closed event', () => rig.events.some((e) => e.type === 'connectionClosed'));
      assert.equal(rig.engine.stats('ns/sp')!.failed, 0);
    } finally {
      await speaker.close();
    }
  });

  it('still delivers the reply to a client that half-closed after its request', async function () {
    const request = crypto.randomBytes(MiB);
    const reply = crypto.randomBytes(2 * MiB);
    // The pod cannot see the half-close (v4 has no such signal): it answers a complete request.
    const server = await startTcpServer((s) => {
      let got = 0;
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got === request.length) void writeAll(s, reply).then(() => s.end());
      });
    });
    rig.routes.set('rpc', { kind: 'tcp', port: server.port });
    try {
      const port = await rig.listen('ns/rpc', 'rpc', 80);
      const sock = await connect(port);
      const reading = readAll(sock);
      await writeAll(sock, request);
      sock.end(); // half-close: "that is all I send"
      const back = await reading;
      assert.equal(sha(back.data), sha(reply));
    } finally {
      await server.close();
    }
  });

  it('closes a half-closed tunnel whose pod stays silent after halfCloseTimeoutMs', async function () {
    const port = await rig.listen('ns/echo', 'echo', 8080);
    const sock = await connect(port);
    const reading = readAll(sock);
    sock.end('bye');
    const started = Date.now();
    const back = await reading;
    assert.equal(back.data.toString(), 'bye');
    assert.ok(Date.now() - started >= 400, 'kept open while the pod might still answer');
    await waitFor('the tunnel to close', () => rig.engine.stats('ns/echo')?.active === 0);
  });
});

describe('relay engine tunnel liveness', function () {
  let rig: Rig | undefined;

  afterEach(async function () {
    await rig?.close();
    rig = undefined;
  });

  it('keeps an idle tunnel open across many ping intervals while pongs arrive', async function () {
    // The pong timeout is 13 ping intervals, so that an event loop stalled by a loaded machine (seen:
    // over 120 ms) does not read as a lost pong; the idle window is four pong timeouts, so a tunnel
    // whose pongs did not arrive would be closed within it.
    rig = await startRig({ pingIntervalMs: 30, pongTimeoutMs: 400 });
    const echo = await startTcpServer((s) => s.pipe(s));
    rig.routes.set('echo', { kind: 'tcp', port: echo.port });
    try {
      const sock = await connect(await rig.listen('k', 'echo', 1));
      sock.write('a');
      await waitFor('the first echo', () => sock.bytesRead === 1);
      // Idle for 53 ping intervals: polled, the tunnel must stay up the whole time.
      const until = Date.now() + 1600;
      await waitFor('the idle period', () => {
        assert.equal(rig!.engine.stats('k')!.active, 1, 'the idle tunnel was closed');
        return Date.now() > until;
      });
      sock.write('b');
      await waitFor('the second echo', () => sock.bytesRead === 2);
      sock.destroy();
    } finally {
      await echo.close();
    }
  });

  it('fails a tunnel whose pongs stop arriving, as a timeout', async function () {
    rig = await startRig({ pingIntervalMs: 30, pongTimeoutMs: 120, autoPong: false });
    rig.routes.set('mute', { kind: 'idle' });
    const sock = await connect(await rig.listen('k', 'mute', 1));
    await closed(sock);
    await waitFor('the failure', () => rig!.engine.stats('k')?.failed === 1);
    assert.equal(rig.engine.stats('k')!.lastError?.kind, 'timeout');
    assert.match(rig.engine.stats('k')!.lastError!.message, /no pong/);
  });
});
