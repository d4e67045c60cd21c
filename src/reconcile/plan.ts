// plan(spec, observed) -> the desired session. Pure: no I/O, no clock of its own, no allocation; the
// reconciler executes the plan (binds, allocates, writes status).
import { Endpoint, Phase, PortForward } from '../api/v1alpha1';
import { durationMs } from '../config/flags';
import type { LoadBalance, PodTarget } from '../relay/types';
import { Resolution, targetDescription } from './resolve';

export interface PlanConfig {
  listenAddress: string;
  allowedListenAddresses: string[];
  /** How long a new connection waits for a ready pod. */
  holdMs: number;
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
  /** Ready pods new connections go to, preferred first; empty holds them up to holdMs. */
  targets: PodTarget[];
  loadBalance: LoadBalance;
  holdMs: number;
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
    loadBalance: pf.spec.loadBalance ?? 'first',
    holdMs: 0,
    startTime,
    expiryTime: expiry?.toISOString(),
    allowedSourceRanges: pf.spec.allowedSourceRanges ?? [],
  };
  const closed = (o: Outcome): Plan => ({ ...o, ...base, listeners: [], targets: [] });

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

  const first = resolution.ok ? resolution.pods[0] : undefined;
  const remote = new Map(first ? first.ports.map((p) => [p.index, p.targetPort]) : []);
  const listeners = pf.spec.ports.map((p, index): PlannedListener => {
    const rec = recordedEndpoint(pf, index);
    return {
      id: listenerId(pf, index),
      index,
      address,
      requestedPort: p.localPort,
      recordedPort: p.localPort === undefined && rec?.address === address ? rec.localPort : undefined,
      remotePort: remote.get(index) ?? 0,
    };
  });

  const ports = pf.spec.ports.length === 1 ? '1 port' : `${pf.spec.ports.length} ports`;
  let outcome: Outcome;
  let targets: PodTarget[] = [];
  if (resolution.ok) {
    targets = resolution.pods.map((r) => ({
      namespace: pf.metadata.namespace,
      name: r.pod.metadata?.name ?? '',
      ...(r.pod.metadata?.uid ? { uid: r.pod.metadata.uid } : {}),
      ports: Object.fromEntries(r.ports.map((rp) => [listeners[rp.index].id, rp.targetPort])),
    }));
    const spread = base.loadBalance === 'spread';
    outcome = {
      phase: 'Ready',
      reason: 'Forwarding',
      message: spread
        ? `spreading ${ports} over ${targets.length} ready pod${targets.length === 1 ? '' : 's'} of ${targetDescription(pf)}`
        : `forwarding ${ports} to pod ${pf.metadata.namespace}/${targets[0].name}`,
      stalled: false,
    };
  } else {
    outcome = {
      phase: resolution.stalled ? 'Failed' : 'Degraded',
      reason: resolution.reason,
      message: resolution.stalled
        ? resolution.message
        : `${resolution.message}; new connections wait up to ${cfg.holdMs / 1000} s for a ready pod`,
      stalled: resolution.stalled,
    };
  }
  return {
    ...outcome,
    ...base,
    // A failure only a spec change can fix refuses at once; a missing pod may come back.
    holdMs: resolution.ok || resolution.stalled ? 0 : cfg.holdMs,
    listeners,
    targets,
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
