// The relay engine against the real kube-apiserver with kwok as the kubelet: the v4.channel.k8s.io
// WebSocket port-forward end to end, node-side failures, RBAC refusals and missing pods.
//
// Not tested here: a pod-side close reaching the client. kwok v0.8.0 ends a forward only when both of
// its copy directions ended (containerd stops one second after the first), and v4 cannot carry the
// client's EOF, so kwok keeps the WebSocket open after the pod's program closed until the client
// writes again. The relay's handling of it is covered by the unit tests against a fake server.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import type WebSocket from 'ws';
import { WebSocketDialer } from '../../src/relay/v4/v4-dialer';
import { createRelayEngine } from '../../src/relay/engine/engine';
import { PortForwardError } from '../../src/relay/errors';
import type { RelayEngine, RelayEvent } from '../../src/relay/types';
import { TestCluster } from '../../tools/testenv/cluster';
import {
  closed,
  connect,
  echoRoundTrip,
  EchoServer,
  randomPayload,
  sha256,
  startTcpServer,
  TcpServer,
} from '../support/net';
import { poll, waitFor, waitStable } from '../support/wait';

const MiB = 1024 * 1024;

/** The first `count` messages the server sends on a freshly dialed WebSocket. */
function firstMessages(ws: WebSocket, count: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    ws.on('message', (data: Buffer) => {
      got.push(data);
      if (got.length === count) resolve(got);
    });
    ws.once('close', (code) => reject(new Error(`closed (${code}) after ${got.length} messages`)));
    ws.resume(); // the dialer hands the WebSocket over paused
  });
}

async function dialError(
  dialer: WebSocketDialer,
  ns: string,
  pod: string,
  port: number,
): Promise<PortForwardError> {
  const err = await dialer.dial({ namespace: ns, pod, port }, new AbortController().signal).then(
    (ws) => {
      ws.terminate();
      throw new Error(`the dial to ${ns}/${pod} succeeded`);
    },
    (e: unknown) => e,
  );
  assert.ok(err instanceof PortForwardError, `a PortForwardError, not ${String(err)}`);
  return err;
}

