// A serving term: the work queue, the reconciler and the relay (its listeners) while this replica
// serves the forwards, always without --leader-elect and while it holds the Lease with it. The
// operator starts one and ends it (at once when the Lease is lost, with a drain on SIGTERM); watch
// events reach it as keys (mappers.ts), relay events as keys plus metrics and Events.
import type * as k8s from '@kubernetes/client-node';
import { keyOf, ObjectKey, parseKey } from '../api/key';
import type { PortForward } from '../api/v1alpha1';
import type { Config } from '../config/flags';
import type { EventRecorder } from '../kube/events';
import type { StatusWriter } from '../kube/status';
import { errorMessage, Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { LogSampler } from '../observability/sampler';
import { PortAllocator } from '../reconcile/ports';
import { Reconciler } from '../reconcile/reconciler';
import { kubeAccess, RelayWorker } from '../relay';
import type { ClientRule, RelayEngine, RelayEvent, RelayLogger } from '../relay';
import type { WatchCaches } from './caches';
import { reconcileHandler } from './handler';
import { WorkQueue } from './workqueue';

export interface TermDeps {
  cfg: Config;
  kubeConfig: k8s.KubeConfig;
  caches: WatchCaches;
  events: EventRecorder;
  statusWriter: StatusWriter;
  metrics: Metrics;
  log: Logger;
  /** Whether this operator serves `pf` (its class). */
  serves: (pf: PortForward) => boolean;
}

export class ServingTerm {
  readonly relay: RelayEngine;
  private readonly queue: WorkQueue;
  private readonly reconciler: Reconciler;
  /** Refused clients are logged at most once per PortForward and interval. */
  private readonly refusalLog = new LogSampler(10_000);

  constructor(private readonly d: TermDeps) {
    const { cfg, caches, log } = d;
    const relay = new RelayWorker({
      transport: cfg.transport,
      access: kubeAccess(d.kubeConfig),
      proxyUrl: d.kubeConfig.getCurrentCluster()?.proxyUrl,
      logger: relayLogger(log),
      logLevel: cfg.logLevel,
    });
    // The worker thread is part of the program: one that cannot start at all is a broken install.
    relay.ready().catch((err: unknown) => {
      log.error('the relay could not start', { error: errorMessage(err) });
      process.exit(1);
    });
    this.relay = relay;
    this.queue = new WorkQueue({ workers: cfg.workers });
    const reconciler: Reconciler = new Reconciler({
      getPortForward: (ns, name) => {
        const pf = caches.portForward(ns, name);
        if (!pf || d.serves(pf)) return pf;
        const key = keyOf({ namespace: ns, name });
        if (reconciler.holds(key)) {
          log.info('PortForward moved to another class: closing its listeners', {
            portforward: key,
            class: pf.spec.className ?? '(none)',
          });
        }
        return undefined; // another operator's: to this one as if deleted
      },
      caches,
      clients: caches,
      relay,
      allocator: new PortAllocator(cfg.portRange),
      // Not dot-i's patchResourceStatus: it swallows errors, and a lost status write must be retried.
      writeStatus: (ns, name, status) => d.statusWriter.replace(ns, name, status, cfg.className),
      events: d.events,
      config: cfg,
      logger: log,
      onRetarget: (key) => d.metrics.retarget(key),
    });
    this.reconciler = reconciler;
    d.metrics.observeSessions(relay);
    relay.onEvent((ev) => this.onRelayEvent(ev));
  }

  /** Claims the ports recorded in status, then runs every key in `keys`. */
  start(pfs: readonly PortForward[]): void {
    const m = this.d.metrics;
    this.reconciler.restoreRecordedPorts(pfs);
    this.queue.start(
      reconcileHandler({
        reconcile: (key) => this.reconciler.reconcile(key),
        queue: this.queue,
        log: this.d.log,
        metrics: {
          startTimer: () => m.reconcileSeconds.startTimer(),
          result: (result) => m.reconcileTotal.inc({ result }),
          queueDepth: (depth) => m.queueDepth.set(depth),
        },
      }),
    );
    this.enqueue(pfs.map((pf) => keyOf(pf)));
  }

  enqueue(keys: readonly ObjectKey[]): void {
    for (const key of keys) this.queue.add(key);
  }

  /** Runs `keys` now, with their backoff forgotten (the API server is reachable again). */
  catchUp(keys: readonly ObjectKey[]): void {
    for (const key of keys) {
      this.queue.forget(key);
      this.queue.add(key);
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
    this.queue.add(ev.key);
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

/** The relay names a session `key`; the operator's log lines name it `portforward`, on every line. */
function relayLogger(log: Logger): RelayLogger {
  const rename = (meta?: Record<string, unknown>): Record<string, unknown> | undefined => {
    if (!meta || !('key' in meta)) return meta;
    const { key, ...rest } = meta;
    return { portforward: key, ...rest };
  };
  return {
    debug: (m, meta) => log.debug(m, rename(meta)),
    info: (m, meta) => log.info(m, rename(meta)),
    warn: (m, meta) => log.warn(m, rename(meta)),
    error: (m, meta) => log.error(m, rename(meta)),
  };
}
