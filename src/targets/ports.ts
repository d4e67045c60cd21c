// spec.ports mapped onto a pod the way `kubectl port-forward` maps them: a number is the pod's port (for
// a service target, the Service's port, through its targetPort); a name is a container port name (for
// a service target, a Service port name). Only TCP ports count.
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import type { PortSpec } from '../api/v1alpha1';

export interface ResolvedPort {
  /** Index in spec.ports. */
  index: number;
  /** The pod's container port number. */
  targetPort: number;
}

function isNumber(port: number | string): boolean {
  return typeof port === 'number' || /^\d+$/.test(port);
}

/** spec.ports mapped to a pod's container ports: numbers as they are, names looked up. */
export function containerPorts(ports: readonly PortSpec[], pod: V1Pod): ResolvedPort[] | string {
  const out: ResolvedPort[] = [];
  for (const [index, p] of ports.entries()) {
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

export type ServiceMapping = { index: number; targetPort: number | string }[];

/**
 * spec.ports mapped to the service's ports (by number or name), then to their targetPorts; or why one
 * does not map.
 */
export function servicePorts(
  ports: readonly PortSpec[],
  svc: V1Service,
  namespace: string,
): ServiceMapping | string {
  const out: ServiceMapping = [];
  const have = svc.spec?.ports ?? [];
  for (const [index, p] of ports.entries()) {
    const sp = isNumber(p.port)
      ? have.find((x) => x.port === Number(p.port))
      : have.find((x) => x.name === p.port);
    if (!sp || (sp.protocol ?? 'TCP') !== 'TCP') {
      const list = have.map((x) => (x.name ? `${x.name}=${x.port}` : String(x.port))).join(', ');
      return (
        `service ${namespace}/${svc.metadata?.name} has no TCP port ${JSON.stringify(p.port)}` +
        (list ? ` (it has ${list})` : '')
      );
    }
    out.push({ index, targetPort: sp.targetPort ?? sp.port });
  }
  return out;
}

export function mapServicePorts(pod: V1Pod, mapping: ServiceMapping): ResolvedPort[] | string {
  const out: ResolvedPort[] = [];
  for (const m of mapping) {
    const n = isNumber(m.targetPort) ? Number(m.targetPort) : namedPort(pod, String(m.targetPort));
    if (typeof n === 'string') return n;
    out.push({ index: m.index, targetPort: n });
  }
  return out;
}
