// The project's SPDY/3.1 client against the real kube-apiserver with kwok as the kubelet (moby/spdystream
// on the node side): a direct `Upgrade: SPDY/3.1` session and a `SPDY/3.1+portforward.k8s.io`
// WebSocket session, pipelined connections, and node-side errors confined to their connection.
import * as assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { PortForwardError } from '../../src/relay/errors';
import { dialSpdy, dialSpdyOverWebSocket, SpdyDialOptions } from '../../src/relay/spdy/dial';
import { openPortForward } from '../../src/relay/spdy/portforward';
import type { SpdySession } from '../../src/relay/spdy/spdy-session';
import { TestCluster } from '../../tools/testenv/cluster';
import {
  EchoServer,
  randomPayload,
  sha256,
  startEchoServer,
  startTcpServer,
  TcpServer,
} from '../support/net';
import { waitFor } from '../support/wait';

const MiB = 1024 * 1024;

function readUntil(stream: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      n += c.length;
      if (n >= bytes) {
        stream.off('data', onData);
        stream.off('error', reject);
        resolve(Buffer.concat(chunks));
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

describe('SPDY/3.1 client against the real API server and kwok', function () {
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let closer: TcpServer;
  let opts: SpdyDialOptions;
  const sessions: SpdySession[] = [];

  async function session(kind: 'spdy' | 'websocket', pod = 'echo'): Promise<SpdySession> {
    const dial = kind === 'spdy' ? dialSpdy : dialSpdyOverWebSocket;
    const s = await dial({ namespace: ns, pod }, opts);
    sessions.push(s);
    return s;
  }

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('spdy');
    echo = await startEchoServer();
    // Says "bye" and closes: a pod-side close.
    closer = await startTcpServer((s) => s.end('bye'));
    await cluster.createPod(ns, 'echo', [
      { port: 8080, targetPort: echo.port },
      { port: 7070, targetPort: closer.port },
      { port: 5432, command: ['socat-not-installed', '-', 'TCP4:127.0.0.1:5432'] },
    ]);
    opts = {
      server: cluster.kc.getCurrentCluster()!.server,
      applyOptions: (o) => cluster.kc.applyToHTTPSOptions(o),
    };
  });

  afterEach(function () {
    for (const s of sessions.splice(0)) s.destroy();
  });

  after(async function () {
    await echo?.close();
    await closer?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  for (const kind of ['spdy', 'websocket'] as const) {
    it(`relays 4 MiB intact over ${kind === 'spdy' ? 'a direct SPDY upgrade' : 'SPDY over WebSocket'}`, async function () {
      const s = await session(kind);
      const pf = openPortForward(s, 8080, 0);
      const payload = randomPayload(4 * MiB);
      pf.data.write(payload);
      const back = await readUntil(pf.data, payload.length);
      assert.equal(sha256(back), sha256(payload));
      assert.ok((await s.ping()) >= 0, 'PING answered through the API server');
      pf.close();
      assert.equal(await pf.error, undefined);
    });
  }

  it('sends the SYN_STREAMs and the first bytes in one go; spdystream keeps data sent before its SYN_REPLY', async function () {
    const s = await session('spdy');
    await s.ping(); // the session is up and idle
    for (let i = 1; i <= 20; i++) {
      const pf = openPortForward(s, 8080, i);
      let replied = false;
      pf.data.once('reply', () => (replied = true));
      pf.data.write(`hello ${i}`); // same tick as the SYN_STREAMs: before any SYN_REPLY could come
      assert.equal(replied, false);
      assert.equal((await readUntil(pf.data, `hello ${i}`.length)).toString(), `hello ${i}`);
      pf.close();
    }
  });

  it('carries two concurrent connections on one session', async function () {
    const s = await session('spdy');
    const a = openPortForward(s, 8080, 'a');
    const b = openPortForward(s, 8080, 'b');
    const pa = randomPayload(2 * MiB);
    const pb = randomPayload(2 * MiB);
    a.data.write(pa);
    b.data.write(pb);
    const [ra, rb] = await Promise.all([readUntil(a.data, pa.length), readUntil(b.data, pb.length)]);
    assert.equal(sha256(ra), sha256(pa));
    assert.equal(sha256(rb), sha256(pb));
    assert.equal(echo.accepted() >= 2, true);
  });

  for (const kind of ['spdy', 'websocket'] as const) {
    it(`a node-side error ends only its connection (${kind})`, async function () {
      const s = await session(kind);
      const good = openPortForward(s, 8080, 1);
      good.data.write('before');
      await readUntil(good.data, 6);
      const bad = openPortForward(s, 5432, 2);
      const err = await bad.error;
      assert.ok(err instanceof PortForwardError, `a PortForwardError, not ${String(err)}`);
      assert.equal(err.kind, 'nodeError');
      assert.match(
        err.message,
        /^error forwarding port 5432 to pod echo\/[a-z0-9-]+, uid .*socat-not-installed.*executable file not found/,
      );
      await waitFor('the failed data stream to close', () => bad.data.closed, 10_000);
      assert.equal(bad.data.errored, err);
      good.data.write('after');
      assert.equal((await readUntil(good.data, 5)).toString(), 'after');
      const third = openPortForward(s, 8080, 3);
      third.data.write('new');
      assert.equal((await readUntil(third.data, 3)).toString(), 'new');
      assert.equal(s.stats().closed, false);
    });
  }

  it('carries a pod-side close once the client half-closes (SPDY carries FIN both ways)', async function () {
    const s = await session('spdy');
    const pf = openPortForward(s, 7070, 1);
    assert.equal((await readUntil(pf.data, 3)).toString(), 'bye');
    const ended = new Promise((r) => pf.data.once('end', r));
    pf.data.end(); // kwok ends a forward only when both directions ended
    await ended;
    assert.equal(await pf.error, undefined);
    await waitFor('both streams to go', () => s.stats().openStreams === 0, 10_000);
  });
});
