// The SPDY transport through the relay engine, against the project's fake spdystream server: sessions
// dialed before they are needed, connections isolated from a session that stalls, half-close carried,
// and node-side errors ending one connection (AutoTransport's fallback: ../auto-transport.test.ts).
import * as assert from 'node:assert/strict';
import type * as net from 'node:net';
import { connect, readAll, startTcpServer, TcpServer } from '../../../test/support/net';
import { waitFor } from '../../../test/support/wait';
import { createRelayEngine } from '../engine/engine';
import { silentLogger } from '../logger';
import { dialSpdy } from './dial';
import { SpdyTransport, SpdyTransportOptions } from './spdy-transport';
import { FakeSpdyServer, startFakeSpdyServer } from '../testing/fake-spdy-server';
import type { RelayEngine, SessionSpec } from '../types';

const ECHO = 8080;
const SINK = 9090; // a target that accepts and never reads
const REPLY_ON_END = 7070; // replies with the byte count once the client half-closed

/** A SPDY transport whose sessions are dialed to `fake` (`onDial` is told of each dial). */
function transportTo(
  fake: FakeSpdyServer,
  o: Partial<SpdyTransportOptions> = {},
  onDial: () => void = () => undefined,
): SpdyTransport {
  return new SpdyTransport({
    name: 'spdy',
    logger: silentLogger,
    dial: (pod) => {
      onDial();
      return dialSpdy(
        { namespace: pod.namespace, pod: pod.name },
        { server: fake.url, applyOptions: fake.applyOptions() },
      );
    },
    ...o,
  });
}

