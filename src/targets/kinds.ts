// The target kinds of a PortForward, one entry each: the field of spec.target that names it, the API
// resources it reads (each one watched, and granted in the operator's ClusterRole), which changed
// objects may change what it resolves to (the watch -> key mappers), and how it turns into candidate
// pods and a port mapping. The watch caches, the mappers, the watch routing and the resolver iterate
// over this table; test/unit/targets.test.ts holds it against the CRD, the ClusterRole and docs/api.md.
//
// A kind is resolved in `TargetObjects`: the objects of the cluster to resolve in (today the
// operator's own watch caches; a cluster named by a kubeconfig Secret brings its own).
//
// Adding a kind: an entry in TARGET_KINDS (the compiler asks for one per field of api's `Target`, the
// mirror of the CRD), its resource in RESOURCES when it reads a new one, the CRD field, its docs row.
import * as k8s from '@kubernetes/client-node';
import type { LabelSelector, PortSpec, Target } from '../api/v1alpha1';
import { containerPorts, mapServicePorts, ResolvedPort, servicePorts } from './ports';
import { matchesSelector, selectorString } from './selector';

type List = Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>;

/** An API resource that target kinds read: where it is, how it is listed, and its object type. */
interface Resource<T extends k8s.KubernetesObject> {
  /** The API group ('' for the core group). */
  group: string;
  version: string;
  plural: string;
  /** A lister on `kc`: one namespace, or all when undefined. */
  lister(kc: k8s.KubeConfig): (namespace: string | undefined) => Promise<k8s.KubernetesListObject<T>>;
}

/** Every resource a target kind reads, by kind. Each is watched and needs get, list and watch. */
export const RESOURCES = {
  Pod: {
    group: '',
    version: 'v1',
    plural: 'pods',
    lister: (kc) => {
      const core = kc.makeApiClient(k8s.CoreV1Api);
      return (ns) => (ns ? core.listNamespacedPod({ namespace: ns }) : core.listPodForAllNamespaces());
    },
  } as Resource<k8s.V1Pod>,
  Service: {
    group: '',
    version: 'v1',
    plural: 'services',
    lister: (kc) => {
      const core = kc.makeApiClient(k8s.CoreV1Api);
      return (ns) =>
        ns ? core.listNamespacedService({ namespace: ns }) : core.listServiceForAllNamespaces();
    },
  } as Resource<k8s.V1Service>,
  Deployment: {
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    lister: (kc) => {
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      return (ns) =>
        ns ? apps.listNamespacedDeployment({ namespace: ns }) : apps.listDeploymentForAllNamespaces();
    },
  } as Resource<k8s.V1Deployment>,
  StatefulSet: {
    group: 'apps',
    version: 'v1',
    plural: 'statefulsets',
    lister: (kc) => {
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      return (ns) =>
        ns ? apps.listNamespacedStatefulSet({ namespace: ns }) : apps.listStatefulSetForAllNamespaces();
    },
  } as Resource<k8s.V1StatefulSet>,
};

export type ResourceKind = keyof typeof RESOURCES;
type ObjectOf<K extends ResourceKind> = (typeof RESOURCES)[K] extends Resource<infer T> ? T : never;

/** The path of a resource's collection, cluster-wide or in one namespace. */
export function resourcePath(kind: ResourceKind, namespace?: string): string {
  const r = RESOURCES[kind];
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  return namespace ? `${base}/namespaces/${namespace}/${r.plural}` : `${base}/${r.plural}`;
}

/** A lister of `kind` on `kc`, its objects as plain KubernetesObjects (for a watch cache). */
export function listerOf(kind: ResourceKind, kc: k8s.KubeConfig): (namespace: string | undefined) => List {
  return (RESOURCES[kind] as Resource<k8s.KubernetesObject>).lister(kc);
}

/** The objects of the cluster a target is resolved in: one get and one list per resource kind. */
export interface TargetObjects {
  get(kind: ResourceKind, namespace: string, name: string): k8s.KubernetesObject | undefined;
  list(kind: ResourceKind, namespace: string): ReadonlyArray<k8s.KubernetesObject>;
}

/** A cluster with nothing in it: for planning without looking at targets. */
export const NO_OBJECTS: TargetObjects = { get: () => undefined, list: () => [] };

