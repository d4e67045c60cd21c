// Watch events to keys: which PortForwards a change of each kind of object brings back to the queue.
import * as assert from 'node:assert/strict';
import type { PortForward } from '../api/v1alpha1';
import { allKeys, keysForClients, keysForPortForward, keysForTarget, MapperContext } from './mappers';

function pf(ns: string, name: string, spec: Partial<PortForward['spec']>): PortForward {
  return {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { namespace: ns, name },
    spec: { target: {}, ports: [{ port: 8080 }], ...spec },
  };
}

const PFS = [
  pf('demo', 'by-pod', { target: { pod: 'web-0' } }),
  pf('demo', 'by-service', { target: { service: 'web' } }),
  pf('demo', 'by-deployment', { target: { deployment: 'web' } }),
  pf('demo', 'by-sts', { target: { statefulSet: 'db' } }),
  pf('demo', 'other-class', { target: { pod: 'web-0' }, className: 'alice' }),
  pf('other', 'by-pod', { target: { pod: 'web-0' } }),
  pf('demo', 'open', {
    target: { pod: 'web-0' },
    listenAddress: '0.0.0.0',
    allowedClients: [{ namespaceSelector: { matchLabels: { team: 'friends' } } }],
  }),
];

const ctx: MapperContext = {
  portForwards: (ns) => PFS.filter((p) => ns === undefined || p.metadata.namespace === ns),
  serves: (p) => (p.spec.className ?? '') === '',
  listenAddress: '127.0.0.1',
  namespaceLabels: (ns): Record<string, string> => (ns === 'friends' ? { team: 'friends' } : {}),
};

const obj = (ns: string, name: string): { metadata: { namespace: string; name: string } } => ({
  metadata: { namespace: ns, name },
});

describe('watch event -> keys', function () {
  it('a pod: the forwards of its namespace targeting it by name, and every non-pod target there', function () {
    assert.deepEqual(keysForTarget(ctx, 'Pod', obj('demo', 'web-0')).sort(), [
      'demo/by-deployment',
      'demo/by-pod',
      'demo/by-service',
      'demo/by-sts',
      'demo/open',
    ]);
    assert.deepEqual(
      keysForTarget(ctx, 'Pod', obj('demo', 'web-1')).sort(),
      ['demo/by-deployment', 'demo/by-service', 'demo/by-sts'],
      'a pod target names one pod',
    );
  });

  it('a service, deployment or statefulset: the forwards targeting it by name, in its namespace', function () {
    assert.deepEqual(keysForTarget(ctx, 'Service', obj('demo', 'web')), ['demo/by-service']);
    assert.deepEqual(keysForTarget(ctx, 'Deployment', obj('demo', 'web')), ['demo/by-deployment']);
    assert.deepEqual(keysForTarget(ctx, 'StatefulSet', obj('demo', 'db')), ['demo/by-sts']);
    assert.deepEqual(keysForTarget(ctx, 'Service', obj('other', 'web')), []);
  });

  it("never another class's forward", function () {
    assert.ok(!keysForTarget(ctx, 'Pod', obj('demo', 'web-0')).includes('demo/other-class' as never));
    assert.ok(!allKeys(ctx).includes('demo/other-class' as never));
  });

  it('a PortForward: its own key when served, or while this operator still holds it', function () {
    const moved = PFS[4];
    assert.deepEqual(
      keysForPortForward(ctx, PFS[0], () => false),
      ['demo/by-pod'],
    );
    assert.deepEqual(
      keysForPortForward(ctx, moved, () => false),
      [],
    );
    assert.deepEqual(
      keysForPortForward(ctx, moved, () => true),
      ['demo/other-class'],
    );
  });

  it('clients: the forwards whose client rule looks at the namespaces that changed', function () {
    // Every forward's default rule (its own namespace) looks at its own namespace; loopback ones have
    // no rule at all.
    assert.deepEqual(keysForClients(ctx, ['friends']), ['demo/open']);
    assert.deepEqual(keysForClients(ctx, ['nobody']), []);
    assert.deepEqual(keysForClients(ctx, 'all'), ['demo/open'], 'a namespace label changed: selectors');
  });
});
