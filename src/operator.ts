// The operator: watches PortForwards and their possible targets, feeds a keyed work queue, and runs
// the reconciler with the relay engine behind it. @dot-i/k8s-operator is the base class (lifecycle and
// kubeconfig), but three of its parts are bypassed, each where it is used below (ADR 2).
//
// Watch caches run on every replica. The work queue, the relay (listeners) and the reconciler form a
// "serving term" that runs while this replica serves: always without --leader-elect, and while it holds
// the Lease with it. Losing the Lease ends the term at once; SIGTERM ends it with a drain.
import Operator from '@dot-i/k8s-operator';
import * as k8s from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import type * as http from 'node:http';
import * as os from 'node:os';
import { PortForward } from './api/v1alpha1';
import type { Config } from './config/flags';
import { WatchCaches } from './controller/caches';
import { TerminalError } from './controller/result';
import { WorkQueue } from './controller/workqueue';
import { apiHint } from './kube/client';
import { EventRecorder } from './kube/events';
import { DEFAULT_LEASE_NAME, LeaderElector, podNamespace } from './kube/leader';
import { constructOnKubeConfig } from './kube/operator-base';
import { StatusWriter } from './kube/status';
import { serveMetrics, serveProbes } from './observability/http';
import { errorMessage, Logger } from './observability/logger';
import { Metrics } from './observability/metrics';
import { PortAllocator } from './reconcile/ports';
import { Reconciler } from './reconcile/reconciler';
import { createRelayEngine, kubeTransport } from './relay';
import type { RelayLogger } from './relay/logger';
import type { RelayEngine, RelayEvent } from './relay/types';

interface Term {
  queue: WorkQueue;
  relay: RelayEngine;
  reconciler: Reconciler;
}

export class PortForwardOperator extends Operator {
  private caches!: WatchCaches;
  private events!: EventRecorder;
  private statusWriter!: StatusWriter;
  private readonly metrics = new Metrics();
  private elector: LeaderElector | undefined;
  private term: Term | undefined;
  private servers: http.Server[] = [];
  private stopping = false;

  private constructor(
    private readonly cfg: Config,
    kc: k8s.KubeConfig,
    private readonly log: Logger,
  ) {
    super({
      debug: (m) => log.debug(m),
      info: (m) => log.info(m),
      warn: (m) => log.warn(m),
      error: (m) => log.error(m),
    });
    this.kubeConfig = kc;
    this.k8sApi = kc.makeApiClient(k8s.CoreV1Api);
  }

  /**
   * The operator on `kc`: dot-i's constructor would search for the default kubeconfig, and a broken
   * one must not stop an operator given --kubeconfig (constructOnKubeConfig).
   */
  static create(cfg: Config, kc: k8s.KubeConfig, log: Logger): PortForwardOperator {
    return constructOnKubeConfig(kc, () => new PortForwardOperator(cfg, kc, log));
  }

  /**
   * Not this.watchResource(): dot-i exits the process on any watch error and runs every event of every
   * resource through one serial queue. ResilientInformer restarts watches, and the keyed WorkQueue
   * runs different PortForwards in parallel, one key at a time.
   */
  protected async init(): Promise<void> {
    const kc = this.kubeConfig;
    this.caches = new WatchCaches(kc, this.cfg.namespaces, this.log);
    this.events = new EventRecorder(kc, os.hostname(), this.log);
    this.statusWriter = new StatusWriter(kc);
    const caches = this.caches;
    caches.onChange('PortForward', (pf) => this.term?.queue.add(keyOf(pf)));
    caches.onChange('Pod', (pod) => this.enqueueAffected(pod, (t) => !t.pod || t.pod === pod.metadata?.name));
    caches.onChange('Service', (o) => this.enqueueAffected(o, (t) => t.service === o.metadata?.name));
    caches.onChange('Deployment', (o) => this.enqueueAffected(o, (t) => t.deployment === o.metadata?.name));
    caches.onChange('StatefulSet', (o) => this.enqueueAffected(o, (t) => t.statefulSet === o.metadata?.name));
    // After an API server outage, every PortForward's key may be deep in a backoff (its status writes
    // failed, again and again while connections failed) and a relist reports only objects that changed:
    // catch up at once instead of minutes later, and send the Events that must not be lost.
    caches.onRecover('PortForward', () => this.catchUp());
    await caches.start();
    this.log.info('operator started', {
      namespaces: this.cfg.namespaces.length ? this.cfg.namespaces : 'all',
      listenAddress: this.cfg.listenAddress,
      portRange: `${this.cfg.portRange.min}-${this.cfg.portRange.max}`,
      leaderElect: this.cfg.leaderElect,
    });

    if (!this.cfg.leaderElect) {
      this.startServing();
      return;
    }
    const namespace = this.cfg.leaderElectionNamespace || podNamespace() || 'portforward-system';
    this.elector = new LeaderElector({
      namespace,
      name: DEFAULT_LEASE_NAME,
      identity: `${process.env.POD_NAME ?? os.hostname()}_${randomUUID()}`,
      kubeConfig: kc,
      logger: this.log,
      onStartedLeading: () => {
        this.log.info('leading: binding the forwards', { lease: `${namespace}/${DEFAULT_LEASE_NAME}` });
        this.startServing();
      },
      // Losing the Lease (not shutting down) stops at once: another replica is taking the ports over.
      onStoppedLeading: async () => {
        if (this.stopping) return;
        this.log.warn('lost the Lease: closing every listener');
        await this.stopServing(0);
      },
      onNewLeader: (id) => this.log.info('leader', { identity: id }),
    });
    void this.elector.run();
  }

