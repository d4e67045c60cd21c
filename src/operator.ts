// The operator: watches PortForwards and their possible targets, feeds a keyed work queue, and runs
// the reconciler with the relay engine behind it. @dot-i/k8s-operator is the base class (lifecycle and
// kubeconfig), but three of its parts are bypassed, each where it is used below (ADR 2).
//
// The composition root: every part of the operator is built here, top to bottom. Watch caches run on
// every replica; watch events become keys through controller/mappers.ts. The work queue, the relay
// (listeners) and the reconciler form a serving term (controller/term.ts; its relay and reconciler
// are built in newTerm below) that runs while this replica serves: always without --leader-elect,
// and while it holds the Lease with it. Losing the Lease ends the term at once; SIGTERM ends it with
// a drain. Nothing here exits the process: a failure that must end it goes to main.ts (onFatal).
//
// An operator serves the PortForwards of its class only (--class, spec.className): the reconciler sees
// no other, so it never binds, writes status for or records Events about another class's forward, and
// one that moves away is closed like a deleted one. Status writes test the class (kube/status.ts).
import Operator from '@dot-i/k8s-operator';
import * as k8s from '@kubernetes/client-node';
import type * as http from 'node:http';
import * as os from 'node:os';
import { keyOf } from './api/key';
import type { PortForward } from './api/v1alpha1';
import type { Config } from './config/flags';
import { WatchCaches } from './controller/caches';
import { OwnWrites } from './controller/own-writes';
import { RemoteClusters } from './controller/remote-clusters';
import { stopThenRelease } from './controller/handover';
import { ServingTerm, TermDeps } from './controller/term';
import { routeWatchEvents } from './controller/watches';
import { EventRecorder } from './kube/events';
import { podNamespace } from './kube/client';
import { candidateIdentity, LeaderElector, leaseName } from './kube/leader';
import { constructOnKubeConfig } from './kube/operator-base';
import { StatusWriter, statusFieldManager } from './kube/status';
import { realTimers } from './kube/timers';
import { serveMetrics, serveProbes } from './observability/http';
import type { Logger } from './observability/logger';
import { Metrics } from './observability/metrics';
import { isLoopbackOnly } from './reconcile/clients';
import { PortAllocator } from './reconcile/ports';
import { Reconciler } from './reconcile/reconciler';
import { kubeAccess, RelayLogger, RelayWorker } from './relay';

/** What every serving term shares, and what a term's reconciler writes status with. */
type Shared = TermDeps & { statusWriter: StatusWriter; remotes: RemoteClusters };

/** How long a shutdown waits for the listeners to close before it releases the Lease regardless. */
const STOP_ACCEPTING_DEADLINE_MS = 5_000;

/** The operator's ServiceAccount (deploy/ sets POD_SERVICE_ACCOUNT): named in the RoleBinding a message asks for. */
const serviceAccount = (): string =>
  `${podNamespace() ?? 'portforward-system'}/${process.env.POD_SERVICE_ACCOUNT || 'portforward-operator'}`;

