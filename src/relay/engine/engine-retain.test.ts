// What the engine tells its transport to keep ready (Transport.retain): every session's target pods,
// once each, however many sessions share a pod, on every ensure and stop.
import * as assert from 'node:assert/strict';
import type * as net from 'node:net';
import type { RelayTunnel, RetainedPod, Transport } from '../transport';
import type { PodTarget, RelayEngine } from '../types';
import { createRelayEngine } from './engine';

class Recording implements Transport {
  readonly name = 'spdy' as const;
  readonly retains: string[][] = [];
  connect(_socket: net.Socket): Promise<RelayTunnel> {
    return Promise.reject(new Error('no connection in this test'));
  }
  retain(pods: readonly RetainedPod[]): void {
    this.retains.push(pods.map((p) => `${p.cluster?.id ?? ''}/${p.name}/${p.uid ?? ''}`).sort());
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const pod = (name: string, uid = '1', cluster?: string): PodTarget => ({
  namespace: 'ns',
  name,
  uid,
  ...(cluster ? { cluster: { id: cluster, server: 'https://remote' } } : {}),
});

describe('relay engine: the pods it retains on its transport', function () {
  let t: Recording;
  let engine: RelayEngine;
  const ensure = (key: string, targets: PodTarget[]): Promise<unknown> =>
    engine.ensure(key, { listeners: [], targets });

  beforeEach(function () {
    t = new Recording();
    engine = createRelayEngine({ transport: t });
  });

  afterEach(async function () {
    await engine.close();
  });

  it("retains the union of every session's targets, each pod once, told only when it changes", async function () {
    await ensure('a', [pod('p'), pod('q')]);
    assert.deepEqual(t.retains, [['/p/1', '/q/1']]);
    await ensure('b', [pod('q')]);
    await ensure('a', [pod('q'), pod('p')]); // the same pods in another order
    await ensure('a', [pod('q'), pod('p')]); // an ensure that changes nothing (a connection ended)
    assert.equal(t.retains.length, 1, 'the set did not change: the transport is not told again');
    await ensure('b', [pod('q'), pod('r', '1', 'ns/kc#1')]);
    assert.deepEqual(t.retains, [
      ['/p/1', '/q/1'],
      ['/p/1', '/q/1', 'ns/kc#1/r/1'],
    ]);
  });

  it('keeps a pod while any session targets it, and lets it go with the last', async function () {
    await ensure('a', [pod('p')]);
    await ensure('b', [pod('p')]);
    await engine.stop('a');
    assert.deepEqual(t.retains.at(-1), ['/p/1'], 'b still targets p');
    await ensure('b', []);
    assert.deepEqual(t.retains.at(-1), []);
    await ensure('c', [pod('q')]);
    await engine.stop('b');
    assert.deepEqual(t.retains.at(-1), ['/q/1'], 'c still targets q, and nothing else is left');
  });

  it('tells a re-created pod (a new uid) apart from the one it replaced', async function () {
    await ensure('a', [pod('p', '1')]);
    await ensure('a', [pod('p', '2')]);
    assert.deepEqual(t.retains.at(-1), ['/p/2']);
  });
});
