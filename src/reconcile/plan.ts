// plan(spec, observed) -> the desired session. Pure: no I/O, no clock of its own, no allocation; the
// reconciler executes the plan (binds, allocates, writes status).
import { Phase, PortForward } from '../api/v1alpha1';
import { durationMs } from '../api/duration';
import type { LoadBalance, PodTarget } from '../relay';
import { matchListeners, PriorListener } from './listener-ids';
import { Resolution, targetDescription, targetNamespace } from '../targets/resolve';

export interface PlanConfig {
  listenAddress: string;
  allowedListenAddresses: string[];
  /** How long a new connection waits for a ready pod. */
  holdMs: number;
}

export interface PlannedListener {
  /** Stable identity across edits that keep its local and target port (listener-ids.ts). */
  id: string;
  index: number;
  name?: string;
  /** spec.ports[index].port as written. */
  port: number | string;
  address: string;
  /** spec.ports[].localPort: exactly this port or a PortInUse failure. */
  requestedPort?: number;
  /** When none is requested: the local port of the earlier listener this one is (listener-ids.ts). */
  recordedPort?: number;
  /** The container port; 0 while unknown (a named or service port with no pod to look it up in). */
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
  /**
   * Ready pods new connections go to, preferred first; empty holds them up to holdMs (as does a pod
   * found gone at the dial with no other target).
   */
  targets: PodTarget[];
  loadBalance: LoadBalance;
  holdMs: number;
  /** Why `targets` is empty, for connections refused or timed out for want of a pod. */
  noTargetReason?: string;
  allowedSourceRanges: string[];
  startTime: string;
  expiryTime?: string;
  /** Re-run the plan then (expiry). */
  requeueAfterMs?: number;
};

/**
 * `prior`: the listeners of this PortForward's last plan, with the local ports they got (the
 * reconciler's memory); undefined reads them from the endpoints recorded in status (after a restart).
 */
export function plan(
  pf: PortForward,
  resolution: Resolution,
  cfg: PlanConfig,
  now: Date,
  prior?: ReadonlyArray<PriorListener>,
): Plan {
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
  const targetPorts = pf.spec.ports.map((p, index) => remote.get(index) ?? knownTargetPort(pf, p.port));
  const ids = matchListeners(
    pf.spec.ports.map((p, index) => ({
      name: p.name,
      port: p.port,
      requestedPort: p.localPort,
      address,
      targetPort: targetPorts[index],
    })),
    prior ?? priorFromStatus(pf, address, cfg),
  );
  const listeners = pf.spec.ports.map((p, index): PlannedListener => ({
    id: ids[index].id,
    index,
    ...(p.name !== undefined ? { name: p.name } : {}),
    port: p.port,
    address,
    requestedPort: p.localPort,
    recordedPort: ids[index].keptPort,
    remotePort: targetPorts[index],
  }));

  const ports = pf.spec.ports.length === 1 ? '1 port' : `${pf.spec.ports.length} ports`;
  let outcome: Outcome;
  let targets: PodTarget[] = [];
  if (resolution.ok) {
    targets = resolution.pods.map((r) => ({
      namespace: targetNamespace(pf),
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
        : `forwarding ${ports} to pod ${targetNamespace(pf)}/${targets[0].name}`,
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
    // A failure only a spec change can fix refuses at once; a missing pod may come back. With a
    // target too: a connection whose pod is gone at its dial (deleted a moment ago) waits for the next.
    holdMs: !resolution.ok && resolution.stalled ? 0 : cfg.holdMs,
    ...(resolution.ok ? {} : { noTargetReason: resolution.message }),
    listeners,
    targets,
    requeueAfterMs,
  };
}

/**
 * The listeners recorded in status (endpoints of bound listeners), for a process that has no memory
 * of this PortForward yet: they give allocated ports back, matched as listener-ids.ts says.
 * An endpoint's address is what clients were told, not where the listener was bound: for a wildcard
 * listener it is the advertise address of the replica that wrote it (its pod IP in a cluster), which
 * a standby taking over never has. So while the listener is on a wildcard, an endpoint counts as on
 * the same address unless it names an address this operator could bind explicitly.
 */
export function priorFromStatus(
  pf: PortForward,
  address = pf.spec.listenAddress ?? '',
  cfg?: Pick<PlanConfig, 'listenAddress' | 'allowedListenAddresses'>,
): PriorListener[] {
  const explicit = new Set([cfg?.listenAddress, ...(cfg?.allowedListenAddresses ?? [])]);
  const wildcard = address === '0.0.0.0' || address === '::';
  return (pf.status?.endpoints ?? []).map((e) => ({
    ...(e.name !== undefined ? { name: e.name } : {}),
    port: e.port,
    address: wildcard && !explicit.has(e.address) ? address : e.address,
    localPort: e.localPort,
    targetPort: e.targetPort,
  }));
}

/**
 * The container port of a spec port that needs no pod to know it: a number, for every target but a
 * service (whose ports map through the service). 0: unknown.
 */
function knownTargetPort(pf: PortForward, port: number | string): number {
  if (pf.spec.target.service !== undefined) return 0;
  return typeof port === 'number' || /^\d+$/.test(port) ? Number(port) : 0;
}
