import * as assert from 'node:assert/strict';
import type * as net from 'node:net';
import { ClusterTransport } from './cluster-transport';
import type { RelayTunnel, RetainedPod, StreamTarget, Transport } from './transport';
import type { ClusterRef } from './types';

class Recording implements Transport {
  readonly name = 'spdy' as const;
  readonly connects: StreamTarget[] = [];
  readonly retains: string[][] = [];
  closed = false;
  connect(_socket: net.Socket, target: StreamTarget): Promise<RelayTunnel> {
    this.connects.push(target);
    return Promise.reject(new Error('recorded'));
  }
  retain(pods: readonly RetainedPod[]): void {
    this.retains.push(pods.map((p) => p.name));
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

describe('ClusterTransport: one transport per cluster', function () {
  const a: ClusterRef = { id: 'ns/a#1', server: 'https://a' };
  const a2: ClusterRef = { id: 'ns/a#2', server: 'https://a' };

  function setup(): { t: ClusterTransport; local: Recording; made: Map<string, Recording> } {
    const local = new Recording();
    const made = new Map<string, Recording>();
    const t = new ClusterTransport(local, (c) => {
      const r = new Recording();
      made.set(c.id, r);
      return r;
    });
    return { t, local, made };
  }

  const hooks = {
    onSent: () => undefined,
    onReceived: () => undefined,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  };
  const socket = {} as net.Socket;

  it('sends a connection to the transport of its pod cluster, made once per cluster id', async function () {
    const { t, local, made } = setup();
    const signal = new AbortController().signal;
    await assert.rejects(t.connect(socket, { namespace: 'x', pod: 'p', port: 1 }, hooks, signal));
    await assert.rejects(t.connect(socket, { namespace: 'x', pod: 'q', port: 1, cluster: a }, hooks, signal));
    await assert.rejects(t.connect(socket, { namespace: 'x', pod: 'r', port: 1, cluster: a }, hooks, signal));
    assert.deepEqual(
      local.connects.map((c) => c.pod),
      ['p'],
    );
    assert.deepEqual([...made.keys()], ['ns/a#1']);
    assert.deepEqual(
      made.get('ns/a#1')!.connects.map((c) => c.pod),
      ['q', 'r'],
    );
  });

  it("retains each cluster's pods on its own transport; a cluster no longer retained gets none, and stays until close", async function () {
    const { t, local, made } = setup();
    t.retain([
      { namespace: 'x', name: 'p' },
      { namespace: 'x', name: 'q', cluster: a },
    ]);
    assert.deepEqual(local.retains.at(-1), ['p']);
    assert.deepEqual(made.get('ns/a#1')!.retains.at(-1), ['q']);
    // The kubeconfig changed: a new id. The old transport keeps its open connections, takes no new pods.
    t.retain([
      { namespace: 'x', name: 'p' },
      { namespace: 'x', name: 'q', cluster: a2 },
    ]);
    assert.deepEqual(made.get('ns/a#1')!.retains.at(-1), []);
    assert.equal(made.get('ns/a#1')!.closed, false);
    assert.deepEqual(made.get('ns/a#2')!.retains.at(-1), ['q']);
    await t.close();
    assert.ok(local.closed && made.get('ns/a#1')!.closed && made.get('ns/a#2')!.closed);
  });
});
