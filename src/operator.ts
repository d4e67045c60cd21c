// The operator: watches PortForwards and their possible targets, feeds a keyed work queue, and runs
// the reconciler with the relay engine behind it. @dot-i/k8s-operator is the base class (lifecycle and
// kubeconfig), but three of its parts are bypassed, each where it is used below (ADR 2).
//
// Watch caches run on every replica. The work queue, the relay (listeners) and the reconciler form a
// "serving term" that runs while this replica serves: always without --leader-elect, and while it holds
// the Lease with it. Losing the Lease ends the term at once; SIGTERM ends it with a drain.
//
// An operator serves the PortForwards of its class only (--class, spec.className): the reconciler sees
// no other, so it never binds, writes status for or records Events about another class's forward, and
// one that moves away is closed like a deleted one. Status writes test the class (kube/status.ts).
import Operator from '@dot-i/k8s-operator';
import * as k8s from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import type * as http from 'node:http';
import * as os from 'node:os';
import { PortForward } from './api/v1alpha1';
import type { Config } from './config/flags';
import { WatchCaches } from './controller/caches';
import { TerminalError } from './reconcile/result';
import { WorkQueue } from './controller/workqueue';
import { apiHint } from './kube/client';
import { EventRecorder } from './kube/events';
import { DEFAULT_LEASE_NAME, LeaderElector, podNamespace } from './kube/leader';
import { constructOnKubeConfig } from './kube/operator-base';
import { StatusWriter, statusFieldManager } from './kube/status';
import { serveMetrics, serveProbes } from './observability/http';
import { errorMessage, Logger } from './observability/logger';
import { Metrics } from './observability/metrics';
import { LogSampler } from './observability/sampler';
import { involvesNamespace, isLoopbackOnly, selectsNamespaces } from './reconcile/clients';
import { PortAllocator } from './reconcile/ports';
import { Reconciler } from './reconcile/reconciler';
import { kubeAccess, RelayWorker } from './relay';
import type { RelayLogger } from './relay/logger';
import type { ClientRule, RelayEngine, RelayEvent } from './relay/types';
import { keyOf, parseKey } from './api/key';

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
  /** Refused clients are logged at most once per PortForward and interval. */
  private readonly refusalLog = new LogSampler(10_000);

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
    const cfg = this.cfg;
    // Namespace labels matter (namespaceSelector) only on a listener other hosts can reach: Namespaces
    // are watched only then, so an operator on a workstation needs no cluster-wide right.
    const remote = [cfg.listenAddress, ...cfg.allowedListenAddresses].some((a) => !isLoopbackOnly(a));
    this.caches = new WatchCaches(kc, cfg.namespaces, this.log, { namespaces: remote });
    const instance = cfg.className ? `${os.hostname()}/${cfg.className}` : os.hostname();
    this.events = new EventRecorder(kc, instance, this.log);
    this.statusWriter = new StatusWriter(kc, statusFieldManager(cfg.className));
    const caches = this.caches;
    // Another class's PortForward runs here only to close what this operator still holds of it.
    caches.onChange('PortForward', (pf) => {
      const key = keyOf(pf);
      if (this.serves(pf as PortForward) || this.term?.reconciler.holds(key)) this.term?.queue.add(key);
    });
    caches.onClientsChange((namespaces) => this.enqueueClientsChanged(namespaces));
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
      class: this.cfg.className || '(none)',
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
    // Operators of different classes serve different forwards: each class elects its own leader.
    const lease = this.cfg.className ? `${DEFAULT_LEASE_NAME}-${this.cfg.className}` : DEFAULT_LEASE_NAME;
    this.elector = new LeaderElector({
      namespace,
      name: lease,
      identity: `${process.env.POD_NAME ?? os.hostname()}_${randomUUID()}`,
      kubeConfig: kc,
      logger: this.log,
      onStartedLeading: () => {
        this.log.info('leading: binding the forwards', { lease: `${namespace}/${lease}` });
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
    const relay = new RelayWorker({
      transport: this.cfg.transport,
      access: kubeAccess(this.kubeConfig),
      proxyUrl: this.kubeConfig.getCurrentCluster()?.proxyUrl,
      logger: relayLogger(this.log),
      logLevel: this.cfg.logLevel,
    });
    // The worker thread is part of the program: one that cannot start at all is a broken install.
    relay.ready().catch((err: unknown) => {
      this.log.error('the relay could not start', { error: errorMessage(err) });
      process.exit(1);
    });
    const queue = new WorkQueue({ workers: this.cfg.workers });
    const reconciler: Reconciler = new Reconciler({
      getPortForward: (ns, name) => {
        const pf = this.caches.portForward(ns, name);
        if (!pf || this.serves(pf)) return pf;
        if (reconciler.holds(keyOf({ namespace: ns, name }))) {
          this.log.info('PortForward moved to another class: closing its listeners', {
            portforward: keyOf({ namespace: ns, name }),
            class: pf.spec.className ?? '(none)',
          });
        }
        return undefined; // another operator's: to this one as if deleted
      },
      caches: this.caches,
      clients: this.caches,
      relay,
      allocator: new PortAllocator(this.cfg.portRange),
      // Not dot-i's patchResourceStatus: it swallows errors, and a lost status write must be retried.
      writeStatus: (ns, name, status) => this.statusWriter.replace(ns, name, status, this.cfg.className),
      events: this.events,
      config: this.cfg,
      logger: this.log,
      onRetarget: (key) => this.metrics.retarget(key),
    });
    const term: Term = { queue, relay, reconciler };
    this.metrics.observeSessions(relay);
    relay.onEvent((ev) => this.onRelayEvent(term, ev));
    const mine = this.caches.portForwards().filter((pf) => this.serves(pf));
    reconciler.restoreRecordedPorts(mine);
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
    for (const pf of mine) queue.add(keyOf(pf));
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
    const { namespace, name } = parseKey(ev.key);
    const cached = this.caches.portForward(namespace, name);
    // A late event of a forward that just moved to another class: no Event about it from here.
    const pf = cached && this.serves(cached) ? cached : undefined;
    if (ev.type === 'clientRefused') {
      if (pf) this.clientRefused(term, pf, ev.address, ev.rule);
    } else if (ev.type === 'tunnelError') {
      this.metrics.tunnelError(ev.key, ev.kind);
      if (pf) this.events.record(pf, 'Warning', 'TunnelFailed', ev.message);
    } else if (ev.type === 'sessionLost') {
      if (pf) this.events.record(pf, 'Warning', 'RelayRestarted', ev.message);
    }
    term.queue.add(ev.key);
  }

  /** Whether this operator serves `pf`: its spec.className is this operator's --class. */
  private serves(pf: PortForward): boolean {
    return (pf.spec?.className ?? '') === this.cfg.className;
  }

  /** Counts a refused client in status and metrics, and logs it (rate-limited, with its pod). */
  private clientRefused(term: Term, pf: PortForward, address: string, rule: ClientRule): void {
    const key = keyOf(pf);
    const why = term.reconciler.clientRefused(pf, address, rule);
    this.metrics.clientRefused(key, why.reason);
    const held = this.refusalLog.take(key);
    if (held === undefined) return;
    this.log.info('refused a client', {
      portforward: key,
      remote: address,
      reason: why.reason,
      ...(why.pod ? { pod: why.pod } : {}),
      ...(held > 0 ? { alsoRefusedSinceLastLine: held } : {}),
    });
  }

  /**
   * Who may connect may have changed (pods' addresses or labels in `namespaces`, or a namespace's
   * labels): run the PortForwards of this class whose rule looks there.
   */
  private enqueueClientsChanged(namespaces: string[] | 'all'): void {
    const queue = this.term?.queue;
    if (!queue) return;
    for (const pf of this.caches.portForwards()) {
      if (!pf.spec || !this.serves(pf)) continue;
      const address = pf.spec.listenAddress ?? this.cfg.listenAddress;
      const hit =
        namespaces === 'all'
          ? selectsNamespaces(pf, address)
          : namespaces.some((ns) => involvesNamespace(pf, address, ns, this.caches.namespaceLabels(ns)));
      if (hit) queue.add(keyOf(pf));
    }
  }

  /** The API server is reachable again: reconcile every PortForward now, with its backoff forgotten. */
  private catchUp(): void {
    this.events.retryNow();
    const queue = this.term?.queue;
    if (!queue) return;
    for (const pf of this.caches.portForwards()) {
      if (!this.serves(pf)) continue;
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
      if (pf.spec?.target && this.serves(pf) && involves(pf.spec.target)) queue.add(keyOf(pf));
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
