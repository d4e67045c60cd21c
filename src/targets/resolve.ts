// Picks the target pods of a PortForward and maps its ports the way `kubectl port-forward` does, each
// kind through its entry in kinds.ts: pod/NAME directly; service/NAME, deployment/NAME, statefulset/NAME
// and a label selector through their selectors; a service port (number or name) through its
// targetPort; a port name through the pod's container ports (ports.ts). Only Running, Ready pods
// without a deletionTimestamp are chosen, the longest-ready first. Pure: the caller passes the objects
// of the cluster to resolve in.
import type { V1Pod } from '@kubernetes/client-node';
import type { PortForward } from '../api/v1alpha1';
import { fail, kindOf, TargetFailure, TargetObjects } from './kinds';
import type { ResolvedPort } from './ports';

export type { ResolveFailureReason, TargetObjects } from './kinds';
export type { ResolvedPort } from './ports';

export interface ResolvedPod {
  pod: V1Pod;
  ports: ResolvedPort[];
}

export type Resolution = { ok: true; pods: ResolvedPod[] } | TargetFailure;

export function isPodReady(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  if (pod.status?.phase !== 'Running') return false;
  return !!pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The target as kubectl would write it, for messages. */
export function targetDescription(pf: PortForward): string {
  return kindOf(pf.spec.target)?.describe(pf.spec.target) ?? 'nothing';
}

/**
 * The namespace the target is looked up in: the PortForward's own, or with kubeConfig the target's
 * namespace in that cluster (admission refuses target.namespace without kubeConfig).
 */
export function targetNamespace(pf: PortForward): string {
  return (pf.spec.kubeConfig && pf.spec.target.namespace) || pf.metadata.namespace;
}

/** The pods `pf` may use now, in `objects` (the cluster to resolve in), best first; or why none. */
export function resolveTarget(pf: PortForward, objects: TargetObjects): Resolution {
  const t = pf.spec.target;
  const kind = kindOf(t);
  if (!kind) return fail('TargetNotFound', 'the target names no pod, service, workload or selector', true);
  const found = kind.resolve(t, { ports: pf.spec.ports, namespace: targetNamespace(pf), objects });
  if (!found.ok) return found;
  return choose(pf, found.pods, found.mapPorts, kind.noPods(t));
}

/** Ready pods whose ports map, longest-ready first; else the most telling failure. */
function choose(
  pf: PortForward,
  candidates: ReadonlyArray<V1Pod>,
  mapPorts: (pod: V1Pod) => ResolvedPort[] | string,
  noPods: string,
): Resolution {
  const desc = targetDescription(pf);
  if (candidates.length === 0) return fail('PodNotFound', noPods, false);
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
      ? `pod ${targetNamespace(pf)}/${sample.metadata?.name} ${why}`
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
