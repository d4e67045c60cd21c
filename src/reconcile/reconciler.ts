// reconcile(key): level-based. Reads the PortForward and its pod from the watch caches (never from the
// event that woke it), plans the session, has the relay match the plan, and writes status when it
// changed. Only this file writes status; relay events merely bring the key back.
import { PortForward, PortForwardStatus } from '../api/v1alpha1';
import { done, Result } from './result';
import { EventRecorder } from '../kube/events';
import type { Logger } from '../observability/logger';
import type { ClientRule, ListenerSpec, ListenerState, RelayEngine } from '../relay/types';
import { AdmittedAddresses, ClientDirectory, EMPTY_DIRECTORY } from './clients';
import type { PriorListener } from './listener-ids';
import { plan, PlanConfig, PlannedListener } from './plan';
import { PortAllocator } from './ports';
import { ClientRefusals, Refusal } from './refusals';
import { Caches, resolveTarget } from './resolve';
import {
  bindOutcome,
  buildStatus,
  Counters,
  countersChanged,
  lastErrorChanged,
  significantChange,
} from './status';
import { keyOf, parseKey } from '../api/key';

/** Re-try a port that another program holds this often (PortInUse recovers by itself). */
const PORT_RETRY_MS = 5_000;

export interface ReconcilerDeps {
  getPortForward(namespace: string, name: string): PortForward | undefined;
  caches: Caches;
  /** Namespaces and pod addresses, for who may connect (clients.ts). Default: none known. */
  clients?: ClientDirectory;
  relay: RelayEngine;
  allocator: PortAllocator;
  writeStatus(namespace: string, name: string, status: PortForwardStatus): Promise<boolean>;
  events: Pick<EventRecorder, 'record'>;
  config: PlanConfig & { advertiseAddress: string; statusIntervalMs: number };
  logger: Logger;
  now?: () => Date;
  /** Called when new connections of a PortForward move to another pod. */
  onRetarget?: (key: string) => void;
}

/** Least time between two status writes made only for a new lastError. */
const ERROR_WRITE_INTERVAL_MS = 1000;

interface SessionMemory {
  baseline: Counters;
  podUid?: string;
  retargets: number;
  lastWrite: number;
  /** When a new lastError was last written: the first failure of an interval goes out at once. */
  lastErrorWrite: number;
  lastPhase?: string;
  /** The listeners of the last plan that had any, with their ports: their ids survive edits. */
  listeners?: PriorListener[];
}

export class Reconciler {
  private readonly sessions = new Map<string, SessionMemory>();
  private readonly now: () => Date;
  private readonly admitted: AdmittedAddresses;
  private readonly refusals: ClientRefusals;

  constructor(private readonly deps: ReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.admitted = new AdmittedAddresses(deps.clients ?? EMPTY_DIRECTORY);
    this.refusals = new ClientRefusals(deps.clients ?? EMPTY_DIRECTORY, this.now);
  }

  /** Whether this reconciler holds anything for `key` (a session, ports, counters). */
  holds(key: string): boolean {
    return this.sessions.has(key);
  }

  /** A client the relay refused: why, counted into the PortForward's status.refusedClients. */
  clientRefused(pf: PortForward, address: string, rule: ClientRule): Refusal {
    return this.refusals.record(pf, address, rule);
  }

  /**
   * Before the first reconcile: claims every port recorded in status, so that a restarted operator
   * gives each PortForward its old ports back, whatever order the keys run in.
   */
  restoreRecordedPorts(pfs: ReadonlyArray<PortForward>): void {
    for (const pf of pfs) {
      const key = keyOf(pf);
      const empty = resolveTarget(pf, NO_OBJECTS);
      const p = plan(pf, empty, this.deps.config, this.now());
      for (const l of p.listeners) {
        const port = l.requestedPort ?? this.recorded(l);
        if (port) this.deps.allocator.claim(key, l.id, port);
      }
    }
  }