  /** Starts the probe and metrics endpoints, then the controller. */
  async run(): Promise<void> {
    if (this.cfg.healthProbeBindAddress) {
      this.servers.push(
        await serveProbes(this.cfg.healthProbeBindAddress, {
          healthy: () => true,
          ready: () => this.readiness(),
        }),
      );
    }
    if (this.cfg.metricsBindAddress) {
      this.servers.push(await serveMetrics(this.cfg.metricsBindAddress, this.metrics));
    }
    await this.start();
  }

  /** Ready while this replica serves the forwards: caches synced, and the leader when electing. */
  private readiness(): { ok: boolean; reason: string } {
    if (this.stopping) return { ok: false, reason: 'shutting down' };
    if (!this.caches?.synced()) return { ok: false, reason: 'watch caches not synced' };
    if (!this.term)
      return { ok: false, reason: this.elector ? 'standby: another replica holds the Lease' : 'starting' };
    return { ok: true, reason: '' };
  }

  /**
   * SIGTERM: readiness turns false, listeners stop accepting, the Lease is released (a standby binds
   * the ports at once), open connections get `graceMs` to finish, then everything is closed.
   */
  async shutdown(graceMs = this.cfg.shutdownGraceMs): Promise<void> {
    this.stopping = true;
    const term = this.term;
    if (term) {
      await term.queue.shutdown();
      await term.relay.stopAccepting();
    }
    await this.elector?.stop({ release: true });
    if (term) {
      const active = term.relay.keys().reduce((n, k) => n + (term.relay.stats(k)?.active ?? 0), 0);
      if (active > 0) this.log.info('draining open connections', { active, graceMs });
    }
    await this.stopServing(graceMs);
    await this.events?.close();
    this.caches?.stop();
    super.stop();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }

  private startServing(): void {
    if (this.term) return;
    const logger = relayLogger(this.log);
    const relay = createRelayEngine({
      transport: kubeTransport(this.cfg.transport, this.kubeConfig, { logger }),
      logger,
    });
    const queue = new WorkQueue({ workers: this.cfg.workers });
    const reconciler = new Reconciler({
      getPortForward: (ns, name) => this.caches.portForward(ns, name),
      caches: this.caches,
      relay,
      allocator: new PortAllocator(this.cfg.portRange),
      // Not dot-i's patchResourceStatus: it swallows errors, and a lost status write must be retried.
      writeStatus: (ns, name, status) => this.statusWriter.replace(ns, name, status),
      events: this.events,
      config: this.cfg,
      logger: this.log,
      onRetarget: (key) => this.metrics.retarget(key),
    });
    const term: Term = { queue, relay, reconciler };
    this.metrics.observeSessions(relay);
    relay.onEvent((ev) => this.onRelayEvent(term, ev));
    reconciler.restoreRecordedPorts(this.caches.portForwards());
    queue.start(
      async (key) => {
        const end = this.metrics.reconcileSeconds.startTimer();
        try {
          const r = await reconciler.reconcile(key);
          this.metrics.reconcileTotal.inc({ result: 'success' });
          return r;
        } catch (err) {
          this.metrics.reconcileTotal.inc({ result: 'error' });
          throw err;
        } finally {
          end();
          this.metrics.queueDepth.set(queue.depth);
        }
      },
      (key, err, retryInMs) => {
        const hint = apiHint(err);
        this.log.warn(
          retryInMs === undefined || err instanceof TerminalError
            ? 'reconcile failed'
            : 'reconcile failed; retrying',
          {
            portforward: key,
            error: errorMessage(err),
            ...(hint ? { hint } : {}),
            retryInMs,
          },
        );
      },
    );
    this.term = term;
    for (const pf of this.caches.portForwards()) queue.add(keyOf(pf));
  }

  private async stopServing(graceMs: number): Promise<void> {
    const term = this.term;
    if (!term) return;
    this.term = undefined;
    await term.queue.shutdown();
    await term.relay.close(graceMs);
  }

  private onRelayEvent(term: Term, ev: RelayEvent): void {
    if (ev.type === 'tunnelOpened') {
      this.metrics.connected(ev.key, ev.connectMs, ev.transport);
      return;
    }
    if (ev.type === 'tunnelError') {
      this.metrics.tunnelError(ev.key, ev.kind);
      const i = ev.key.indexOf('/');
      const pf = this.caches.portForward(ev.key.slice(0, i), ev.key.slice(i + 1));
      if (pf) this.events.record(pf, 'Warning', 'TunnelFailed', ev.message);
    }
    term.queue.add(ev.key);
  }

  /** The API server is reachable again: reconcile every PortForward now, with its backoff forgotten. */
  private catchUp(): void {
    this.events.retryNow();
    const queue = this.term?.queue;
    if (!queue) return;
    for (const pf of this.caches.portForwards()) {
      queue.forget(keyOf(pf));
      queue.add(keyOf(pf));
    }
  }

  /**
   * An object a PortForward may target changed: run the PortForwards of its namespace whose target
   * may involve it. A pod change runs every non-pod target of the namespace, since a label change
   * can move a pod into or out of a selector.
   */
  private enqueueAffected(
    obj: k8s.KubernetesObject,
    involves: (t: PortForward['spec']['target']) => boolean,
  ): void {
    const ns = obj.metadata?.namespace;
    const queue = this.term?.queue;
    if (!ns || !queue) return;
    for (const pf of this.caches.portForwards(ns))
      if (pf.spec?.target && involves(pf.spec.target)) queue.add(keyOf(pf));
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

export function keyOf(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}
