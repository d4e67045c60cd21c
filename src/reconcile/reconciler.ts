// reconcile(key): level-based. Reads the PortForward and its pod from the watch caches (never from the
// event that woke it), plans the session, has the relay match the plan, and writes status when it
// changed. Only this file writes status; relay events merely bring the key back.
import type { V1Pod } from '@kubernetes/client-node';
import { Condition, PortForward, PortForwardStatus } from '../api/v1alpha1';
import { done, Result, TerminalError } from './result';
import { EventRecorder } from '../kube/events';
import type { Logger } from '../observability/logger';
import {
  ClientRule,
  ListenerSpec,
  ListenerState,
  RelayClosedError,
  RelayEngine,
  RelaySpecError,
} from '../relay';
import { AdmittedAddresses, ClientDirectory, EMPTY_DIRECTORY } from './clients';
import type { PriorListener } from './listener-ids';
import { Outcome, Plan, plan, PlanConfig } from './plan';
import { assignPort, PortAllocator, recordedPort } from './ports';
import { ClientRefusals, Refusal } from './refusals';
import { fail, NO_OBJECTS } from '../targets/kinds';
import { ClusterDirectory, ClusterView, NO_REMOTE_CLUSTERS } from './clusters';
import { resolveTarget, TargetObjects } from '../targets/resolve';
import { bindOutcome, buildStatus, Counters } from './status';
import { StatusWriterConfig, StatusWrites, WriteMemory } from './status-writes';
import { keyOf, parseKey } from '../api/key';

/** Re-try a port that another program holds this often (PortInUse recovers by itself). */
const PORT_RETRY_MS = 5_000;

export interface ReconcilerDeps {
  getPortForward(namespace: string, name: string): PortForward | undefined;
  /** The objects of the cluster targets are resolved in (the watch caches). */
  caches: TargetObjects;
  /** The clusters of spec.kubeConfig (controller/remote-clusters.ts). Default: none served. */
  clusters?: ClusterDirectory;
  /** Namespaces and pod addresses, for who may connect (clients.ts). Default: none known. */
  clients?: ClientDirectory;
  relay: RelayEngine;
  allocator: PortAllocator;
  writeStatus(namespace: string, name: string, status: PortForwardStatus): Promise<boolean>;
  events: Pick<EventRecorder, 'record'>;
  config: PlanConfig & StatusWriterConfig & { advertiseAddress: string };
  logger: Logger;
  now?: () => Date;
  /** Called when new connections of a PortForward move to another pod. */
  onRetarget?: (key: string) => void;
}

interface SessionMemory extends WriteMemory {
  baseline: Counters;
  podUid?: string;
  retargets: number;
  lastPhase?: string;
  /** The listeners of the last plan that had any, with their ports: their ids survive edits. */
  listeners?: PriorListener[];
}

export class Reconciler {
  private readonly sessions = new Map<string, SessionMemory>();
  private readonly now: () => Date;
  private readonly admitted: AdmittedAddresses;
  private readonly refusals: ClientRefusals;
  private readonly statusWrites: StatusWrites;