  async reconcile(key: string): Promise<Result> {
    const { namespace, name } = parseKey(key);
    const pf = this.deps.getPortForward(namespace, name);
    if (!pf || pf.metadata.deletionTimestamp) {
      await this.deps.relay.stop(key);
      this.deps.allocator.release(key);
      this.sessions.delete(key);
      this.admitted.forget(key);
      this.refusals.forget(key);
      return done;
    }
    const log = this.deps.logger.child({ portforward: key });
    const now = this.now();
    if (!pf.status?.conditions?.length) {
      // kstatus reads a resource without conditions as Current: say Ready=False before any work.
      const pending = 'the operator is setting the forward up';
      await this.deps.writeStatus(namespace, name, {
        observedGeneration: pf.metadata.generation,
        phase: 'Pending',
        message: pending,
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'Pending',
            message: pending,
            lastTransitionTime: now.toISOString(),
          },
          {
            type: 'Reconciling',
            status: 'True',
            reason: 'Pending',
            message: pending,
            lastTransitionTime: now.toISOString(),
          },
        ],
      });
    }
    const resolution = resolveTarget(pf, this.deps.caches);
    const mem = this.memory(key, pf);
    const p = plan(pf, resolution, this.deps.config, now, mem.listeners);

    let states: ListenerState[] = [];
    let retryPortsAfter: number | undefined;
    if (p.listeners.length === 0) {
      this.foldStats(key, mem);
      await this.deps.relay.stop(key);
      // Suspended forwards keep their ports for the resume; others let them go.
      if (p.phase !== 'Suspended') this.deps.allocator.release(key);
    } else {
      const assigned = p.listeners.map((l) => this.assignPort(key, l));
      const wanted = assigned.filter((a): a is ListenerSpec => 'remotePort' in a);
      const refused = assigned.filter((a): a is ListenerState => 'state' in a);
      this.deps.allocator.release(key, new Set(p.listeners.map((l) => l.id)));
      states = [
        ...(await this.deps.relay.ensure(key, {
          listeners: wanted,
          targets: p.targets,
          loadBalance: p.loadBalance,
          holdMs: p.holdMs,
          noTargetReason: p.noTargetReason,
          allowedSourceRanges: p.allowedSourceRanges,
          allowedClientAddresses: this.admitted.of(pf, p.listeners[0].address),
        })),
        ...refused,
      ];
      // What the next plan matches its entries against: only a port that was bound is kept (one that
      // another program holds is given up, below, for another).
      const bound = new Map(states.filter((s) => s.state === 'bound').map((s) => [s.id, s.localPort]));
      mem.listeners = p.listeners.map((l) => ({
        id: l.id,
        ...(l.name !== undefined ? { name: l.name } : {}),
        port: l.port,
        requestedPort: l.requestedPort,
        address: l.address,
        localPort: bound.get(l.id),
        targetPort: l.remotePort || undefined,
      }));
      for (const s of states) {
        if (s.state !== 'error') continue;
        retryPortsAfter = PORT_RETRY_MS;
        const l = p.listeners.find((x) => x.id === s.id);
        // An allocated port another program took: pick another one on the next run, at once.
        if (l && l.requestedPort === undefined && s.code === 'EADDRINUSE') {
          this.deps.allocator.markBusy(key, l.id);
          retryPortsAfter = 0;
        }
      }
    }

    const outcome = bindOutcome(p, states, (port) => this.deps.allocator.ownerOf(port), key);
    const pod = resolution.ok ? resolution.pods[0].pod : resolution.pod;
    if (resolution.ok) {
      // A move of the preferred pod is a retarget: new connections go elsewhere from now on.
      const uid = pod?.metadata?.uid;
      if (mem.podUid && uid && mem.podUid !== uid) {
        mem.retargets++;
        this.deps.onRetarget?.(key);
        const note = `new connections go to pod ${pod?.metadata?.name} (was uid ${mem.podUid})`;
        log.info('retargeted', { pod: pod?.metadata?.name });
        this.deps.events.record(pf, 'Normal', 'Retargeted', note);
      }
      if (uid) mem.podUid = uid;
    }
    const stats = this.deps.relay.stats(key);
    const status = buildStatus({
      pf,
      plan: p,
      outcome,
      listeners: states,
      pod,
      targetResolved: resolution.ok
        ? {
            ok: true,
            reason: 'PodResolved',
            message: `${resolution.pods.length} ready pod(s): ${resolution.pods.map((r) => r.pod.metadata?.name).join(', ')}`,
          }
        : { ok: false, reason: resolution.reason, message: resolution.message },
      stats,
      baseline: mem.baseline,
      retargets: mem.retargets,
      refusedClients: this.refusals.status(pf),
      advertiseAddress: this.deps.config.advertiseAddress,
      now,
    });

    if (outcome.phase !== mem.lastPhase) {
      if (outcome.phase === 'Failed' || outcome.phase === 'Degraded') {
        this.deps.events.record(pf, 'Warning', outcome.reason, outcome.message);
      } else if (outcome.phase === 'Expired') {
        // The API server may be down at the moment of expiry: this one is retried until it lands.
        this.deps.events.record(pf, 'Normal', 'Expired', outcome.message, { mustDeliver: true });
      }
      log.info(`phase ${outcome.phase}`, { reason: outcome.reason, message: outcome.message });
      mem.lastPhase = outcome.phase;
    }

    const requeues: (number | undefined)[] = [p.requeueAfterMs, retryPortsAfter];
    const sinceWrite = now.getTime() - mem.lastWrite;
    const interval = this.deps.config.statusIntervalMs;
    // A new failure is news: one is written at once if none was in the last second (or status
    // interval, if shorter); the rest of a storm goes out with the counters. So failures cost at most
    // one status write a second, and one that comes alone is in status at once.
    const errorInterval = Math.min(interval, ERROR_WRITE_INTERVAL_MS);
    const newError =
      lastErrorChanged(pf.status, status) && now.getTime() - mem.lastErrorWrite >= errorInterval;
    if (
      significantChange(pf.status, status) ||
      newError ||
      (countersChanged(pf.status, status) && sinceWrite >= interval)
    ) {
      // A failed write throws (StatusWriteError): the handler logs it once and retries the key.
      await this.deps.writeStatus(namespace, name, status);
      mem.lastWrite = now.getTime();
      if (lastErrorChanged(pf.status, status)) mem.lastErrorWrite = now.getTime();
      log.debug('status written', { phase: status.phase, connections: status.connections });
    } else if (countersChanged(pf.status, status)) {
      requeues.push(this.deps.config.statusIntervalMs - sinceWrite);
    }
    // The relay reports on connections as they end; while some stay open, look at the counters
    // again each status interval so bytes moving on long connections show up.
    if ((stats?.active ?? 0) > 0) requeues.push(this.deps.config.statusIntervalMs);
    const next = requeues.filter((x): x is number => x !== undefined);
    return next.length ? { requeueAfterMs: Math.max(0, Math.min(...next)) } : done;
  }

  /** A listener spec with its local port, or a listener error when no port can be had. */
  private assignPort(key: string, l: PlannedListener): ListenerSpec | ListenerState {
    const a = this.deps.allocator;
    const asSpec = (localPort: number): ListenerSpec => ({
      id: l.id,
      address: l.address,
      localPort,
      remotePort: l.remotePort,
    });
    if (l.requestedPort !== undefined) {
      if (!a.claim(key, l.id, l.requestedPort)) {
        return {
          id: l.id,
          state: 'error',
          address: l.address,
          localPort: l.requestedPort,
          code: 'PORT_TAKEN',
          message: 'taken',
        };
      }
      return asSpec(l.requestedPort);
    }
    // A port this listener holds or held is kept when it is one of the range: not one it once asked
    // for with localPort (removed since), nor one of a --port-range the operator no longer has.
    const held = a.portOf(key, l.id);
    if (held !== undefined && a.inRange(held)) return asSpec(held);
    if (held !== undefined) a.releaseListener(key, l.id);
    const recorded = this.recorded(l);
    if (recorded !== undefined && a.claim(key, l.id, recorded)) return asSpec(recorded);
    const port = a.allocate(key, l.id);
    if (port === undefined) {
      return {
        id: l.id,
        state: 'error',
        address: l.address,
        localPort: 0,
        code: 'RANGE_FULL',
        message: 'every port of --port-range is in use; widen the range or delete unused PortForwards',
      };
    }
    return asSpec(port);
  }

  /**
   * The port recorded in status for a listener without localPort, if this operator gives it back: only
   * one of its --port-range. A port outside it was given by another operator (of another class, taking
   * the forward over, or with another range), whose listener may still hold it on this host.
   */
  private recorded(l: PlannedListener): number | undefined {
    return l.recordedPort !== undefined && this.deps.allocator.inRange(l.recordedPort)
      ? l.recordedPort
      : undefined;
  }

  /** Keeps a closing session's counters: the relay forgets them with the session. */
  private foldStats(key: string, mem: SessionMemory): void {
    const st = this.deps.relay.stats(key);
    if (!st) return;
    mem.baseline = {
      total: mem.baseline.total + st.total,
      failed: mem.baseline.failed + st.failed,
      refused: mem.baseline.refused + st.refused,
      bytesSent: mem.baseline.bytesSent + st.bytesSent,
      bytesReceived: mem.baseline.bytesReceived + st.bytesReceived,
    };
  }

  private memory(key: string, pf: PortForward): SessionMemory {
    let mem = this.sessions.get(key);
    if (!mem) {
      const s = pf.status;
      mem = {
        baseline: {
          total: s?.connections?.total ?? 0,
          failed: s?.connections?.failed ?? 0,
          refused: s?.connections?.refused ?? 0,
          bytesSent: s?.bytesSent ?? 0,
          bytesReceived: s?.bytesReceived ?? 0,
        },
        podUid: s?.pod?.uid,
        retargets: s?.retargets ?? 0,
        lastWrite: 0,
        lastErrorWrite: 0,
        lastPhase: s?.phase,
      };
      this.sessions.set(key, mem);
    }
    return mem;
  }
}

/** Caches with nothing in them: for planning without looking at targets. */
const NO_OBJECTS: Caches = {
  pod: () => undefined,
  pods: () => [],
  service: () => undefined,
  deployment: () => undefined,
  statefulSet: () => undefined,
};
