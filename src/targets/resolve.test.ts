import type { V1Deployment, V1Pod, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { PortForward, PortForwardSpec } from '../api/v1alpha1';
import type { TargetObjects } from './kinds';
import { resolveTarget } from './resolve';
import { objectsOf } from './testing/objects';

function pf(spec: Partial<PortForwardSpec>): PortForward {
  return {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { name: 'pf', namespace: 'ns' },
    spec: { target: {}, ports: [{ port: 80 }], ...spec },
  };
}

interface PodOpts {
  labels?: Record<string, string>;
  ready?: boolean;
  readySince?: string;
  deleting?: boolean;
  ports?: { name?: string; containerPort: number }[];
}

function pod(name: string, o: PodOpts = {}): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'ns',
      uid: `uid-${name}`,
      labels: o.labels ?? { app: 'web' },
      creationTimestamp: new Date('2026-01-01T00:00:00Z'),
      deletionTimestamp: o.deleting ? new Date() : undefined,
    },
    spec: { containers: [{ name: 'c', ports: o.ports ?? [{ name: 'http', containerPort: 8080 }] }] },
    status: {
      phase: 'Running',
      conditions: [
        {
          type: 'Ready',
          status: o.ready === false ? 'False' : 'True',
          lastTransitionTime: new Date(o.readySince ?? '2026-01-01T00:01:00Z'),
        },
      ],
    },
  };
}

function caches(objs: {
  pods?: V1Pod[];
  services?: V1Service[];
  deployments?: V1Deployment[];
  statefulSets?: V1StatefulSet[];
}): TargetObjects {
  return objectsOf({
    Pod: objs.pods,
    Service: objs.services,
    Deployment: objs.deployments,
    StatefulSet: objs.statefulSets,
  });
}

const names = (r: ReturnType<typeof resolveTarget>): string[] =>
  r.ok ? r.pods.map((p) => p.pod.metadata?.name ?? '') : [`${r.reason}`];

describe('resolveTarget across target kinds', function () {
  const svc = (
    ports: V1Service['spec'] extends infer S ? (S extends { ports?: infer P } ? P : never) : never,
    selector?: Record<string, string>,
  ): V1Service => ({
    metadata: { name: 'web', namespace: 'ns' },
    spec: { selector: selector ?? { app: 'web' }, ports },
  });

  it('maps a service port by number to its numeric targetPort', function () {
    const r = resolveTarget(
      pf({ target: { service: 'web' }, ports: [{ port: 80 }] }),
      caches({ pods: [pod('a')], services: [svc([{ port: 80, targetPort: 9376 }])] }),
    );
    assert.ok(r.ok);
    assert.equal(r.pods[0].ports[0].targetPort, 9376);
  });

  it('maps a service port by name to a named targetPort looked up in the pod', function () {
    const r = resolveTarget(
      pf({ target: { service: 'web' }, ports: [{ port: 'web' }] }),
      caches({
        pods: [pod('a', { ports: [{ name: 'http', containerPort: 8081 }] })],
        services: [svc([{ name: 'web', port: 80, targetPort: 'http' }])],
      }),
    );
    assert.ok(r.ok);
    assert.equal(r.pods[0].ports[0].targetPort, 8081);
  });

  it('defaults a service targetPort to its port', function () {
    const r = resolveTarget(
      pf({ target: { service: 'web' }, ports: [{ port: 80 }] }),
      caches({ pods: [pod('a')], services: [svc([{ port: 80 }])] }),
    );
    assert.ok(r.ok);
    assert.equal(r.pods[0].ports[0].targetPort, 80);
  });

  it('fails (stalled) on a port the service lacks, listing the ones it has', function () {
    const r = resolveTarget(
      pf({ target: { service: 'web' }, ports: [{ port: 81 }] }),
      caches({ pods: [pod('a')], services: [svc([{ name: 'http', port: 80 }])] }),
    );
    assert.ok(!r.ok);
    assert.equal(r.reason, 'ServicePortNotFound');
    assert.equal(r.stalled, true);
    assert.match(r.message, /has no TCP port 81 \(it has http=80\)/);
  });

  it('reports a missing service as TargetNotFound (not stalled) and a selector-less one as stalled', function () {
    const missing = resolveTarget(pf({ target: { service: 'web' } }), caches({}));
    assert.ok(!missing.ok && missing.reason === 'TargetNotFound' && !missing.stalled);
    const bare = resolveTarget(
      pf({ target: { service: 'web' } }),
      caches({ services: [svc([{ port: 80 }], {})] }),
    );
    assert.ok(!bare.ok && bare.reason === 'ServiceWithoutSelector' && bare.stalled);
  });

  it("uses a deployment's and a statefulset's selector", function () {
    const pods = [pod('a', { labels: { app: 'web' } }), pod('b', { labels: { app: 'db' } })];
    const dep: V1Deployment = {
      metadata: { name: 'd' },
      spec: { selector: { matchLabels: { app: 'web' } }, template: {} },
    };
    const sts: V1StatefulSet = {
      metadata: { name: 's' },
      spec: {
        selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] },
        template: {},
        serviceName: 's',
      },
    };
    assert.deepEqual(
      names(resolveTarget(pf({ target: { deployment: 'd' } }), caches({ pods, deployments: [dep] }))),
      ['a'],
    );
    assert.deepEqual(
      names(resolveTarget(pf({ target: { statefulSet: 's' } }), caches({ pods, statefulSets: [sts] }))),
      ['b'],
    );
    assert.deepEqual(names(resolveTarget(pf({ target: { deployment: 'gone' } }), caches({ pods }))), [
      'TargetNotFound',
    ]);
  });

  it('chooses only ready pods without a deletionTimestamp, the longest-ready first', function () {
    const pods = [
      pod('young', { readySince: '2026-01-01T00:05:00Z' }),
      pod('old', { readySince: '2026-01-01T00:01:00Z' }),
      pod('leaving', { readySince: '2026-01-01T00:00:30Z', deleting: true }),
      pod('starting', { ready: false }),
    ];
    const r = resolveTarget(pf({ target: { selector: { matchLabels: { app: 'web' } } } }), caches({ pods }));
    assert.deepEqual(names(r), ['old', 'young']);
  });

  it('says PodNotReady when matching pods exist but none is ready, and PodNotFound when none match', function () {
    const notReady = resolveTarget(
      pf({ target: { selector: { matchLabels: { app: 'web' } } } }),
      caches({ pods: [pod('a', { ready: false })] }),
    );
    assert.ok(!notReady.ok && notReady.reason === 'PodNotReady' && !notReady.stalled);
    const none = resolveTarget(
      pf({ target: { selector: { matchLabels: { app: 'x' } } } }),
      caches({ pods: [pod('a')] }),
    );
    assert.ok(!none.ok && none.reason === 'PodNotFound');
    assert.match(none.ok ? '' : none.message, /^no pod matches the selector app=x$/);
  });

  it('skips ready pods that lack a named port, and fails (stalled) when none has it', function () {
    const pods = [
      pod('a', { ports: [{ name: 'other', containerPort: 1 }] }),
      pod('b', { readySince: '2026-01-01T00:09:00Z' }),
    ];
    const r = resolveTarget(
      pf({ target: { selector: { matchLabels: { app: 'web' } } }, ports: [{ port: 'http' }] }),
      caches({ pods }),
    );
    assert.deepEqual(names(r), ['b']);
    const none = resolveTarget(pf({ target: { pod: 'a' }, ports: [{ port: 'http' }] }), caches({ pods }));
    assert.ok(!none.ok && none.reason === 'NamedPortNotFound' && none.stalled);
  });
});
