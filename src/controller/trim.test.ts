import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import type { PortForward, Target } from '../api/v1alpha1';
import { PodAddressIndex, podClientAddresses } from '../reconcile/pod-addresses';
import { TARGET_KIND_LIST, type ResourceKind } from '../targets/kinds';
import { isPodReady, resolveTarget } from '../targets/resolve';
import { objectsOf } from '../targets/testing/objects';
import { TRIMS } from './trim';

// Objects as a busy cluster's API server sends them: managedFields, annotations, templates, env.
const managedFields = Array.from({ length: 4 }, (_, i) => ({
  manager: `manager-${i}`,
  operation: 'Update',
  apiVersion: 'v1',
  time: '2026-12-01T00:00:00Z',
  fieldsType: 'FieldsV1',
  fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } }, 'f:spec': { 'f:containers': {} } },
}));
const bigAnnotations = { 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(4096) };

function meta(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    namespace: 'ns',
    uid: `uid-${name}`,
    resourceVersion: '42',
    generation: 3,
    creationTimestamp: '2026-12-01T00:00:00Z',
    labels: { app: 'web', tier: 'front' },
    annotations: bigAnnotations,
    managedFields,
    ownerReferences: [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: 'rs', controller: true },
    ],
    ...extra,
  };
}

const template = {
  metadata: { labels: { app: 'web' } },
  spec: {
    containers: [
      {
        name: 'app',
        image: 'example/app:1',
        env: Array.from({ length: 30 }, (_, i) => ({ name: `VAR_${i}`, value: 'v'.repeat(64) })),
        ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
      },
    ],
  },
};

function fullPod(name: string, readySince: string, extra: Record<string, unknown> = {}): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: meta(name, extra),
    spec: {
      nodeName: 'node-1',
      serviceAccountName: 'default',
      volumes: [{ name: 'tok', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } }],
      containers: [
        {
          ...template.spec.containers[0],
          readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
          resources: { requests: { cpu: '100m' } },
        },
        {
          name: 'sidecar',
          image: 'example/sidecar:1',
          ports: [
            { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
            { name: 'dns', containerPort: 53, protocol: 'UDP' },
          ],
        },
      ],
    },
    status: {
      phase: 'Running',
      hostIP: '10.0.0.1',
      podIP: `10.1.0.${name.length}`,
      podIPs: [{ ip: `10.1.0.${name.length}` }, { ip: `fd00::${name.length}` }],
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: '2026-12-01T00:00:00Z' },
        { type: 'Ready', status: 'True', lastTransitionTime: readySince, lastProbeTime: null },
      ],
      containerStatuses: [
        { name: 'app', ready: true, restartCount: 0, image: 'example/app:1', imageID: 'sha' },
      ],
    },
  } as KubernetesObject;
}

const FULL: Record<ResourceKind, KubernetesObject[]> = {
  Pod: [
    fullPod('web-a', '2026-12-01T00:01:00Z'),
    fullPod('web-b', '2026-12-01T00:00:30Z'),
    fullPod('web-gone', '2026-12-01T00:00:10Z', { deletionTimestamp: '2026-12-02T00:00:00Z' }),
  ],
  Service: [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta('web'),
      spec: {
        selector: { app: 'web' },
        clusterIP: '10.96.0.10',
        type: 'ClusterIP',
        ports: [
          { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
          { name: 'metrics', port: 9000, targetPort: 9090, protocol: 'TCP' },
        ],
      },
      status: { loadBalancer: {} },
    } as KubernetesObject,
  ],
  Deployment: [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta('web'),
      spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template },
      status: { replicas: 2, readyReplicas: 2 },
    } as KubernetesObject,
  ],
  StatefulSet: [
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: meta('web'),
      spec: {
        serviceName: 'web',
        selector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['front'] }] },
        template,
      },
      status: { replicas: 2 },
    } as KubernetesObject,
  ],
};

const TARGETS: Record<keyof Target, Target> = {
  pod: { pod: 'web-a' },
  service: { service: 'web' },
  deployment: { deployment: 'web' },
  statefulSet: { statefulSet: 'web' },
  selector: { selector: { matchLabels: { tier: 'front' } } },
};

function portForward(target: Target): PortForward {
  return {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { name: 'pf', namespace: 'ns' },
    spec: { target, ports: [{ port: 'http' }, { port: target.service ? 9000 : 9090 }] },
  };
}

type Path = (string | number)[];

/** `obj` behind proxies that record the path of every property read, at any depth. */
function recording<T extends object>(obj: T, reads: Path[], path: Path = []): T {
  return new Proxy(obj, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof key === 'symbol' || typeof value === 'function') return value;
      const p = [...path, Array.isArray(target) && /^\d+$/.test(key) ? Number(key) : key];
      reads.push(p);
      return value !== null && typeof value === 'object' ? recording(value, reads, p) : value;
    },
  });
}

