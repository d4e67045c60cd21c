// Builds a PortForward's status and conditions (kstatus-compatible: observedGeneration, Ready,
// Stalled, Reconciling) from the plan, the listeners' states and the relay's counters. Pure.
import type { V1Pod } from '@kubernetes/client-node';
import { Condition, Endpoint, PortForward, PortForwardStatus, RefusedClients } from '../api/v1alpha1';
import type { ListenerState, SessionStats } from '../relay';
import { Outcome, Plan } from './plan';
import type { ListenerOwner } from './ports';

export interface Counters {
  total: number;
  failed: number;
  refused: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface StatusInput {
  pf: PortForward;
  plan: Plan;
  /** The outcome after binding: the plan's, or a bind failure. */
  outcome: Outcome;
  listeners: ListenerState[];
  pod?: V1Pod;
  targetResolved: { ok: boolean; reason: string; message: string };
  stats?: SessionStats;
  /** Counters recorded before this operator process took the session over. */
  baseline: Counters;
  retargets: number;
  /** Refused clients by reason (ClientRefusals), when any was ever refused. */
  refusedClients?: RefusedClients;
  advertiseAddress: string;
  now: Date;
  /** The remote cluster of spec.kubeConfig, as status shows it. */
  remote?: { server: string; namespace: string };
}

export function buildStatus(input: StatusInput): PortForwardStatus {
  const { pf, plan, outcome, now } = input;
  const gen = pf.metadata.generation;
  const prev = pf.status?.conditions ?? [];
  const cond = (type: string, status: Condition['status'], reason: string, message: string): Condition =>
    condition(prev, { type, status, reason, message, observedGeneration: gen }, now);

  const conditions: Condition[] = [
    cond(
      'TargetResolved',
      input.targetResolved.ok ? 'True' : 'False',
      input.targetResolved.reason,
      input.targetResolved.message,
    ),
  ];
  // A suspended or expired forward has no Ready condition (ADR 11): it is reconciled, so kstatus (which
  // reads Ready=False as in progress) must see it Current, and it forwards nothing, so Ready=True would lie
  // to `kubectl wait --for=condition=Ready`. The phase says which it is.
  if (outcome.phase === 'Ready') conditions.unshift(cond('Ready', 'True', outcome.reason, outcome.message));
  else if (!closedOnPurpose(outcome.phase)) {
    conditions.unshift(cond('Ready', 'False', outcome.reason, outcome.message));
  }
  if (outcome.stalled) conditions.push(cond('Stalled', 'True', outcome.reason, outcome.message));
  // kstatus: the operator is still working on it (it retries), as opposed to Stalled.
  if (
    outcome.phase === 'Degraded' ||
    outcome.phase === 'Pending' ||
    (outcome.phase === 'Failed' && !outcome.stalled)
  ) {
    conditions.push(cond('Reconciling', 'True', outcome.reason, outcome.message));
  }

  const stats = input.stats;
  const status: PortForwardStatus = {
    observedGeneration: gen,
    phase: outcome.phase,
    message: outcome.message,
    endpoints: endpoints(pf, plan, input.listeners, input.advertiseAddress),
    connections: {
      active: stats?.active ?? 0,
      total: input.baseline.total + (stats?.total ?? 0),
      failed: input.baseline.failed + (stats?.failed ?? 0),
      refused: input.baseline.refused + (stats?.refused ?? 0),
    },
    bytesSent: input.baseline.bytesSent + (stats?.bytesSent ?? 0),
    bytesReceived: input.baseline.bytesReceived + (stats?.bytesReceived ?? 0),
    retargets: input.retargets,
    startTime: plan.startTime,
    conditions,
  };
  if (input.refusedClients) status.refusedClients = input.refusedClients;
  if (input.remote) status.remote = { server: input.remote.server, namespace: input.remote.namespace };
  if (input.pod?.metadata?.name) status.pod = { name: input.pod.metadata.name, uid: input.pod.metadata.uid };
  if (plan.expiryTime) status.expiryTime = plan.expiryTime;
  const lastError = stats?.lastError
    ? { message: stats.lastError.message, time: stats.lastError.time.toISOString() }
    : pf.status?.lastError;
  if (lastError) status.lastError = lastError;
  const transport = stats?.transport ?? pf.status?.transport;
  if (transport) status.transport = transport;
  return status;
}

/** Phases the spec asked for (spec.suspend, spec.ttl): reconciled, with the listeners closed. */
export function closedOnPurpose(phase: PortForwardStatus['phase']): boolean {
  return phase === 'Suspended' || phase === 'Expired';
}

function endpoints(pf: PortForward, plan: Plan, states: ListenerState[], advertise: string): Endpoint[] {
  const byId = new Map(states.map((s) => [s.id, s]));
  const out: Endpoint[] = [];
  for (const l of plan.listeners) {
    const s = byId.get(l.id);
    if (!s || s.state !== 'bound') continue;
    const spec = pf.spec.ports[l.index];
    const address = isWildcard(s.address) ? advertise : s.address;
    const host = address.includes(':') ? `[${address}]` : address;
    const e: Endpoint = {
      port: spec.port,
      address,
      localPort: s.localPort,
      url: `tcp://${host}:${s.localPort}`,
    };
    if (spec.name) e.name = spec.name;
    if (l.remotePort) e.targetPort = l.remotePort;
    out.push(e);
  }
  return out;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/** A condition with lastTransitionTime kept from the previous one of its type when its status is unchanged. */
function condition(prev: Condition[], c: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition {
  const old = prev.find((p) => p.type === c.type);
  const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : now.toISOString();
  return { ...c, lastTransitionTime };
}

/**
 * Whether `next` differs from `prev` in anything but what moves with the traffic (counters, refused
 * clients, the last error, the transport): such a change is written at once; traffic-only changes wait for the status
 * interval. So a storm of failing connections, each with its own `lastError`, costs at most one
 * status write per interval, while a phase or condition change is never held back.
 */
export function significantChange(prev: PortForwardStatus | undefined, next: PortForwardStatus): boolean {
  if (!prev) return true;
  const strip = (s: PortForwardStatus): unknown => ({
    ...s,
    connections: undefined,
    bytesSent: undefined,
    bytesReceived: undefined,
    refusedClients: undefined,
    lastError: undefined,
    transport: undefined,
    conditions: (s.conditions ?? []).map(({ lastTransitionTime: _t, ...rest }) => rest),
  });
  return canonical(strip(prev)) !== canonical(strip(next));
}

/** JSON with object keys sorted: the API server returns keys in its own order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>)
            .filter(([, x]) => x !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

/** Whether the last error differs. */
export function lastErrorChanged(prev: PortForwardStatus | undefined, next: PortForwardStatus): boolean {
  return canonical(prev?.lastError ?? null) !== canonical(next.lastError ?? null);
}

/** Whether what moves with the traffic differs: the counters, refused clients, the last error, the transport. */
export function countersChanged(prev: PortForwardStatus | undefined, next: PortForwardStatus): boolean {
  const moving = (s: PortForwardStatus | undefined): unknown[] => [
    s?.connections,
    s?.bytesSent,
    s?.bytesReceived,
    s?.refusedClients,
    s?.lastError,
    s?.transport,
  ];
  return canonical(moving(prev)) !== canonical(moving(next));
}

/** The outcome of binding: the plan's own, unless a listener failed to bind. */
export function bindOutcome(
  plan: Plan,
  states: ListenerState[],
  ownerOf: (port: number) => ListenerOwner | undefined,
  /** This PortForward's key: a port it holds itself is not a conflict with another PortForward. */
  self?: string,
): Outcome {
  const failed = states.filter((s): s is Extract<ListenerState, { state: 'error' }> => s.state === 'error');
  if (failed.length === 0) return plan;
  const f = failed[0];
  const where = `${f.address}:${f.localPort}`;
  switch (f.code) {
    case 'EADDRINUSE':
    case 'PORT_TAKEN': {
      const holder = ownerOf(f.localPort)?.key;
      // The allocator may have recorded the port for this very PortForward: then it is another program.
      const by = holder && holder !== self ? `PortForward ${holder}` : 'another program';
      return {
        phase: 'Failed',
        reason: 'PortInUse',
        message: `local port ${where} is in use by ${by}; choose another localPort or free it (retried until it is free)`,
        stalled: true,
      };
    }
    case 'EACCES':
      return {
        phase: 'Failed',
        reason: 'PortNotPermitted',
        message: `the operator may not listen on ${where}: ${f.message}`,
        stalled: true,
      };
    case 'EADDRNOTAVAIL':
      return {
        phase: 'Failed',
        reason: 'ListenAddressNotAvailable',
        message: `${f.address} is not an address of the operator's host: ${f.message}`,
        stalled: true,
      };
    case 'RANGE_FULL':
      return { phase: 'Failed', reason: 'PortRangeExhausted', message: f.message, stalled: false };
    default:
      return {
        phase: 'Failed',
        reason: 'ListenFailed',
        message: `listening on ${where} failed: ${f.message}`,
        stalled: false,
      };
  }
}
