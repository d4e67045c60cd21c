// Picks the target pods of a PortForward from the watch caches and maps its ports the way
// `kubectl port-forward` does: pod/NAME directly; service/NAME, deployment/NAME, statefulset/NAME and a
// label selector through their selectors; a service port (number or name) through its targetPort; a
// port name through the pod's container ports. Only Running, Ready pods without a deletionTimestamp
// are chosen, the longest-ready first. Pure: the caller passes the caches.
import type { V1Deployment, V1LabelSelector, V1Pod, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { LabelSelector, PortForward } from '../api/v1alpha1';

export interface Caches {
  pod(namespace: string, name: string): V1Pod | undefined;
  pods(namespace: string): ReadonlyArray<V1Pod>;
  service(namespace: string, name: string): V1Service | undefined;
  deployment(namespace: string, name: string): V1Deployment | undefined;
  statefulSet(namespace: string, name: string): V1StatefulSet | undefined;
}

export interface ResolvedPort {
  /** Index in spec.ports. */
  index: number;
  /** The pod's container port number. */
  targetPort: number;
}

export interface ResolvedPod {
  pod: V1Pod;
  ports: ResolvedPort[];
}

export type ResolveFailureReason =
  | 'TargetNotFound'
  | 'PodNotFound'
  | 'PodNotReady'
  | 'NamedPortNotFound'
  | 'ServicePortNotFound'
  | 'ServiceWithoutSelector';

export type Resolution =
  | { ok: true; pods: ResolvedPod[] }
  | {
      ok: false;
      reason: ResolveFailureReason;
      message: string;
      /** Only a change to the spec or to the target's definition can fix it. */
      stalled: boolean;
      /** A pod that exists but cannot be used, for status.pod. */
      pod?: V1Pod;
    };

export function isPodReady(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  if (pod.status?.phase !== 'Running') return false;
  return !!pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The target as kubectl would write it, for messages. */
export function targetDescription(pf: PortForward): string {
  const t = pf.spec.target;
  if (t.pod) return `pod/${t.pod}`;
  if (t.service) return `service/${t.service}`;
  if (t.deployment) return `deployment/${t.deployment}`;
  if (t.statefulSet) return `statefulset/${t.statefulSet}`;
  if (t.selector) return `pods selected by ${selectorString(t.selector)}`;
  return 'nothing';
}

export function resolveTarget(pf: PortForward, caches: Caches): Resolution {
  const ns = pf.metadata.namespace;
  const t = pf.spec.target;
  if (t.pod) {
    const pod = caches.pod(ns, t.pod);
    if (!pod) return fail('PodNotFound', `pod ${ns}/${t.pod} does not exist`, false);
    return choose(pf, [pod], (p) => containerPorts(pf, p));
  }
  if (t.service) {
    const svc = caches.service(ns, t.service);
    if (!svc) return fail('TargetNotFound', `service ${ns}/${t.service} does not exist`, false);
    const selector = svc.spec?.selector;
    if (!selector || Object.keys(selector).length === 0) {
      return fail(
        'ServiceWithoutSelector',
        `service ${ns}/${t.service} has no selector, so no pods to forward to`,
        true,
      );
    }
    const mapping = servicePorts(pf, svc);
    if (!Array.isArray(mapping)) return mapping;
    const pods = caches
      .pods(ns)
      .filter((p) => matchesSelector(p.metadata?.labels, { matchLabels: selector }));
    return choose(pf, pods, (p) => mapServicePorts(p, mapping));
  }
  const workload = t.deployment
    ? { kind: 'deployment', name: t.deployment, obj: caches.deployment(ns, t.deployment) }
    : t.statefulSet
      ? { kind: 'statefulset', name: t.statefulSet, obj: caches.statefulSet(ns, t.statefulSet) }
      : undefined;
  let selector: V1LabelSelector | LabelSelector | undefined = t.selector;
  if (workload) {
    if (!workload.obj)
      return fail('TargetNotFound', `${workload.kind} ${ns}/${workload.name} does not exist`, false);
    selector = workload.obj.spec?.selector;
  }
  const pods = caches.pods(ns).filter((p) => matchesSelector(p.metadata?.labels, selector ?? {}));
  return choose(pf, pods, (p) => containerPorts(pf, p));
}

function fail(reason: ResolveFailureReason, message: string, stalled: boolean, pod?: V1Pod): Resolution {
  return { ok: false, reason, message, stalled, pod };
}

/** Ready pods whose ports map, longest-ready first; else the most telling failure. */
function choose(
  pf: PortForward,
  candidates: ReadonlyArray<V1Pod>,
  mapPorts: (pod: V1Pod) => ResolvedPort[] | string,
): Resolution {
  const desc = targetDescription(pf);
  if (candidates.length === 0) {
    const t = pf.spec.target;
    const message = t.pod
      ? `${desc} does not exist`
      : t.selector
        ? `no pod matches the selector ${selectorString(t.selector)}`
        : `${desc} has no pods`;
    return fail('PodNotFound', message, false);
  }
  const ready = candidates.filter(isPodReady).sort(byReadiness);
  const pods: ResolvedPod[] = [];
  let portError: string | undefined;
  for (const pod of ready) {
    const ports = mapPorts(pod);
    if (typeof ports === 'string') portError ??= ports;
    else pods.push({ pod, ports });
  }
  if (pods.length > 0) return { ok: true, pods };
  if (portError) return fail('NamedPortNotFound', portError, true, ready[0]);
  const sample = [...candidates].sort(byReadiness)[0];
  const why = sample.metadata?.deletionTimestamp
    ? 'is terminating'
    : `is ${sample.status?.phase ?? 'Unknown'} and not Ready`;
  const message =
    candidates.length === 1
      ? `pod ${pf.metadata.namespace}/${sample.metadata?.name} ${why}`
      : `none of the ${candidates.length} pods of ${desc} is Running and Ready`;
  // A missing named port on a pod that is not ready yet is not reported: it may still change.
  return fail('PodNotReady', message, false, sample);
}

/** Longest-ready first (like kubectl's choice), then oldest, then by name, so the choice is stable. */
function byReadiness(a: V1Pod, b: V1Pod): number {
  return (
    time(readySince(a)) - time(readySince(b)) ||
    time(a.metadata?.creationTimestamp) - time(b.metadata?.creationTimestamp) ||
    (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '')
  );
}

function readySince(pod: V1Pod): Date | string | undefined {
  return pod.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True')?.lastTransitionTime;
}

/** Timestamps are strings in watch events and Dates after client-node's list deserializer. */
function time(t: Date | string | undefined): number {
  return t ? new Date(t).getTime() : Number.MAX_SAFE_INTEGER;
}

function isNumber(port: number | string): boolean {
  return typeof port === 'number' || /^\d+$/.test(port);
}

/** spec.ports mapped to a pod's container ports: numbers as they are, names looked up. */
function containerPorts(pf: PortForward, pod: V1Pod): ResolvedPort[] | string {
  const out: ResolvedPort[] = [];
  for (const [index, p] of pf.spec.ports.entries()) {
    const n = isNumber(p.port) ? Number(p.port) : namedPort(pod, String(p.port));
    if (typeof n === 'string') return n;
    out.push({ index, targetPort: n });
  }
  return out;
}

function namedPort(pod: V1Pod, name: string): number | string {
  const all = (pod.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
  const found = all.find((cp) => cp.name === name && (cp.protocol ?? 'TCP') === 'TCP');
  if (found) return found.containerPort;
  const names = all.filter((cp) => cp.name).map((cp) => cp.name);
  return (
    `pod ${pod.metadata?.namespace}/${pod.metadata?.name} has no TCP container port named ${JSON.stringify(name)}` +
    (names.length ? ` (it has ${names.join(', ')})` : ' (it names none)')
  );
}

type ServiceMapping = { index: number; targetPort: number | string }[];

/** spec.ports mapped to the service's ports (by number or name), then to their targetPorts. */
function servicePorts(pf: PortForward, svc: V1Service): ServiceMapping | Resolution {
  const out: ServiceMapping = [];
  const ports = svc.spec?.ports ?? [];
  for (const [index, p] of pf.spec.ports.entries()) {
    const sp = isNumber(p.port)
      ? ports.find((x) => x.port === Number(p.port))
      : ports.find((x) => x.name === p.port);
    if (!sp || (sp.protocol ?? 'TCP') !== 'TCP') {
      const have = ports.map((x) => (x.name ? `${x.name}=${x.port}` : String(x.port))).join(', ');
      return fail(
        'ServicePortNotFound',
        `service ${pf.metadata.namespace}/${svc.metadata?.name} has no TCP port ${JSON.stringify(p.port)}` +
          (have ? ` (it has ${have})` : ''),
        true,
      );
    }
    out.push({ index, targetPort: sp.targetPort ?? sp.port });
  }
  return out;
}

function mapServicePorts(pod: V1Pod, mapping: ServiceMapping): ResolvedPort[] | string {
  const out: ResolvedPort[] = [];
  for (const m of mapping) {
    const n = isNumber(m.targetPort) ? Number(m.targetPort) : namedPort(pod, String(m.targetPort));
    if (typeof n === 'string') return n;
    out.push({ index: m.index, targetPort: n });
  }
  return out;
}

/** Label selector semantics of metav1.LabelSelector; an empty selector matches everything. */
export function matchesSelector(
  labels: Record<string, string> | undefined,
  selector: V1LabelSelector | LabelSelector,
): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(l[e.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(l[e.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false; // an unknown operator matches nothing, as in Kubernetes
    }
  }
  return true;
}

export function selectorString(s: LabelSelector): string {
  const parts = Object.entries(s.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of s.matchExpressions ?? []) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator === 'In' ? 'in' : 'notin'} (${(e.values ?? []).join(',')})`);
  }
  return parts.join(',');
}
