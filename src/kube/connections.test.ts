import * as assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { reuseConnections } from './connections';

type Dispatcher = { close(): Promise<void>; closed?: boolean; destroyed?: boolean };
type Create = (cluster: k8s.Cluster | null, o: Record<string, unknown>) => Dispatcher | undefined;

function kubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:6443', caData: Buffer.from('ca').toString('base64') }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

const create = (kc: k8s.KubeConfig): Create =>
  (kc as unknown as { createDispatcher: Create }).createDispatcher.bind(kc);

describe('reuseConnections: one dispatcher per cluster, user and TLS material', function () {
  it('client-node alone builds a new dispatcher per request (why this exists)', function () {
    const kc = kubeConfig();
    const o = { ca: Buffer.from('ca') };
    const a = create(kc)(kc.getCurrentCluster(), o);
    const b = create(kc)(kc.getCurrentCluster(), o);
    assert.ok(a && b);
    assert.notEqual(a, b, 'if client-node caches its dispatcher now, connections.ts can go');
    void a.close();
    void b.close();
  });

  it('returns the same dispatcher while nothing that decides a connection changes', function () {
    const kc = reuseConnections(kubeConfig());
    const cluster = kc.getCurrentCluster();
    const a = create(kc)(cluster, { ca: Buffer.from('ca'), cert: Buffer.from('c1'), key: Buffer.from('k1') });
    const b = create(kc)(cluster, { ca: Buffer.from('ca'), cert: Buffer.from('c1'), key: Buffer.from('k1') });
    assert.ok(a);
    assert.equal(a, b);
    assert.equal(reuseConnections(kc), kc, 'idempotent');
    assert.equal(
      create(kc)(cluster, { ca: Buffer.from('ca'), cert: Buffer.from('c1'), key: Buffer.from('k1') }),
      a,
    );
    void a.close();
  });

  it('builds a new one for a rotated client certificate and closes the one it replaces', async function () {
    const kc = reuseConnections(kubeConfig());
    const cluster = kc.getCurrentCluster();
    const a = create(kc)(cluster, { ca: Buffer.from('ca'), cert: Buffer.from('c1'), key: Buffer.from('k1') });
    const b = create(kc)(cluster, { ca: Buffer.from('ca'), cert: Buffer.from('c2'), key: Buffer.from('k2') });
    assert.ok(a && b);
    assert.notEqual(a, b);
    await new Promise((r) => setImmediate(r));
    assert.equal(a.closed ?? a.destroyed, true, 'the replaced dispatcher is closed');
    assert.notEqual(b.closed, true);
    const c = create(kc)(cluster, {
      ca: Buffer.from('ca'),
      cert: Buffer.from('c2'),
      key: Buffer.from('k2'),
      rejectUnauthorized: false,
    });
    assert.notEqual(c, b, 'verification is part of the key');
    void c?.close();
  });

  it('keeps the dispatchers of two clusters apart', function () {
    const kc = reuseConnections(kubeConfig());
    const o = { ca: Buffer.from('ca') };
    const one = create(kc)({ name: 'one', server: 'https://10.0.0.1', skipTLSVerify: false }, o);
    const two = create(kc)({ name: 'two', server: 'https://10.0.0.2', skipTLSVerify: false }, o);
    assert.notEqual(one, two);
    assert.equal(create(kc)({ name: 'one', server: 'https://10.0.0.1', skipTLSVerify: false }, o), one);
    void one?.close();
    void two?.close();
  });
});