describe('relay SPDY transport (sessions before they are needed) on the fake spdystream server', function () {
  let echo: TcpServer;
  let sink: TcpServer;
  let counter: TcpServer;
  let fake: FakeSpdyServer;
  let transport: SpdyTransport;
  let engine: RelayEngine;
  let dials = 0;

  function spec(targets = [{ namespace: 'demo', name: 'web' }]): SessionSpec {
    return {
      listeners: [
        { id: 'echo', address: '127.0.0.1', localPort: 0, remotePort: ECHO },
        { id: 'sink', address: '127.0.0.1', localPort: 0, remotePort: SINK },
        { id: 'count', address: '127.0.0.1', localPort: 0, remotePort: REPLY_ON_END },
        { id: 'nothing', address: '127.0.0.1', localPort: 0, remotePort: 1234 },
      ],
      targets,
    };
  }

  async function start(o: Partial<SpdyTransportOptions> = {}): Promise<Record<string, number>> {
    transport = transportTo(fake, o, () => dials++);
    engine = createRelayEngine({ transport });
    const states = await engine.ensure('demo/pf', spec());
    return Object.fromEntries(states.map((s) => [s.id, s.localPort]));
  }

  async function echoOnce(port: number, payload: Buffer): Promise<Buffer> {
    const s = await connect(port);
    s.end(payload);
    return (await readAll(s)).data;
  }

  before(async function () {
    echo = await startTcpServer((s) => s.pipe(s));
    sink = await startTcpServer((s) => s.pause());
    counter = await startTcpServer((s) => {
      let n = 0;
      s.on('data', (c: Buffer) => (n += c.length));
      s.on('end', () => s.end(`got ${n}`));
    });
    fake = await startFakeSpdyServer({
      portMap: (_pod, port) =>
        port === ECHO
          ? echo.port
          : port === SINK
            ? sink.port
            : port === REPLY_ON_END
              ? counter.port
              : undefined,
    });
  });
  beforeEach(function () {
    dials = 0;
  });
  afterEach(async function () {
    await engine?.close();
  });
  after(async function () {
    await fake.close();
    await Promise.all([echo.close(), sink.close(), counter.close()]);
  });

  it('dials a session for a retained pod before any client connects, and reuses it', async function () {
    const ports = await start();
    await waitFor('the warm session', () => dials === 1);
    for (let i = 0; i < 5; i++) {
      const got = await echoOnce(ports.echo, Buffer.from(`hello ${i}`));
      assert.equal(got.toString(), `hello ${i}`);
    }
    // One warm session, and one more dialed while the first carried a connection: never one per connection.
    assert.ok(dials <= 2, `${dials} dials for 5 sequential connections`);
    assert.equal(engine.stats('demo/pf')?.transport, 'spdy');
  });

  it('passes the client half-close to the pod and closes at once when both sides are done', async function () {
    const ports = await start();
    const s = await connect(ports.count);
    s.write(Buffer.alloc(100_000, 1));
    s.end(); // FIN: the pod side reads end-of-file and answers
    const got = await readAll(s);
    assert.equal(got.data.toString(), 'got 100000');
    await waitFor(
      'the connection to stop counting as active',
      () => engine.stats('demo/pf')?.active === 0,
      1_000,
    );
  });

  it('ends only the failing connection on a node-side error; others on the same session go on', async function () {
    const ports = await start();
    const held = await connect(ports.echo);
    held.write('before');
    await waitFor('the held echo', () => held.readableLength >= 6);
    const failed = await connect(ports.nothing);
    const r = await readAll(failed);
    assert.equal(r.data.length, 0);
    await waitFor('the failure in stats', () => (engine.stats('demo/pf')?.failed ?? 0) === 1);
    assert.equal(engine.stats('demo/pf')?.lastError?.kind, 'nodeError');
    held.end('after');
    const rest = await readAll(held);
    assert.equal(rest.data.toString(), 'beforeafter');
  });

  it('sends new connections to another session while one stalls, and keeps the stalled ones open', async function () {
    this.timeout(20_000);
    const ports = await start();
    const stalled = await connect(ports.sink);
    stalled.on('error', () => undefined);
    // The target never reads: the fake, like spdystream, stops reading that session's socket.
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 64; i++) stalled.write(chunk);
    // Kernel buffers along the way take megabytes; then the session's socket queues in the process.
    await waitFor(
      'the stalled session to take no new connections',
      () => transport.sessions().some((x) => x.streams === 1 && !x.takesNew),
      10_000,
    );
    for (let i = 0; i < 5; i++) {
      const got = await echoOnce(ports.echo, Buffer.from(`fresh ${i}`));
      assert.equal(got.toString(), `fresh ${i}`);
    }
    assert.equal(stalled.destroyed, false, 'the stalled connection is still open');
    assert.equal(engine.stats('demo/pf')?.failed, 0);
    stalled.destroy();
  });

  /**
   * Two uploads to `to` on sessions of their own, then an echo while the third session is being
   * dialed (its dial held until the echo waits for it), and that dial then succeeding or failing.
   */
  async function echoBehindUploads(to: 'sink' | 'count', thirdDial: 'succeeds' | 'fails'): Promise<string> {
    let opened = 0;
    let open3!: () => void;
    const gate = new Promise<void>((resolve, reject) => {
      open3 = () => (thirdDial === 'succeeds' ? resolve() : reject(new Error('dial refused (test)')));
    });
    gate.catch(() => undefined);
    transport = new SpdyTransport({
      name: 'spdy',
      logger: silentLogger,
      dial: async (pod, signal) => {
        if (++opened > 2)
          await Promise.race([gate, new Promise((r) => signal.addEventListener('abort', r, { once: true }))]);
        return dialSpdy(
          { namespace: pod.namespace, pod: pod.name },
          { server: fake.url, applyOptions: fake.applyOptions() },
        );
      },
    });
    engine = createRelayEngine({ transport });
    const ports = Object.fromEntries(
      (await engine.ensure('demo/pf', spec())).map((st) => [st.id, st.localPort]),
    );
    const open = () => transport.sessions().filter((x) => x.open);
    const uploads: net.Socket[] = [];
    try {
      await waitFor('the warm session', () => open().length === 1);
      uploads.push(await connect(ports[to]));
      await waitFor('a second warm session', () => open().length === 2);
      uploads.push(await connect(ports[to]));
      await waitFor('both uploads on sessions of their own', () => open().every((x) => x.streams === 1));
      const chunk = Buffer.alloc(1024 * 1024);
      for (const s of uploads) {
        s.on('error', () => undefined);
        for (let i = 0; i < 1024; i++) s.write(chunk);
      }
      await waitFor('the uploads to fill their sessions', () =>
        transport.sessions().every((x) => x.lastFullAt > 0 || !x.open),
      );
      const echoed = echoOnce(ports.echo, Buffer.from('echoed'));
      await waitFor('the echo to wait for the session being dialed', () =>
        transport.sessions().some((x) => !x.open && x.streams === 1),
      );
      open3();
      const got = (await echoed).toString();
      assert.equal(engine.stats('demo/pf')?.failed, 0);
      return got;
    } finally {
      open3();
      for (const s of uploads) s.destroy();
    }
  }

  it('does not place a new connection behind an upload under way; it waits for the session being dialed', async function () {
    this.timeout(20_000);
    // The targets never read: their sessions stall once the kernel buffers on the way are full, and an
    // echo behind either upload would never come back.
    assert.equal(await echoBehindUploads('sink', 'succeeds'), 'echoed');
  });

  it('shares a session carrying an upload when the dial it waited for fails, rather than fail', async function () {
    this.timeout(20_000);
    assert.equal(await echoBehindUploads('count', 'fails'), 'echoed');
  });

  it('keeps the connections of a session going away (GOAWAY) and serves new ones on another', async function () {
    const ports = await start();
    const held = await connect(ports.echo);
    held.write('x');
    await waitFor('the echo', () => held.readableLength >= 1);
    const before = dials;
    fake.goAway();
    const got = await echoOnce(ports.echo, Buffer.from('after goaway'));
    assert.equal(got.toString(), 'after goaway');
    held.end('y');
    assert.equal((await readAll(held)).data.toString(), 'xy');
    assert.ok(dials > before, 'a new session was dialed');
  });

  it('closes the sessions of a pod no longer targeted', async function () {
    await start();
    await waitFor('the warm session', () => transport.sessions().some((x) => x.open));
    const closedOne = new Promise<void>((resolve) => {
      // The fake's own count would include sessions of earlier tests whose peers it stopped reading.
      const session = transport['pods'].get('demo/web')?.sessions.values().next().value?.session;
      session?.once('close', () => resolve());
    });
    await engine.ensure('demo/pf', spec([]));
    await closedOne;
    assert.deepEqual(transport.sessions(), []);
  });
});