  constructor(private readonly deps: ReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.admitted = new AdmittedAddresses(deps.clients ?? EMPTY_DIRECTORY);
    this.refusals = new ClientRefusals(deps.clients ?? EMPTY_DIRECTORY, this.now);
    this.statusWrites = new StatusWrites(deps.config, (namespace, name, status) =>
      this.deps.writeStatus(namespace, name, status),
    );
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
        const port = l.requestedPort ?? recordedPort(this.deps.allocator, l);
        if (port) this.deps.allocator.claim(key, l.id, port);
      }
    }
  }

  /**
   * One pass, in named steps: forget a deleted forward; say Pending before any work; plan; have the
   * relay match the plan's listeners; note a retarget and a phase change (Events, logs); write status
   * when it is due; look again at the soonest time any step asked for.
   */
  async reconcile(key: string): Promise<Result> {
    try {
      return await this.pass(key);
    } catch (err) {
      throw inContract(err);
    }
  }

  private async pass(key: string): Promise<Result> {
    const { namespace, name } = parseKey(key);
    const pf = this.deps.getPortForward(namespace, name);
    if (!pf || pf.metadata.deletionTimestamp) return this.forget(key);
    const log = this.deps.logger.child({ portforward: key });
    const now = this.now();
    try {
      return await this.work(key, pf, log, now);
    } catch (err) {
      // The pass did not get to write status: a new forward says Pending at least (kstatus reads one
      // without conditions as Current). A pass that gets there writes its outcome as the first status,
      // so a burst of new forwards costs one status write each, not two. Not when this operator
      // already wrote one: the cache may not show it yet, and Pending would overwrite it.
      if (!this.sessions.get(key)?.lastWrite) await this.writePendingIfNew(pf, now).catch(() => undefined);
      throw err;
    }
  }

  private async work(key: string, pf: PortForward, log: Logger, now: Date): Promise<Result> {
    const view = this.clusterOf(key, pf);
    const resolution = view.ok ? resolveTarget(pf, view.objects) : fail(view.reason, view.message, false);
    const mem = this.memory(key, pf);
    const planned = plan(pf, resolution, this.deps.config, now, mem.listeners);
    // Pods of a remote cluster are reached through its API server, with its credentials.
    const cluster = view.ok ? view.cluster : undefined;
    const p = cluster ? { ...planned, targets: planned.targets.map((t) => ({ ...t, cluster })) } : planned;
    const { states, retryPortsAfter } = await this.applyListeners(key, pf, p, mem);
    const outcome = bindOutcome(p, states, (port) => this.deps.allocator.ownerOf(port), key);
    const pod = resolution.ok ? resolution.pods[0].pod : resolution.pod;
    if (resolution.ok) this.noteRetarget(key, pf, pod, mem, log);
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
      remote: view.remote,
    });
    this.notePhase(pf, outcome, mem, log);
    const statusDue = await this.statusWrites.writeIfDue(pf, status, mem, now.getTime(), log);
    // The relay reports on connections as they end; while some stay open, look at the counters
    // again each status interval so bytes moving on long connections show up.
    const countersDue = (stats?.active ?? 0) > 0 ? this.deps.config.statusIntervalMs : undefined;
    // A re-run for counters alone waits behind changes; one the plan or a port asked for does not.
    const timed = soonest(p.requeueAfterMs, retryPortsAfter);
    if (timed.requeueAfterMs !== undefined) return soonest(timed.requeueAfterMs, statusDue, countersDue);
    const counters = soonest(statusDue, countersDue);
    return counters.requeueAfterMs === undefined ? done : { ...counters, requeuePriority: 'low' };
  }

  /** The cluster the target is in: this one (the watch caches), or the one of spec.kubeConfig. */
  private clusterOf(key: string, pf: PortForward): ClusterView {
    const clusters = this.deps.clusters ?? NO_REMOTE_CLUSTERS;
    if (pf.spec.kubeConfig) return clusters.clusterOf(key, pf);
    clusters.release(key);
    return { ok: true, objects: this.deps.caches };
  }

  /** The forward is gone (or going): its listeners, ports and memory go too. */
  private async forget(key: string): Promise<Result> {
    (this.deps.clusters ?? NO_REMOTE_CLUSTERS).release(key);
    await this.deps.relay.stop(key);
    this.deps.allocator.release(key);
    const mem = this.sessions.get(key);
    if (mem) this.statusWrites.release(mem, this.now().getTime());
    this.sessions.delete(key);
    this.admitted.forget(key);
    this.refusals.forget(key);
    return done;
  }

  /** kstatus reads a resource without conditions as Current: say Ready=False when a pass failed. */
  private async writePendingIfNew(pf: PortForward, now: Date): Promise<void> {
    if (pf.status?.conditions?.length) return;
    const pending = 'the operator is setting the forward up';
    const condition = (type: string, status: Condition['status']): Condition => ({
      type,
      status,
      reason: 'Pending',
      message: pending,
      lastTransitionTime: now.toISOString(),
    });
    await this.deps.writeStatus(pf.metadata.namespace, pf.metadata.name, {
      observedGeneration: pf.metadata.generation,
      phase: 'Pending',
      message: pending,
      conditions: [condition('Ready', 'False'), condition('Reconciling', 'True')],
    });
  }

  /**
   * Has the relay match the plan's listeners (or stop them when the plan has none) and remembers
   * them for the next plan. Returns each listener's state, and when to look again if a port could
   * not be bound (PortInUse recovers by itself).
   */
  private async applyListeners(
    key: string,
    pf: PortForward,
    p: Plan,
    mem: SessionMemory,
  ): Promise<{ states: ListenerState[]; retryPortsAfter?: number }> {
    if (p.listeners.length === 0) {
      this.foldStats(key, mem);
      await this.deps.relay.stop(key);
      // Suspended forwards keep their ports for the resume; others let them go.
      if (p.phase !== 'Suspended') this.deps.allocator.release(key);
      return { states: [] };
    }
    const assigned = p.listeners.map((l) => assignPort(this.deps.allocator, key, l));
    const wanted = assigned.filter((a): a is ListenerSpec => 'remotePort' in a);
    const refused = assigned.filter((a): a is ListenerState => 'state' in a);
    this.deps.allocator.release(key, new Set(p.listeners.map((l) => l.id)));
    const states = [
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
    let retryPortsAfter: number | undefined;
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
    return { states, retryPortsAfter };
  }

  /** A move of the preferred pod is a retarget: new connections go elsewhere from now on. */
  private noteRetarget(
    key: string,
    pf: PortForward,
    pod: V1Pod | undefined,
    mem: SessionMemory,
    log: Logger,
  ): void {
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

  /** A new phase is logged, and told in an Event when it is a failure or the expiry. */
  private notePhase(pf: PortForward, outcome: Outcome, mem: SessionMemory, log: Logger): void {
    if (outcome.phase === mem.lastPhase) return;
    if (outcome.phase === 'Failed' || outcome.phase === 'Degraded') {
      this.deps.events.record(pf, 'Warning', outcome.reason, outcome.message);
    } else if (outcome.phase === 'Expired') {
      // The API server may be down at the moment of expiry: this one is retried until it lands.
      this.deps.events.record(pf, 'Normal', 'Expired', outcome.message, { mustDeliver: true });
    }
    log.info(`phase ${outcome.phase}`, { reason: outcome.reason, message: outcome.message });
    mem.lastPhase = outcome.phase;
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

/**
 * The relay's errors in the reconcile contract: a spec it refuses (a bug of the caller) or a relay
 * closed at shut-down (no later try would find it open) cannot be fixed by retrying.
 */
function inContract(err: unknown): unknown {
  if (err instanceof RelaySpecError || err instanceof RelayClosedError) {
    return new TerminalError(err.message, { cause: err });
  }
  return err;
}

/** Done, or requeued at the soonest of the times asked for (never in the past). */
function soonest(...after: (number | undefined)[]): Result {
  const next = after.filter((x): x is number => x !== undefined);
  return next.length ? { requeueAfterMs: Math.max(0, Math.min(...next)) } : done;
}
