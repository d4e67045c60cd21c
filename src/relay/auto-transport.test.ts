// AutoTransport's fallback order against fake transports: which failures move it on to the next
// transport (a refused upgrade) and which do not (RBAC, a missing pod, a node-side error).
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { AutoTransport, transportUnsupported } from './auto-transport';
import { PortForwardError } from './errors';
import { silentLogger } from './logger';
import type { RelayTunnel, StreamTarget, Transport } from './transport';

describe('AutoTransport', function () {
  const target: StreamTarget = { namespace: 'demo', pod: 'web', port: 80 };
  const tunnel = { done: Promise.resolve(undefined), bufferedBytes: () => 0, abort: () => undefined };

  function fakeTransport(
    name: 'spdy' | 'spdy-websocket' | 'websocket',
    fail?: PortForwardError,
  ): Transport & { calls: number } {
    const t = {
      name,
      calls: 0,
      connect: (): Promise<RelayTunnel> => {
        t.calls++;
        return fail ? Promise.reject(fail) : Promise.resolve({ ...tunnel, transport: name });
      },
      close: () => Promise.resolve(),
    };
    return t;
  }

  it('falls back on a refused upgrade and remembers the transport that worked', async function () {
    const spdy = fakeTransport('spdy', new PortForwardError('protocol', 'upgrade refused', { status: 400 }));
    const ws = fakeTransport('websocket');
    const auto = new AutoTransport([spdy, ws], silentLogger);
    const socket = new net.Socket();
    for (let i = 0; i < 3; i++) {
      const t = await auto.connect(
        socket,
        target,
        { onSent: () => 0, onReceived: () => 0, logger: silentLogger },
        new AbortController().signal,
      );
      assert.equal(t.transport, 'websocket');
    }
    assert.equal(spdy.calls, 1);
    assert.equal(ws.calls, 3);
    assert.equal(auto.current(), 'websocket');
    socket.destroy();
  });

  it('does not fall back on RBAC, a missing pod or a node-side error', async function () {
    for (const err of [
      new PortForwardError('forbidden', 'no', { status: 403 }),
      new PortForwardError('notFound', 'no', { status: 404 }),
      new PortForwardError('nodeError', 'socat not found'),
    ]) {
      assert.equal(transportUnsupported(err), false, err.message);
      const spdy = fakeTransport('spdy', err);
      const ws = fakeTransport('websocket');
      const auto = new AutoTransport([spdy, ws], silentLogger);
      await assert.rejects(
        auto.connect(
          new net.Socket(),
          target,
          { onSent: () => 0, onReceived: () => 0, logger: silentLogger },
          new AbortController().signal,
        ),
        (e) => e === err,
      );
      assert.equal(ws.calls, 0);
    }
  });
});