describe('relay engine against the real API server and kwok', function () {
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let engine: RelayEngine;
  const events: RelayEvent[] = [];
  let ticker: TcpServer;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('relay');
    echo = await cluster.createEchoPod(ns);
    // kwok runs this command per stream, as the kubelet once ran socat; it does not exist.
    await cluster.createPod(ns, 'no-socat', [
      { port: 5432, command: ['socat-not-installed', '-', 'TCP4:127.0.0.1:5432'] },
    ]);
    // kwok ends a forward only when both directions ended, so it notices a closed stream only when the
    // pod side writes: this pod program writes a byte every 50 ms.
    ticker = await startTcpServer((s) => {
      const timer = setInterval(() => s.write('.'), 50);
      s.on('close', () => clearInterval(timer));
    });
    await cluster.createPod(ns, 'ticker', [{ port: 80, targetPort: ticker.port }]);
    engine = createRelayEngine({ dialer: new WebSocketDialer(cluster.kc) });
    engine.onEvent((e) => events.push(e));
  });

  after(async function () {
    await engine?.close();
    await echo?.close();
    await ticker?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it('negotiates v4.channel.k8s.io and gets the port prefix on both channels', async function () {
    const ws = await new WebSocketDialer(cluster.kc).dial(
      { namespace: ns, pod: 'echo', port: 8080 },
      new AbortController().signal,
    );
    try {
      assert.equal(ws.protocol, 'v4.channel.k8s.io');
      const [data, error] = await firstMessages(ws, 2);
      assert.deepEqual([...data], [0, 8080 & 0xff, 8080 >> 8]);
      assert.deepEqual([...error], [1, 8080 & 0xff, 8080 >> 8]);
    } finally {
      ws.terminate();
      // kwok dials the pod's port for this WebSocket's stream too, at times after it closed: let that
      // settle, so that the next test counts only its own connections to the echo server.
      await waitStable("kwok's dial for this stream", () => echo.accepted());
    }
  });

  it('relays 8 MiB through the API server to the server behind the pod, intact', async function () {
    const [state] = await engine.ensure(`${ns}/echo`, {
      listeners: [{ id: 'http', address: '127.0.0.1', localPort: 0, remotePort: 8080 }],
      targets: [{ namespace: ns, name: 'echo' }],
    });
    assert.equal(state.state, 'bound');
    const before = echo.accepted();
    const payload = randomPayload(8 * MiB);
    const back = await echoRoundTrip(state.localPort, payload);
    assert.equal(back.length, payload.length);
    assert.equal(sha256(back), sha256(payload));
    assert.equal(echo.accepted(), before + 1, 'the bytes went through the test server');
    await poll('the connection to close', 10_000, () =>
      Promise.resolve(engine.stats(`${ns}/echo`)?.active === 0),
    );
    const stats = engine.stats(`${ns}/echo`)!;
    assert.deepEqual(
      [stats.total, stats.failed, stats.bytesSent, stats.bytesReceived],
      [1, 0, 8 * MiB, 8 * MiB],
    );
  });

  it('raises the node-side failure as a typed nodeError with the kwok message', async function () {
    const key = `${ns}/no-socat`;
    const [state] = await engine.ensure(key, {
      listeners: [{ id: 'db', address: '127.0.0.1', localPort: 0, remotePort: 5432 }],
      targets: [{ namespace: ns, name: 'no-socat' }],
    });
    assert.equal(state.state, 'bound');
    const sock = net.connect(state.localPort, '127.0.0.1');
    sock.on('error', () => undefined);
    const closed = new Promise((r) => sock.once('close', r));
    sock.resume();
    await poll('the tunnel to fail', 15_000, () => Promise.resolve(engine.stats(key)?.failed === 1));
    await closed; // the client's connection is closed with the failure
    const last = engine.stats(key)!.lastError!;
    assert.equal(last.kind, 'nodeError');
    assert.match(last.message, /^error forwarding port 5432 to pod /);
    assert.match(last.message, /socat-not-installed/);
    assert.match(last.message, /executable file not found/);
    const event = events.find((e) => e.key === key && e.type !== 'tunnelOpened');
    assert.deepEqual(event, { type: 'tunnelError', key, kind: 'nodeError', message: last.message });
  });

  it('reports 403 forbidden for a token without pods/portforward rights', async function () {
    const token = cluster.mintUserToken('mallory-relay', ['no-rights']);
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cluster.kubeconfigFor(token));
    const err = await dialError(new WebSocketDialer(kc), ns, 'echo', 8080);
    assert.equal(err.kind, 'forbidden');
    assert.equal(err.status, 403);
    assert.match(err.message, /mallory-relay/);
    assert.match(err.message, /pods\/portforward/);
  });

  it('reports 404 notFound for a pod that does not exist', async function () {
    const err = await dialError(new WebSocketDialer(cluster.kc), ns, 'no-such-pod', 8080);
    assert.equal(err.kind, 'notFound');
    assert.equal(err.status, 404);
    assert.match(err.message, /pods "no-such-pod" not found/);
  });

  it('closes the pod side when the client goes away', async function () {
    const [state] = await engine.ensure(`${ns}/ticker`, {
      listeners: [{ id: 'x', address: '127.0.0.1', localPort: 0, remotePort: 80 }],
      targets: [{ namespace: ns, name: 'ticker' }],
    });
    const sock = await connect(state.localPort);
    sock.resume();
    await waitFor('the pod-side connection', () => ticker.open() === 1 && sock.bytesRead > 0, 10_000);
    sock.destroy();
    await waitFor('the tunnel to close', () => engine.stats(`${ns}/ticker`)?.active === 0, 15_000);
    await waitFor('the pod-side connection to close', () => ticker.open() === 0, 15_000);
    assert.equal(engine.stats(`${ns}/ticker`)!.failed, 0);
  });

  it('keeps an idle tunnel open with pings answered through the API server', async function () {
    const pinging = createRelayEngine({
      dialer: new WebSocketDialer(cluster.kc),
      pingIntervalMs: 100,
      pongTimeoutMs: 500,
    });
    try {
      const [state] = await pinging.ensure('idle', {
        listeners: [{ id: 'x', address: '127.0.0.1', localPort: 0, remotePort: 8080 }],
        targets: [{ namespace: ns, name: 'echo' }],
      });
      const sock = await connect(state.localPort);
      sock.write('a');
      await waitFor('the first echo', () => sock.bytesRead === 1, 10_000);
      const until = Date.now() + 2_000; // 20 ping intervals, 4 pong timeouts
      await waitFor('the idle period', () => {
        assert.deepEqual([pinging.stats('idle')!.active, pinging.stats('idle')!.failed], [1, 0]);
        return Date.now() > until;
      });
      sock.write('b');
      await waitFor('the second echo', () => sock.bytesRead === 2, 10_000);
      sock.destroy();
      await closed(sock);
    } finally {
      await pinging.close();
    }
  });
});