function get<K extends ResourceKind>(
  objects: TargetObjects,
  kind: K,
  namespace: string,
  name: string,
): ObjectOf<K> | undefined {
  return objects.get(kind, namespace, name) as ObjectOf<K> | undefined;
}

function podsOf(objects: TargetObjects, namespace: string): ReadonlyArray<k8s.V1Pod> {
  return objects.list('Pod', namespace);
}

export type ResolveFailureReason =
  /** The target's cluster (spec.kubeConfig) cannot be reached: the kubeconfig or the remote API server. */
  | ClusterFailureReason
  | 'TargetNotFound'
  | 'PodNotFound'
  | 'PodNotReady'
  | 'NamedPortNotFound'
  | 'ServicePortNotFound'
  | 'ServiceWithoutSelector';

/** Why the cluster a target is in cannot be looked at (a kubeconfig Secret's cluster). */
export type ClusterFailureReason =
  | 'KubeConfigNotFound'
  | 'KubeConfigInvalid'
  | 'KubeConfigForbidden'
  | 'KubeConfigInsecure'
  | 'RemoteUnauthorized'
  | 'RemoteUnreachable'
  | 'RemotePending';

export interface TargetFailure {
  ok: false;
  reason: ResolveFailureReason;
  message: string;
  /** Only a change to the spec or to the target's definition can fix it. */
  stalled: boolean;
  /** A pod that exists but cannot be used, for status.pod. */
  pod?: k8s.V1Pod;
}

export function fail(
  reason: ResolveFailureReason,
  message: string,
  stalled: boolean,
  pod?: k8s.V1Pod,
): TargetFailure {
  return { ok: false, reason, message, stalled, pod };
}

/** What a target stands for: the pods it may use, and how spec.ports map onto one of them. */
export interface Candidates {
  ok: true;
  pods: ReadonlyArray<k8s.V1Pod>;
  /** The pod's ports for spec.ports, or why one does not map. */
  mapPorts: (pod: k8s.V1Pod) => ResolvedPort[] | string;
}

/** Where and what a kind resolves: the PortForward's ports, the namespace, the cluster's objects. */
export interface ResolveContext {
  ports: readonly PortSpec[];
  namespace: string;
  objects: TargetObjects;
}

type TargetField = keyof Target;

/** One target kind; its functions take the spec's target and read their own field of it. */
export interface TargetKind {
  /** The field of spec.target that names it. */
  readonly field: TargetField;
  /** The resources it reads: watched, and granted get, list and watch in the ClusterRole. */
  readonly reads: readonly ResourceKind[];
  /** The target as kubectl would write it, for messages. */
  describe(target: Target): string;
  /** The message when it stands for no pod at all. */
  noPods(target: Target): string;
  /** Whether a change to the object `kind`/`name` (in the target's namespace) may change its pods. */
  involves(target: Target, kind: ResourceKind, name: string | undefined): boolean;
  resolve(target: Target, ctx: ResolveContext): Candidates | TargetFailure;
}

/** A kind's definition, on its own field's value. */
interface KindDef<V> {
  reads: readonly ResourceKind[];
  describe(value: V): string;
  noPods?(value: V, description: string): string;
  involves(value: V, kind: ResourceKind, name: string | undefined): boolean;
  resolve(value: V, ctx: ResolveContext): Candidates | TargetFailure;
}

function kind<F extends TargetField>(field: F, def: KindDef<NonNullable<Target[F]>>): TargetKind {
  const value = (t: Target): NonNullable<Target[F]> => t[field] as NonNullable<Target[F]>;
  return {
    field,
    reads: def.reads,
    describe: (t) => def.describe(value(t)),
    noPods: (t) => def.noPods?.(value(t), def.describe(value(t))) ?? `${def.describe(value(t))} has no pods`,
    involves: (t, k, name) => def.involves(value(t), k, name),
    resolve: (t, ctx) => def.resolve(value(t), ctx),
  };
}

/** The pods of the namespace that `selector` matches, each port mapped to a container port. */
function selected(ctx: ResolveContext, selector: k8s.V1LabelSelector | LabelSelector): Candidates {
  return {
    ok: true,
    pods: podsOf(ctx.objects, ctx.namespace).filter((p) => matchesSelector(p.metadata?.labels, selector)),
    mapPorts: (p) => containerPorts(ctx.ports, p),
  };
}

