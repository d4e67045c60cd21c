// The reconciler and spec.kubeConfig: the target resolves in the cluster the ClusterDirectory gives
// (never in the local caches), the relay is told that cluster for every pod, status shows the remote
// server, a cluster failure is Degraded with its reason, and the cluster is released when the forward
// goes or stops naming a kubeConfig.
import type { V1Pod } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import type { PortForward } from '../api/v1alpha1';
import type { ClusterDirectory, ClusterView } from './clusters';
import { reconcilerHarness } from './testing/harness';
import { objectsOf } from '../targets/testing/objects';

function pod(name: string, namespace: string): V1Pod {
  return {
    metadata: { name, namespace, uid: `uid-${name}` },
    spec: { containers: [{ name: 'c', ports: [{ containerPort: 8080 }] }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

const CLUSTER = { id: 'ns/staging-kubeconfig/#1', server: 'https://staging:6443' };

function setup(view: () => ClusterView) {
  const asked: string[] = [];
  const released: string[] = [];
  const clusters: ClusterDirectory = {
    clusterOf: (key, pf) => {
      asked.push(`${key}:${pf.spec.target.namespace ?? ''}`);
      return view();
    },
    release: (key) => released.push(key),
  };
  // The local cluster has a pod of the same name: it must not be chosen.
  const t = reconcilerHarness({ pods: [pod('db', 'ns')], clusters });
  const apply = (spec: Partial<PortForward['spec']>): void =>
    t.apply('db', { target: { pod: 'db' }, ...spec });
  return { ...t, asked, released, apply };
}

describe('Reconciler: targets in a remote cluster (spec.kubeConfig)', function () {
  const kubeConfig = { secretRef: { name: 'staging-kubeconfig' } };

  it('resolves in the remote cluster, in target.namespace, and sends the relay that cluster with every pod', async function () {
    const remote = objectsOf({
      Pod: [{ ...pod('db', 'orders'), metadata: { name: 'db', namespace: 'orders', uid: 'uid-remote' } }],
    });
    const t = setup(() => ({
      ok: true,
      objects: remote,
      cluster: CLUSTER,
      remote: { server: 'https://staging:6443', namespace: 'orders' },
    }));
    t.apply({ kubeConfig, target: { pod: 'db', namespace: 'orders' } });
    await t.rec.reconcile('ns/db');
    assert.deepEqual(t.asked, ['ns/db:orders']);
    const spec = t.relay.specs.get('ns/db')!;
    assert.deepEqual(
      spec.targets.map((x) => [x.namespace, x.name, x.uid, x.cluster]),
      [['orders', 'db', 'uid-remote', CLUSTER]],
    );
    const last = t.writes.at(-1)!;
    assert.equal(last.phase, 'Ready');
    assert.deepEqual(last.remote, { server: 'https://staging:6443', namespace: 'orders' });
    assert.equal(last.message, 'forwarding 1 port to pod orders/db');
  });

  it('is Degraded with the cluster failure as reason, listeners bound and connections held', async function () {
    const t = setup(() => ({
      ok: false,
      reason: 'KubeConfigNotFound',
      message: 'Secret ns/staging-kubeconfig does not exist',
    }));
    t.apply({ kubeConfig });
    await t.rec.reconcile('ns/db');
    const last = t.writes.at(-1)!;
    assert.equal(last.phase, 'Degraded');
    const ready = last.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'KubeConfigNotFound');
    assert.match(ready.message, /Secret ns\/staging-kubeconfig does not exist/);
    assert.equal(last.remote, undefined);
    const spec = t.relay.specs.get('ns/db')!;
    assert.deepEqual(spec.targets, [], 'not the local pod of the same name');
    assert.equal(spec.listeners.length, 1);
    assert.equal(spec.holdMs, 30_000);
  });

  it('releases the cluster when the forward is deleted or stops naming a kubeConfig (then resolves locally)', async function () {
    const t = setup(() => ({ ok: false, reason: 'RemotePending', message: 'reading' }));
    t.apply({ kubeConfig });
    await t.rec.reconcile('ns/db');
    assert.deepEqual(t.released, []);
    t.apply({});
    await t.rec.reconcile('ns/db');
    assert.deepEqual(t.released, ['ns/db']);
    assert.deepEqual(
      t.relay.specs.get('ns/db')!.targets.map((x) => [x.namespace, x.name, x.cluster]),
      [['ns', 'db', undefined]],
    );
    t.pfs.delete('ns/db');
    await t.rec.reconcile('ns/db');
    assert.deepEqual(t.released, ['ns/db', 'ns/db']);
  });
});