function at(obj: unknown, path: Path): unknown {
  let v: unknown = obj;
  for (const k of path) v = v == null ? undefined : (v as Record<string | number, unknown>)[k];
  return v;
}

/** Every read path: the same primitive on both sides, or an object (array of the same length) on both. */
function assertSameReads(reads: Path[], full: unknown, trimmed: unknown, what: string): void {
  for (const path of reads) {
    const a = at(full, path);
    const b = at(trimmed, path);
    const where = `${what}: ${path.join('.')}`;
    if (a !== null && typeof a === 'object') {
      assert.equal(typeof b, 'object', `${where} is lost by trimming`);
      if (Array.isArray(a)) assert.equal((b as unknown[]).length, a.length, `${where} changed length`);
    } else {
      assert.deepEqual(b, a, `${where} differs after trimming`);
    }
  }
}

describe('watch cache trimming (trim.ts)', () => {
  const trimmed = Object.fromEntries(
    Object.entries(FULL).map(([k, objs]) => [
      k,
      objs.map((o) => TRIMS[k as ResourceKind](structuredClone(o))),
    ]),
  ) as Record<ResourceKind, KubernetesObject[]>;

  for (const kind of TARGET_KIND_LIST) {
    it(`loses no field that resolving a ${kind.field} target reads, and resolves it the same`, () => {
      const target = TARGETS[kind.field];
      const reads: Path[] = [];
      // Each object records its reads under its own kind and index, so paths stay comparable.
      const proxied: Partial<Record<ResourceKind, KubernetesObject[]>> = {};
      for (const [k, objs] of Object.entries(FULL) as [ResourceKind, KubernetesObject[]][])
        proxied[k] = objs.map((o, i) => recording(structuredClone(o), reads, [k, i]));
      const pf = portForward(target);
      const full = resolveTarget(pf, objectsOf(proxied));
      if (!full.ok) assert.fail(`the ${kind.field} target does not resolve on full objects: ${full.message}`);
      // What the reconciler and the planner read of a chosen pod, and what the caches index.
      for (const r of full.pods) {
        void r.pod.metadata?.name;
        void r.pod.metadata?.uid;
        isPodReady(r.pod);
      }
      for (const p of proxied.Pod ?? []) new PodAddressIndex().update('ns', p.metadata!.name!, p);
      assert.ok(reads.length > 10, 'reads were recorded');
      assertSameReads(reads, FULL, trimmed, kind.field);

      const after = resolveTarget(pf, objectsOf(trimmed));
      assert.ok(after.ok);
      assert.deepEqual(
        after.pods.map((r) => [r.pod.metadata?.name, r.ports]),
        full.pods.map((r) => [r.pod.metadata?.name, r.ports]),
      );
    });
  }

  it('keeps what the cache needs and a pod address index reads, drops the bulk', () => {
    for (const [kind, objs] of Object.entries(trimmed)) {
      for (const [i, o] of objs.entries()) {
        const full = FULL[kind as ResourceKind][i];
        for (const f of ['name', 'namespace', 'uid', 'resourceVersion', 'labels'] as const)
          assert.deepEqual(o.metadata?.[f], full.metadata?.[f], `${kind} ${f}`);
        assert.equal(o.metadata?.managedFields, undefined, `${kind} managedFields`);
        assert.equal(o.metadata?.annotations, undefined, `${kind} annotations`);
        assert.ok(
          JSON.stringify(o).length * 4 < JSON.stringify(full).length,
          `${kind} is at least 4x smaller`,
        );
      }
    }
    const pod = trimmed.Pod[0] as V1Pod;
    assert.deepEqual(podClientAddresses(pod), podClientAddresses(FULL.Pod[0] as V1Pod));
    assert.equal(
      pod.spec?.containers[1].ports?.[1].protocol,
      'UDP',
      'a UDP port stays UDP (never forwarded)',
    );
  });

  it('keeps a PortForward whole but for its managedFields', () => {
    const rest = { name: 'pf', namespace: 'ns', annotations: { a: 'b' }, generation: 2 };
    const pf = {
      ...portForward(TARGETS.pod),
      metadata: { ...rest, managedFields },
      status: { phase: 'Ready', observedGeneration: 2 },
    } as unknown as KubernetesObject;
    const t = TRIMS.PortForward(structuredClone(pf));
    assert.deepEqual(t, { ...pf, metadata: rest });
  });

  it('keeps a Namespace its name and labels', () => {
    const ns = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: meta('team'),
      spec: { finalizers: ['kubernetes'] },
    };
    const t = TRIMS.Namespace(structuredClone(ns));
    assert.deepEqual(t.metadata?.labels, ns.metadata.labels);
    assert.equal((t as { spec?: unknown }).spec, undefined);
  });
});
