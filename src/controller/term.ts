// A serving term: the work queue, the reconciler and the relay (its listeners) while this replica
// serves the forwards, always without --leader-elect and while it holds the Lease with it. The
// operator builds the parts of one (operator.ts, the composition root), starts it and ends it (at
// once when the Lease is lost, with a drain on SIGTERM); watch events reach it as keys (mappers.ts),
// relay events as keys plus metrics and Events.
import { keyOf, ObjectKey, parseKey } from '../api/key';
import type { PortForward } from '../api/v1alpha1';
import type { EventRecorder } from '../kube/events';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { LogSampler } from '../observability/sampler';
import type { Reconciler } from '../reconcile/reconciler';
import type { ClientRule, RelayEngine, RelayEvent } from '../relay';
import type { WatchCaches } from './caches';
import { reconcileHandler } from './handler';
import type { OwnWrites } from './own-writes';
import { Priority, WorkQueue } from './workqueue';

/** What every term shares. */
export interface TermDeps {
  workers: number;
  caches: WatchCaches;
  events: EventRecorder;
  metrics: Metrics;
  log: Logger;
  /** Whether this operator serves `pf` (its class). */
  serves: (pf: PortForward) => boolean;
  /** The operator's own status writes, whose echoes run nothing (told when a pass starts). */
  ownWrites?: OwnWrites;
}

/** What one term owns: a relay of its own, and the reconciler in front of it. */
export interface TermParts {
  relay: RelayEngine;
  reconciler: Reconciler;
}

export class ServingTerm {
  readonly relay: RelayEngine;
  private readonly queue: WorkQueue;
  private readonly reconciler: Reconciler;
  /** Refused clients are logged at most once per PortForward and interval. */
  private readonly refusalLog = new LogSampler(10_000);

  constructor(
    private readonly d: TermDeps,
    { relay, reconciler }: TermParts,
  ) {
    this.relay = relay;
    this.reconciler = reconciler;
    this.queue = new WorkQueue({
      workers: d.workers,
      onDequeue: (ms, priority) => d.metrics.queueWaitSeconds.observe({ priority }, ms / 1000),
    });
    d.metrics.observeSessions(relay);
    relay.onEvent((ev) => this.onRelayEvent(ev));
  }

  /**
   * Claims the ports recorded in status, then runs every key in `keys`, at low priority: a change
   * made meanwhile (a new forward applied while 10,000 are restored) runs first.
   */
  start(pfs: readonly PortForward[]): void {
    const m = this.d.metrics;
    this.reconciler.restoreRecordedPorts(pfs);
    this.queue.start(
      reconcileHandler({
        reconcile: (key) => {
          this.d.ownWrites?.passStarts(key);
          return this.reconciler.reconcile(key);
        },
        queue: this.queue,
        log: this.d.log,
        metrics: {
          startTimer: () => m.reconcileSeconds.startTimer(),
          result: (result) => m.reconcileTotal.inc({ result }),
          queueDepth: (depth) => m.queueDepth.set(depth),
        },
      }),
    );
    this.enqueue(
      pfs.map((pf) => keyOf(pf)),
      'low',
    );
  }

  enqueue(keys: readonly ObjectKey[], priority: Priority = 'normal'): void {
    for (const key of keys) this.queue.add(key, priority);
  }

  /**
   * Runs `keys` now, with their backoff forgotten (the API server is reachable again), at low priority
   * like a new term's: changes made meanwhile go first.
   */
  catchUp(keys: readonly ObjectKey[]): void {
    for (const key of keys) {
      this.queue.forget(key);
      this.queue.add(key, 'low');
    }
  }

  /** Whether the relay still holds a session of `key`. */
  holds(key: ObjectKey): boolean {
    return this.reconciler.holds(key);
  }

  /** Stops taking keys, then closes the listeners (new clients are refused); connections go on. */
  async stopAccepting(): Promise<void> {
    await this.queue.shutdown();
    await this.relay.stopAccepting();
  }

  activeConnections(): number {
    return this.relay.keys().reduce((n, k) => n + (this.relay.stats(k)?.active ?? 0), 0);
  }

  /** Ends the term: open connections get `graceMs` to finish (0: closed at once). */
  async stop(graceMs: number): Promise<void> {
    await this.queue.shutdown();
    await this.relay.close(graceMs);
  }

  private onRelayEvent(ev: RelayEvent): void {
    const { metrics, events } = this.d;
    if (ev.type === 'tunnelOpened') {
      metrics.connected(ev.key, ev.connectMs, ev.transport);
      return;
    }
    const { namespace, name } = parseKey(ev.key);
    const cached = this.d.caches.portForward(namespace, name);
    // A late event of a forward that just moved to another class: no Event about it from here.
    const pf = cached && this.d.serves(cached) ? cached : undefined;
    if (ev.type === 'clientRefused') {
      if (pf) this.clientRefused(pf, ev.address, ev.rule);
    } else if (ev.type === 'tunnelError') {
      metrics.tunnelError(ev.key, ev.kind);
      if (pf) events.record(pf, 'Warning', 'TunnelFailed', ev.message);
    } else if (ev.type === 'sessionLost') {
      if (pf) events.record(pf, 'Warning', 'RelayRestarted', ev.message);
    }
    // A closed connection only moves counters (written at the status interval anyway); a failure,
    // a refused client (its clientRefused event), a pod found gone at a dial (podGone) or a lost
    // session is news for status at once.
    this.queue.add(ev.key, ev.type === 'connectionClosed' ? 'low' : 'normal');
  }

  /** Counts a refused client in status and metrics, and logs it (rate-limited, with its pod). */
  private clientRefused(pf: PortForward, address: string, rule: ClientRule): void {
    const key = keyOf(pf);
    const why = this.reconciler.clientRefused(pf, address, rule);
    this.d.metrics.clientRefused(key, why.reason);
    const held = this.refusalLog.take(key);
    if (held === undefined) return;
    this.d.log.info('refused a client', {
      portforward: key,
      remote: address,
      reason: why.reason,
      ...(why.pod ? { pod: why.pod } : {}),
      ...(held > 0 ? { alsoRefusedSinceLastLine: held } : {}),
    });
  }
}
