// Uploads through the SPDY transport once their reads go direct (direct-reads.ts, the tunnel's
// goDirect), against the project's fake spdystream server: every byte in order through both
// directions' backpressure, through a peer that stops reading for a while, and with session frames
// smaller than a read.
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { connect, echoRoundTrip, readAll, startTcpServer, TcpServer } from '../../../test/support/net';
import { waitFor } from '../../../test/support/wait';
import { directReadCounts } from '../direct-reads';
import { createRelayEngine } from '../engine/engine';
import { silentLogger } from '../logger';
import { FakeSpdyServer, startFakeSpdyServer } from '../testing/fake-spdy-server';
import type { RelayEngine } from '../types';
import { dialSpdy } from './dial';
import { SpdyTransport } from './spdy-transport';

const ECHO = 8080;
const COUNT = 7070; // replies with the byte count once the client half-closed

describe('relay SPDY transport: uploads read direct', function () {
  let echo: TcpServer;
  let counter: TcpServer;
  let fake: FakeSpdyServer;
  let transport: SpdyTransport;
  let engine: RelayEngine | undefined;

  /** An engine on a SPDY transport to `fake`; the local ports of the echo and the counter. */
  async function start(maxFrameBytes?: number): Promise<{ echo: number; count: number }> {
    transport = new SpdyTransport({
      name: 'spdy',
      logger: silentLogger,
      dial: (pod) =>
        dialSpdy(
          { namespace: pod.namespace, pod: pod.name },
          { server: fake.url, applyOptions: fake.applyOptions(), session: { maxFrameBytes } },
        ),
    });
    engine = createRelayEngine({ transport });
    const [e, c] = await engine.ensure('demo/pf', {
      listeners: [
        { id: 'echo', address: '127.0.0.1', localPort: 0, remotePort: ECHO },
        { id: 'count', address: '127.0.0.1', localPort: 0, remotePort: COUNT },
      ],
      targets: [{ namespace: 'demo', name: 'web' }],
    });
    return { echo: e.localPort, count: c.localPort };
  }

  before(async function () {
    echo = await startTcpServer((s) => s.pipe(s));
    counter = await startTcpServer((s) => {
      let n = 0;
      s.on('data', (c: Buffer) => (n += c.length));
      s.on('end', () => s.end(`got ${n}`));
    });
    fake = await startFakeSpdyServer({
      portMap: (_pod, port) => (port === ECHO ? echo.port : port === COUNT ? counter.port : undefined),
    });
  });
  afterEach(async function () {
    await engine?.close();
    engine = undefined;
  });
  after(async function () {
    await fake.close();
    await Promise.all([echo.close(), counter.close()]);
  });

  it('relays bulk uploads byte for byte once their reads go direct, also through a stall', async function () {
    const ports = await start();
    const before = directReadCounts().sockets;
    // Past DIRECT_AFTER_BYTES the client's reads are framed in place: an echo of 8 MiB comes back
    // exactly, through both directions' backpressure.
    const sent = crypto.randomBytes(8 * 1024 * 1024);
    const got = await echoRoundTrip(ports.echo, sent);
    assert.ok(got.equals(sent), `${got.length} bytes came back, not the ${sent.length} sent`);
    assert.equal(directReadCounts().sockets, before + 1, 'the upload never switched to direct reads');
    // The session's peer stops reading for a while: the upload waits for it (the client is paused,
    // not buffered without bound) and every byte arrives once it reads again.
    const s = await connect(ports.count);
    s.write(Buffer.alloc(2 * 1024 * 1024, 2));
    await waitFor('the bytes to reach the pod side', () =>
      fake
        .received()
        .flat()
        .some((f) => f.type === 'data'),
    );
    fake.stall(true);
    s.write(Buffer.alloc(24 * 1024 * 1024, 3)); // more than loopback's socket buffers hold
    await waitFor('the session to stop taking writes', () =>
      transport.sessions().some((x) => x.queuedBytes > 0),
    );
    assert.ok((engine!.stats('demo/pf')?.bufferedBytes ?? 0) > 0, 'the bytes read direct are not counted');
    fake.stall(false);
    s.end();
    assert.equal((await readAll(s)).data.toString(), `got ${26 * 1024 * 1024}`);
  });

  it('relays bulk uploads byte for byte when its sessions write frames smaller than a read', async function () {
    // The split path. What its fix closed (a buffer released while its pieces still sat in a queue
    // below the socket's high-water mark, and read into again) needs a write in flight at that
    // moment: this covers the path, it does not force that timing.
    const ports = await start(10_000);
    const sent = crypto.randomBytes(8 * 1024 * 1024);
    const got = await echoRoundTrip(ports.echo, sent);
    assert.ok(got.equals(sent), `${got.length} bytes came back, not the ${sent.length} sent`);
  });
});
