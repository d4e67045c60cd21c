import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { startTcpServer, TcpServer } from '../../../test/support/net';
import { WebSocketDialer, portForwardPath, TunnelTarget } from './v4-dialer';
import { PortForwardError } from '../errors';
import {
  FakePortForwardServer,
  kubeConfigFor,
  startFakePortForwardServer,
} from '../testing/fake-portforward-server';

async function dialError(dialer: WebSocketDialer, target: TunnelTarget): Promise<PortForwardError> {
  const err = await dialer.dial(target, new AbortController().signal).then(
    (ws) => {
      ws.terminate();
      throw new Error('the dial succeeded');
    },
    (e: unknown) => e,
  );
  assert.ok(err instanceof PortForwardError, `a PortForwardError, not ${String(err)}`);
  return err;
}

describe('relay WebSocket dialer', function () {
  let fake: FakePortForwardServer;
  const seen: string[] = [];

  before(async function () {
    fake = await startFakePortForwardServer({
      route: (ns, pod, port) => {
        seen.push(`${ns}/${pod}:${port}`);
        if (pod === 'secret')
          return { kind: 'status', code: 403, message: 'pods "secret" is forbidden: User "x"' };
        if (pod === 'gone') return { kind: 'status', code: 404, message: 'pods "gone" not found' };
        return { kind: 'idle' };
      },
    });
  });

  after(async function () {
    await fake.close();
  });

  it('builds the pods/portforward path with one port, escaping names', function () {
    assert.equal(
      portForwardPath({ namespace: 'demo', pod: 'a b', port: 8080 }),
      '/api/v1/namespaces/demo/pods/a%20b/portforward?ports=8080',
    );
  });

  it('opens a WebSocket with the v4.channel.k8s.io subprotocol and the kubeconfig bearer token', async function () {
    const ws = await new WebSocketDialer(fake.kubeConfig()).dial(
      { namespace: 'demo', pod: 'web', port: 8080 },
      new AbortController().signal,
    );
    try {
      assert.equal(ws.protocol, 'v4.channel.k8s.io');
      assert.equal(seen.at(-1), 'demo/web:8080');
    } finally {
      ws.terminate();
    }
  });

  it('maps 403 to forbidden with the API server message', async function () {
    const err = await dialError(new WebSocketDialer(fake.kubeConfig()), {
      namespace: 'demo',
      pod: 'secret',
      port: 1,
    });
    assert.equal(err.kind, 'forbidden');
    assert.equal(err.status, 403);
    assert.match(err.message, /HTTP 403: pods "secret" is forbidden/);
  });

  it('maps 404 to notFound', async function () {
    const err = await dialError(new WebSocketDialer(fake.kubeConfig()), {
      namespace: 'demo',
      pod: 'gone',
      port: 1,
    });
    assert.equal(err.kind, 'notFound');
    assert.match(err.message, /pods "gone" not found/);
  });

  it('maps 401 (a bad token) to forbidden', async function () {
    const err = await dialError(new WebSocketDialer(fake.kubeConfig('wrong')), {
      namespace: 'd',
      pod: 'p',
      port: 1,
    });
    assert.equal(err.kind, 'forbidden');
    assert.equal(err.status, 401);
  });

  it('maps a refused TCP connection to refused', async function () {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const err = await dialError(new WebSocketDialer(kubeConfigFor(`http://127.0.0.1:${port}`, 't')), {
      namespace: 'd',
      pod: 'p',
      port: 1,
    });
    assert.equal(err.kind, 'refused');
    assert.ok(err.cause, 'keeps the cause');
  });

  describe('against a server that never answers', function () {
    let silent: TcpServer;
    before(async function () {
      silent = await startTcpServer(() => undefined);
    });
    after(async function () {
      await silent.close();
    });

    it('maps a handshake timeout to timeout', async function () {
      const dialer = new WebSocketDialer(kubeConfigFor(`http://127.0.0.1:${silent.port}`, 't'), {
        handshakeTimeoutMs: 200,
      });
      const err = await dialError(dialer, { namespace: 'd', pod: 'p', port: 1 });
      assert.equal(err.kind, 'timeout');
    });

    it('gives up at once when the signal aborts', async function () {
      const dialer = new WebSocketDialer(kubeConfigFor(`http://127.0.0.1:${silent.port}`, 't'));
      const ac = new AbortController();
      const dialing = dialer.dial({ namespace: 'd', pod: 'p', port: 1 }, ac.signal);
      setImmediate(() => ac.abort());
      await assert.rejects(dialing, /went away before the tunnel opened/);
    });
  });
});