export class PortForwardOperator extends Operator {
  /** What every serving term shares, set by init(). */
  private shared: Shared | undefined;
  private fatal: (message: string, err: unknown) => void = () => undefined;
  private readonly metrics = new Metrics();
  private elector: LeaderElector | undefined;
  private term: ServingTerm | undefined;
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
    const cfg = this.cfg;
    // Namespace labels matter (namespaceSelector) only on a listener other hosts can reach: Namespaces
    // are watched only then, so an operator on a workstation needs no cluster-wide right.
    const remote = [cfg.listenAddress, ...cfg.allowedListenAddresses].some((a) => !isLoopbackOnly(a));
    const caches = new WatchCaches(kc, cfg.namespaces, this.log, { namespaces: remote });
    const instance = cfg.className ? `${os.hostname()}/${cfg.className}` : os.hostname();
    const serves = (pf: PortForward): boolean => (pf.spec?.className ?? '') === cfg.className;
    const events = new EventRecorder(kc, instance, this.log);
    const ownWrites = new OwnWrites();
    // A write whose echo the cache already holds (it came before the response) is not noted: it ran.
    const statusWriter = new StatusWriter(kc, statusFieldManager(cfg.className), (ns, name, rv) => {
      if (caches.portForward(ns, name)?.metadata?.resourceVersion !== rv)
        ownWrites.wrote(keyOf({ namespace: ns, name }), rv);
    });
    const { metrics, log } = this;
    // Remote clusters (spec.kubeConfig): their watches run while a PortForward of this term uses them.
    const remotes = new RemoteClusters({
      kc,
      policy: { allowExec: cfg.insecureKubeConfigExec, allowInsecureTls: cfg.insecureKubeConfigTls },
      serviceAccount: serviceAccount(),
      logger: log,
      enqueue: (keys) => this.term?.enqueue(keys),
    });
    this.shared = {
      workers: cfg.workers,
      caches,
      events,
      statusWriter,
      metrics,
      log,
      serves,
      remotes,
      ownWrites,
    };
    // Events that must not be lost are sent at once when the API server is back (a relist).
    routeWatchEvents(
      caches,
      { serves, listenAddress: cfg.listenAddress },
      () => this.term,
      () => events.retryNow(),
      ownWrites,
    );
    await caches.start();
    this.log.info('operator started', {
      class: cfg.className || '(none)',
      namespaces: cfg.namespaces.length ? cfg.namespaces : 'all',
      listenAddress: cfg.listenAddress,
      portRange: `${cfg.portRange.min}-${cfg.portRange.max}`,
      leaderElect: cfg.leaderElect,
    });
    if (cfg.leaderElect) this.campaign();
    else this.startServing();
  }

  /** Leader election: serve while holding the Lease (one Lease per class). */
  private campaign(): void {
    const namespace = this.cfg.leaderElectionNamespace || podNamespace() || 'portforward-system';
    const lease = leaseName(this.cfg.className);
    this.elector = new LeaderElector({
      namespace,
      name: lease,
      identity: candidateIdentity(),
      kubeConfig: this.kubeConfig,
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

  /** `handler` learns of a failure that leaves the operator unable to work; main.ts decides the exit. */
  onFatal(handler: (message: string, err: unknown) => void): void {
    this.fatal = handler;
  }

  /** Starts the probe and metrics endpoints, then the controller. */
  async run(): Promise<void> {
    if (this.cfg.healthProbeBindAddress) {
      const ready = (): { ok: boolean; reason: string } => this.readiness();
      this.servers.push(await serveProbes(this.cfg.healthProbeBindAddress, { healthy: () => true, ready }));
    }
    if (this.cfg.metricsBindAddress) {
      this.servers.push(await serveMetrics(this.cfg.metricsBindAddress, this.metrics));
    }
    await this.start();
  }

  /** Ready while this replica serves the forwards: caches synced, and the leader when electing. */
  private readiness(): { ok: boolean; reason: string } {
    if (this.stopping) return { ok: false, reason: 'shutting down' };
    if (!this.shared?.caches.synced()) return { ok: false, reason: 'watch caches not synced' };
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
    // The Lease is handed over even when the listeners cannot be closed in time (controller/handover.ts).
    const stopped = await stopThenRelease(
      realTimers,
      () => this.term?.stopAccepting(),
      () => this.elector?.stop({ release: true }),
      STOP_ACCEPTING_DEADLINE_MS,
    );
    if (!stopped.closed)
      this.log.warn('listeners not closed; the Lease was released anyway', { error: stopped.error });
    const active = this.term?.activeConnections() ?? 0;
    if (active > 0) this.log.info('draining open connections', { active, graceMs });
    await this.stopServing(graceMs);
    await this.shared?.events.close();
    this.shared?.caches.stop();
    this.shared?.remotes.stop();
    super.stop();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }

  private startServing(): void {
    if (this.term || !this.shared) return;
    const { caches, serves } = this.shared;
    this.term = new ServingTerm(this.shared, this.newTerm(this.shared));
    this.term.start(caches.portForwards().filter((pf) => serves(pf)));
  }

  /** A term's own relay (on a worker thread) and the reconciler in front of it. */
  private newTerm(d: Shared): { relay: RelayWorker; reconciler: Reconciler } {
    const { cfg, kubeConfig: kc } = this;
    const { caches, log } = d;
    const relay = new RelayWorker({
      transport: cfg.transport,
      access: kubeAccess(kc),
      clusterAccess: (id) => d.remotes.accessFor(id),
      proxyUrl: kc.getCurrentCluster()?.proxyUrl,
      logger: relayLogger(log),
      logLevel: cfg.logLevel,
      spdy: { warmIdleMs: cfg.sessionIdleTimeoutMs, maxWarmSessions: cfg.maxWarmSessions },
    });
    // The worker thread is part of the program: one that cannot start at all is a broken install.
    relay.ready().catch((err: unknown) => this.fatal('the relay could not start', err));
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
      clusters: d.remotes,
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
    return { relay, reconciler };
  }

  private async stopServing(graceMs: number): Promise<void> {
    const term = this.term;
    this.term = undefined;
    await term?.stop(graceMs);
    // A new term's reconciles take up the remote clusters they use again.
    this.shared?.remotes.stop();
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
