// Picks the target pod of a PortForward from the watch cache and maps its ports the way
// `kubectl port-forward` does: a number is used as is, a name is looked up among the pod's container
// ports. Pure: the caller passes the pods it knows.
import type { V1Pod } from '@kubernetes/client-node';
import { PortForward } from '../api/v1alpha1';

export interface ResolvedPort {
  /** Index in spec.ports. */
  index: number;
  /** The pod's container port number. */
  targetPort: number;
}

export type ResolveFailureReason =
  'PodNotFound' | 'PodNotReady' | 'NamedPortNotFound' | 'TargetKindNotSupported';

export type Resolution =
  | { ok: true; pod: V1Pod; ports: ResolvedPort[] }
  | {
      ok: false;
      reason: ResolveFailureReason;
      message: string;
      /** Only a change to the spec (or the pod's definition) can fix it. */
      stalled: boolean;
      pod?: V1Pod;
    };

export function isPodReady(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  if (pod.status?.phase !== 'Running') return false;
  return !!pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The target kind that is set, for messages and printer columns. */
export function targetDescription(pf: PortForward): string {
  const t = pf.spec.target;
  if (t.pod) return `pod/${t.pod}`;
  if (t.service) return `service/${t.service}`;
  if (t.deployment) return `deployment/${t.deployment}`;
  if (t.statefulSet) return `statefulset/${t.statefulSet}`;
  if (t.selector) return 'selector';
  return 'nothing';
}

export function resolveTarget(
  pf: PortForward,
  getPod: (namespace: string, name: string) => V1Pod | undefined,
): Resolution {
  const ns = pf.metadata.namespace;
  const podName = pf.spec.target.pod;
  if (!podName) {
    return {
      ok: false,
      reason: 'TargetKindNotSupported',
      message: `target ${targetDescription(pf)} is not supported by this operator version; use target.pod`,
      stalled: true,
    };
  }
  const pod = getPod(ns, podName);
  if (!pod) {
    return {
      ok: false,
      reason: 'PodNotFound',
      message: `pod ${ns}/${podName} does not exist`,
      stalled: false,
    };
  }
  const ports = mapPorts(pf, pod);
  if (!Array.isArray(ports)) return { ...ports, pod };
  if (!isPodReady(pod)) {
    const why = pod.metadata?.deletionTimestamp
      ? 'is terminating'
      : `is ${pod.status?.phase ?? 'Unknown'} and not Ready`;
    return { ok: false, reason: 'PodNotReady', message: `pod ${ns}/${podName} ${why}`, stalled: false, pod };
  }
  return { ok: true, pod, ports };
}

function mapPorts(
  pf: PortForward,
  pod: V1Pod,
): ResolvedPort[] | { ok: false; reason: 'NamedPortNotFound'; message: string; stalled: true } {
  const out: ResolvedPort[] = [];
  const containerPorts = (pod.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
  for (const [index, p] of pf.spec.ports.entries()) {
    if (typeof p.port === 'number' || /^\d+$/.test(p.port)) {
      out.push({ index, targetPort: Number(p.port) });
      continue;
    }
    const found = containerPorts.find((cp) => cp.name === p.port && (cp.protocol ?? 'TCP') === 'TCP');
    if (!found) {
      const names = containerPorts.filter((cp) => cp.name).map((cp) => cp.name);
      return {
        ok: false,
        reason: 'NamedPortNotFound',
        message:
          `pod ${pf.metadata.namespace}/${pod.metadata?.name} has no TCP container port named ${JSON.stringify(p.port)}` +
          (names.length ? ` (it has ${names.join(', ')})` : ' (it names none)'),
        stalled: true,
      };
    }
    out.push({ index, targetPort: found.containerPort });
  }
  return out;
}
