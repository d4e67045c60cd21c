// plan(spec, observed) -> the desired session. Pure: no I/O, no clock of its own, no allocation; the
// reconciler executes the plan (binds, allocates, writes status).
import { Endpoint, Phase, PortForward } from '../api/v1alpha1';
import { durationMs } from '../config/flags';
import type { PodRef } from '../relay/types';
import { Resolution, targetDescription } from './resolve';

export interface PlanConfig {
  listenAddress: string;
  allowedListenAddresses: string[];
}

export interface PlannedListener {
  /** Stable identity across edits: the port's name, else its position and port. */
  id: string;
  index: number;
  address: string;
  /** spec.ports[].localPort: exactly this port or a PortInUse failure. */
  requestedPort?: number;
  /** A port recorded in status earlier (kept across restarts) when none is requested. */
  recordedPort?: number;
  /** The pod's container port; 0 while a named port has no pod to look it up in. */
  remotePort: number;
}

export interface Outcome {
  phase: Phase;
  reason: string;
  message: string;
  /** Only a spec change can help (kstatus Stalled). */
  stalled: boolean;
}

export type Plan = Outcome & {
  /** Listeners to hold; empty closes the session (suspended, expired, failed before binding). */
  listeners: PlannedListener[];
  /** Where new connections go; undefined refuses them. */
  target: PodRef | undefined;
  allowedSourceRanges: string[];
  startTime: string;
  expiryTime?: string;
  /** Re-run the plan then (expiry). */
  requeueAfterMs?: number;
};

export function listenerId(pf: PortForward, index: number): string {
  const p = pf.spec.ports[index];
  return p.name ?? `${index}/${p.port}`;
}

export function plan(pf: PortForward, resolution: Resolution, cfg: PlanConfig, now: Date): Plan {
  const created = pf.metadata.creationTimestamp;
  const startTime = pf.status?.startTime ?? (created ? new Date(created).toISOString() : now.toISOString());
  const ttlMs = pf.spec.ttl ? durationMs(pf.spec.ttl) : undefined;
  const expiry = ttlMs !== undefined ? new Date(Date.parse(startTime) + ttlMs) : undefined;
  const base = {
    startTime,
    expiryTime: expiry?.toISOString(),
    allowedSourceRanges: pf.spec.allowedSourceRanges ?? [],
  };
  const closed = (o: Outcome): Plan => ({ ...o, ...base, listeners: [], target: undefined });

  if (expiry && now.getTime() >= expiry.getTime()) {
    return closed({
      phase: 'Expired',
      reason: 'Expired',
      message: `ttl ${pf.spec.ttl} ran out at ${expiry.toISOString()}`,
      stalled: false,
    });
  }
  const requeueAfterMs = expiry ? expiry.getTime() - now.getTime() : undefined;
  if (pf.spec.suspend) {
    return {
      ...closed({ phase: 'Suspended', reason: 'Suspended', message: 'spec.suspend is true', stalled: false }),
      requeueAfterMs,
    };
  }

  const address = pf.spec.listenAddress ?? cfg.listenAddress;
  if (address !== cfg.listenAddress && !cfg.allowedListenAddresses.includes(address)) {
    const allowed = [cfg.listenAddress, ...cfg.allowedListenAddresses].join(', ');
    return closed({
      phase: 'Failed',
      reason: 'ListenAddressNotAllowed',
      message: `listenAddress ${address} is not allowed by the operator (allowed: ${allowed})`,
      stalled: true,
    });
  }
  if (!resolution.ok && resolution.reason === 'TargetKindNotSupported') {
    return closed({ phase: 'Failed', reason: resolution.reason, message: resolution.message, stalled: true });
  }

  const remote = new Map(resolution.ok ? resolution.ports.map((p) => [p.index, p.targetPort]) : []);
  const listeners = pf.spec.ports.map((p, index): PlannedListener => {
    const rec = recordedEndpoint(pf, index);
    return {
      id: listenerId(pf, index),
      index,
      address,
      requestedPort: p.localPort,
      recordedPort: p.localPort === undefined && rec?.address === address ? rec.localPort : undefined,
      remotePort: remote.get(index) ?? (/^\d+$/.test(String(p.port)) ? Number(p.port) : 0),
    };
  });

  const ports = pf.spec.ports.length === 1 ? '1 port' : `${pf.spec.ports.length} ports`;
  let outcome: Outcome;
  if (resolution.ok) {
    const podName = resolution.pod.metadata?.name ?? '';
    outcome = {
      phase: 'Ready',
      reason: 'Forwarding',
      message: `forwarding ${ports} to pod ${pf.metadata.namespace}/${podName}`,
      stalled: false,
    };
  } else {
    outcome = {
      phase: resolution.stalled ? 'Failed' : 'Degraded',
      reason: resolution.reason,
      message: `${resolution.message}; ${targetDescription(pf)} has no pod to forward to`,
      stalled: resolution.stalled,
    };
  }
  return {
    ...outcome,
    ...base,
    listeners,
    target: resolution.ok
      ? { namespace: pf.metadata.namespace, name: resolution.pod.metadata?.name ?? '' }
      : undefined,
    requeueAfterMs,
  };
}

/**
 * The endpoint status recorded for spec.ports[index] earlier: by name for a named port, else at the
 * same position with the same port (ports may have been edited since).
 */
function recordedEndpoint(pf: PortForward, index: number): Endpoint | undefined {
  const p = pf.spec.ports[index];
  const endpoints = pf.status?.endpoints ?? [];
  if (p.name) return endpoints.find((e) => e.name === p.name);
  const e = endpoints[index];
  return e && !e.name && String(e.port) === String(p.port) ? e : undefined;
}
