// What the watch caches keep of each object: only the fields the operator reads (issue 24). An object
// as the API server sends it carries managedFields (often the largest part), annotations such as
// kubectl's last-applied-configuration, a workload's whole pod template and every container's env,
// probes and volumes; a cache of thousands of them held all of it for a resolver that reads a
// selector, a few ports and readiness. Like controller-runtime's cache TransformFunc, each object is
// trimmed as it arrives (list and watch), before it is stored, so the full copy is garbage at once.
//
// Guarantees
// - Every field the resolver (targets/), the pod address index, the client rules and the reconciler
//   read is kept, with its value: trim.test.ts resolves every target kind on full and on trimmed
//   objects and checks each field read on the one against the other.
// - What the cache itself needs is kept: name, namespace, uid and resourceVersion (ListWatch compares
//   resourceVersions to tell an update from a replay).
// - PortForwards lose only managedFields: the reconciler reads their whole spec and status.
//
// Caveats
// - A field read from a cached object that is not listed here reads as undefined. A new read of a
//   target's field needs its line here (the test above fails until it has one).
import type * as k8s from '@kubernetes/client-node';
import type { ResourceKind } from '../targets/kinds';

type Obj = k8s.KubernetesObject;
export type Trim = (obj: Obj) => Obj;

/** Defined fields of `o` among `keys`, in a new object; undefined when none is. */
function pick<T extends object, K extends keyof T>(
  o: T | undefined,
  keys: readonly K[],
): Pick<T, K> | undefined {
  if (!o) return undefined;
  const out: Partial<Pick<T, K>> = {};
  let any = false;
  for (const k of keys) {
    if (o[k] !== undefined) {
      out[k] = o[k];
      any = true;
    }
  }
  return any ? (out as Pick<T, K>) : undefined;
}

const METADATA_FIELDS = [
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'labels',
] as const;

function metadata(obj: Obj): k8s.V1ObjectMeta {
  return pick(obj.metadata, METADATA_FIELDS) ?? {};
}

/** Object, apiVersion and kind, trimmed metadata, and `rest` (fields left undefined are left out). */
function shape(obj: Obj, rest: Record<string, unknown>): Obj {
  const out: Record<string, unknown> = {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: metadata(obj),
  };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) out[k] = v;
  return out;
}

function trimPod(obj: Obj): Obj {
  const pod = obj as k8s.V1Pod;
  const spec = pod.spec;
  return shape(obj, {
    spec: spec && {
      ...pick(spec, ['nodeName', 'hostNetwork']),
      containers: (spec.containers ?? []).map((c) => ({
        name: c.name,
        ...(c.ports ? { ports: c.ports.map((p) => pick(p, ['name', 'containerPort', 'protocol'])) } : {}),
      })),
    },
    status: pod.status && {
      ...pick(pod.status, ['phase', 'podIP', 'podIPs']),
      ...(pod.status.conditions
        ? {
            conditions: pod.status.conditions.map((c) => pick(c, ['type', 'status', 'lastTransitionTime'])),
          }
        : {}),
    },
  });
}

function trimService(obj: Obj): Obj {
  const svc = obj as k8s.V1Service;
  return shape(obj, {
    spec: svc.spec && {
      ...pick(svc.spec, ['selector']),
      ...(svc.spec.ports
        ? { ports: svc.spec.ports.map((p) => pick(p, ['name', 'port', 'targetPort', 'protocol'])) }
        : {}),
    },
  });
}

/** Deployments and StatefulSets: their selector; the pod template and status are not read. */
function trimWorkload(obj: Obj): Obj {
  const spec = (obj as k8s.V1Deployment).spec;
  return shape(obj, { spec: spec && pick(spec, ['selector']) });
}

function trimPortForward(obj: Obj): Obj {
  if (!obj.metadata?.managedFields) return obj;
  const { managedFields: _dropped, ...meta } = obj.metadata;
  return { ...obj, metadata: meta };
}

/** The trim for the objects of `kind` in a watch cache. */
export const TRIMS: { readonly [K in 'PortForward' | ResourceKind | 'Namespace']: Trim } = {
  PortForward: trimPortForward,
  Pod: trimPod,
  Service: trimService,
  Deployment: trimWorkload,
  StatefulSet: trimWorkload,
  Namespace: (obj) => shape(obj, {}),
};