/** A workload (deployment, statefulSet): its own object names a selector of pods. */
function workload(resource: 'Deployment' | 'StatefulSet', noun: string): KindDef<string> {
  return {
    reads: [resource, 'Pod'],
    describe: (name) => `${noun}/${name}`,
    involves: (name, k, changed) => (k === resource ? changed === name : k === 'Pod'),
    resolve: (name, ctx) => {
      const obj = get(ctx.objects, resource, ctx.namespace, name);
      if (!obj) return fail('TargetNotFound', `${noun} ${ctx.namespace}/${name} does not exist`, false);
      return selected(ctx, obj.spec?.selector ?? {});
    },
  };
}

/** Every kind, by its field of spec.target, in the order kubectl's forms are listed. */
export const TARGET_KINDS: { readonly [F in TargetField]-?: TargetKind } = {
  pod: kind('pod', {
    reads: ['Pod'],
    describe: (name) => `pod/${name}`,
    noPods: (_name, description) => `${description} does not exist`,
    involves: (name, k, changed) => k === 'Pod' && changed === name,
    resolve: (name, ctx) => {
      const pod = get(ctx.objects, 'Pod', ctx.namespace, name);
      if (!pod) return fail('PodNotFound', `pod ${ctx.namespace}/${name} does not exist`, false);
      return { ok: true, pods: [pod], mapPorts: (p) => containerPorts(ctx.ports, p) };
    },
  }),
  service: kind('service', {
    reads: ['Service', 'Pod'],
    describe: (name) => `service/${name}`,
    involves: (name, k, changed) => (k === 'Service' ? changed === name : k === 'Pod'),
    resolve: (name, ctx) => {
      const ns = ctx.namespace;
      const svc = get(ctx.objects, 'Service', ns, name);
      if (!svc) return fail('TargetNotFound', `service ${ns}/${name} does not exist`, false);
      const selector = svc.spec?.selector;
      if (!selector || Object.keys(selector).length === 0) {
        return fail(
          'ServiceWithoutSelector',
          `service ${ns}/${name} has no selector, so no pods to forward to`,
          true,
        );
      }
      const mapping = servicePorts(ctx.ports, svc, ns);
      if (typeof mapping === 'string') return fail('ServicePortNotFound', mapping, true);
      return {
        ok: true,
        pods: podsOf(ctx.objects, ns).filter((p) =>
          matchesSelector(p.metadata?.labels, { matchLabels: selector }),
        ),
        mapPorts: (p) => mapServicePorts(p, mapping),
      };
    },
  }),
  deployment: kind('deployment', workload('Deployment', 'deployment')),
  statefulSet: kind('statefulSet', workload('StatefulSet', 'statefulset')),
  selector: kind('selector', {
    reads: ['Pod'],
    describe: (s) => `pods selected by ${selectorString(s)}`,
    noPods: (s) => `no pod matches the selector ${selectorString(s)}`,
    involves: (_s, k) => k === 'Pod',
    resolve: (s, ctx) => selected(ctx, s),
  }),
};

/** The kinds in the order their fields are tested. */
export const TARGET_KIND_LIST: readonly TargetKind[] = Object.values(TARGET_KINDS);

/** The kind a target names (the first field set; admission allows exactly one). */
export function kindOf(target: Target): TargetKind | undefined {
  return TARGET_KIND_LIST.find((k) => Boolean(target[k.field]));
}

/** Every resource some kind reads, each once: what the watch caches hold. */
export const WATCHED_RESOURCES: readonly ResourceKind[] = [
  ...new Set(TARGET_KIND_LIST.flatMap((k) => k.reads)),
];

/** The RBAC rules the target kinds need: get, list and watch on each resource they read. */
export function targetRbac(): { apiGroup: string; resource: string; verbs: string[] }[] {
  return WATCHED_RESOURCES.map((k) => ({
    apiGroup: RESOURCES[k].group,
    resource: RESOURCES[k].plural,
    verbs: ['get', 'list', 'watch'],
  }));
}