describe('relay SPDY transport on a node that copies into reset streams (as kwok does)', function () {
  const SOURCE = 8081; // a pod program that writes until its connection is closed
  let source: TcpServer;
  let echo: TcpServer;
  let fake: FakeSpdyServer;
  let engine: RelayEngine | undefined;

  before(async function () {
    const chunk = Buffer.alloc(64 * 1024, 7);
    source = await startTcpServer((s) => {
      const pump = (): void => {
        while (!s.destroyed && s.write(chunk));
      };
      s.on('drain', pump);
      pump();
    });
    echo = await startTcpServer((s) => s.pipe(s));
    fake = await startFakeSpdyServer({
      copyAfterReset: true,
      portMap: (_pod, port) => (port === SOURCE ? source.port : port === ECHO ? echo.port : undefined),
    });
  });
  afterEach(async function () {
    await engine?.close();
  });
  after(async function () {
    await fake.close();
    await Promise.all([source.close(), echo.close()]);
  });

  it('retires a session that keeps carrying a reset stream, which stops the pod side; others go on', async function () {
    const transport = transportTo(fake);
    engine = createRelayEngine({ transport });
    const states = await engine.ensure('demo/pf', {
      listeners: [
        { id: 'source', address: '127.0.0.1', localPort: 0, remotePort: SOURCE },
        { id: 'echo', address: '127.0.0.1', localPort: 0, remotePort: ECHO },
      ],
      targets: [{ namespace: 'demo', name: 'web' }],
    });
    const port = (id: string): number => states.find((x) => x.id === id)!.localPort;
    // A client that leaves in the middle of a download it will never finish.
    const s = await connect(port('source'));
    let got = 0;
    await new Promise<void>((resolve) =>
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= 4 * 1024 * 1024) resolve();
      }),
    );
    s.destroy();
    // The node keeps copying the pod's output into the reset stream until the session closes.
    await waitFor('the pod side of the abandoned download to be closed', () => source.open() === 0, 10_000);
    const echoed = await connect(port('echo'));
    echoed.end('still served');
    assert.equal((await readAll(echoed)).data.toString(), 'still served');
    assert.ok(
      transport.sessions().every((x) => x.takesNew || !x.open),
      JSON.stringify(transport.sessions()),
    );
  });
});

describe('relay SPDY transport on a node that ends the data stream before it says why (as containerd does)', function () {
  let fake: FakeSpdyServer;
  let engine: RelayEngine | undefined;
  let dataFin: (() => void) | undefined;

  before(async function () {
    fake = await startFakeSpdyServer({
      portMap: () => undefined, // nothing listens: every dial fails
      dataFinFirst: { textDelayMs: 200, onDataFin: () => dataFin?.() },
    });
  });
  afterEach(async function () {
    await engine?.close();
  });
  after(async function () {
    await fake.close();
  });

  it("reports the node's error even when the client's FIN comes between the data stream's FIN and the text", async function () {
    // containerd 2.x closes the data stream when its dial fails, then writes why on the error stream;
    // a client that half-closes in between must not turn the failure into a clean end (seen on the
    // real node: no lastError, 1 connection in 30).
    const transport = transportTo(fake);
    const relay = createRelayEngine({ transport });
    engine = relay;
    const [state] = await relay.ensure('demo/pf', {
      listeners: [{ id: 'closed', address: '127.0.0.1', localPort: 0, remotePort: 9999 }],
      targets: [{ namespace: 'demo', name: 'web' }],
    });
    for (let i = 1; i <= 3; i++) {
      const s = await connect(state.localPort);
      dataFin = () => setImmediate(() => s.end());
      s.write('hello');
      const got = await readAll(s);
      assert.equal(got.data.length, 0);
      await waitFor(`failure ${i} in stats`, () => relay.stats('demo/pf')?.failed === i, 2_000);
      const last = relay.stats('demo/pf')?.lastError;
      assert.equal(last?.kind, 'nodeError');
      assert.match(last?.message ?? '', /error forwarding port 9999/);
    }
  });
});
