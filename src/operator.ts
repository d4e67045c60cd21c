// The operator: watches PortForwards and pods, feeds a keyed work queue, and runs the reconciler with
// the relay engine behind it. @dot-i/k8s-operator is the base class (lifecycle and kubeconfig), but
// three of its parts are bypassed, each where it is used below.
import Operator from '@dot-i/k8s-operator';
import * as k8s from '@kubernetes/client-node';
import type * as http from 'node:http';
import * as os from 'node:os';
import { PortForward, PortForwardStatus } from './api/v1alpha1';
import type { Config } from './config/flags';
import { WatchCaches } from './controller/caches';
import { TerminalError } from './controller/result';
import { WorkQueue } from './controller/workqueue';
import { EventRecorder } from './kube/events';
import { StatusWriter } from './kube/status';
import { serveMetrics, serveProbes } from './observability/http';
import { errorMessage, Logger } from './observability/logger';
import { Metrics } from './observability/metrics';
import { PortAllocator } from './reconcile/ports';
import { Reconciler } from './reconcile/reconciler';
import { createRelayEngine, WebSocketDialer } from './relay';
import type { RelayEngine } from './relay/types';

export class PortForwardOperator extends Operator {
  private caches!: WatchCaches;
  private readonly queue: WorkQueue;
  private readonly metrics = new Metrics();
  private relay!: RelayEngine;
  private reconciler!: Reconciler;
  private servers: http.Server[] = [];
  private started = false;
  private stopping = false;

  constructor(
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
    // dot-i loads the default kubeconfig in its constructor; --kubeconfig must win.
    this.kubeConfig = kc;
    this.k8sApi = kc.makeApiClient(k8s.CoreV1Api);
    this.queue = new WorkQueue({ workers: cfg.workers });
  }

  /**
   * Not this.watchResource(): dot-i exits the process on any watch error and runs every event of every
   * resource through one serial queue. ResilientInformer restarts watches, and the keyed WorkQueue
   * runs different PortForwards in parallel, one key at a time.
   */
  protected async init(): Promise<void> {
    const kc = this.kubeConfig;
    this.caches = new WatchCaches(kc, this.cfg.namespaces, this.log);
    const caches = this.caches;

    const events = new EventRecorder(kc, os.hostname(), this.log);
    const statusWriter = new StatusWriter(kc);
    this.relay = createRelayEngine({ dialer: new WebSocketDialer(kc), logger: this.log });
    this.reconciler = new Reconciler({
      getPortForward: (ns, name) => caches.portForward(ns, name),
      caches,
      relay: this.relay,
      allocator: new PortAllocator(this.cfg.portRange),
      // Not dot-i's patchResourceStatus: it swallows errors, and a lost status write must be retried.
      writeStatus: (ns, name, status: PortForwardStatus) => statusWriter.replace(ns, name, status),
      events,
      config: this.cfg,
      logger: this.log,
      onRetarget: (key) => this.metrics.retarget(key),
    });

    this.metrics.observeSessions(this.relay);
    this.relay.onEvent((ev) => {
      if (ev.type === 'tunnelOpened') {
        this.metrics.connected(ev.key, ev.connectMs);
        return;
      }
      if (ev.type === 'tunnelError') {
        this.metrics.tunnelError(ev.key, ev.kind);
        const [ns, name] = [ev.key.slice(0, ev.key.indexOf('/')), ev.key.slice(ev.key.indexOf('/') + 1)];
        const pf = caches.portForward(ns, name);
        this.log.warn('tunnel failed', { portforward: ev.key, kind: ev.kind, error: ev.message });
        if (pf) void events.record(pf, 'Warning', 'TunnelFailed', ev.message);
      }
      this.queue.add(ev.key);
    });
    caches.onChange('PortForward', (pf) => this.queue.add(keyOf(pf)));
    caches.onChange('Pod', (pod) => this.enqueueAffected(pod, (t) => !t.pod || t.pod === pod.metadata?.name));
    caches.onChange('Service', (o) => this.enqueueAffected(o, (t) => t.service === o.metadata?.name));
    caches.onChange('Deployment', (o) => this.enqueueAffected(o, (t) => t.deployment === o.metadata?.name));
    caches.onChange('StatefulSet', (o) => this.enqueueAffected(o, (t) => t.statefulSet === o.metadata?.name));

    await caches.start();
    this.reconciler.restoreRecordedPorts(caches.portForwards());
    this.queue.start(
      async (key) => {
        const end = this.metrics.reconcileSeconds.startTimer();
        try {
          const r = await this.reconciler.reconcile(key);
          this.metrics.reconcileTotal.inc({ result: 'success' });
          return r;
        } catch (err) {
          this.metrics.reconcileTotal.inc({ result: 'error' });
          throw err;
        } finally {
          end();
          this.metrics.queueDepth.set(this.queue.depth);
        }
      },
      (key, err, retryInMs) =>
        this.log.warn(
          retryInMs === undefined || err instanceof TerminalError
            ? 'reconcile failed'
            : 'reconcile failed; retrying',
          {
            portforward: key,
            error: errorMessage(err),
            retryInMs,
          },
        ),
    );
    for (const pf of caches.portForwards()) this.queue.add(keyOf(pf));
    this.started = true;
    this.log.info('operator started', {
      namespaces: this.cfg.namespaces.length ? this.cfg.namespaces : 'all',
      listenAddress: this.cfg.listenAddress,
      portRange: `${this.cfg.portRange.min}-${this.cfg.portRange.max}`,
    });
  }

  /** Starts the probe and metrics endpoints, then the controller. */
  async run(): Promise<void> {
    if (this.cfg.healthProbeBindAddress) {
      this.servers.push(
        await serveProbes(this.cfg.healthProbeBindAddress, {
          healthy: () => true,
          ready: () => {
            if (this.stopping) return { ok: false, reason: 'shutting down' };
            if (!this.started) return { ok: false, reason: 'starting' };
            const synced = this.caches.synced();
            return synced ? { ok: true, reason: '' } : { ok: false, reason: 'watch caches not synced' };
          },
        }),
      );
    }
    if (this.cfg.metricsBindAddress)
      this.servers.push(await serveMetrics(this.cfg.metricsBindAddress, this.metrics));
    await this.start();
  }

  /** Stops watching and reconciling, closes every listener and connection. */
  /**
   * Stops watching and reconciling; listeners stop accepting at once, open connections get `graceMs`
   * to finish (SIGTERM), then everything is closed. Readiness turns false first.
   */
  async shutdown(graceMs = this.cfg.shutdownGraceMs): Promise<void> {
    this.stopping = true;
    this.caches?.stop();
    super.stop();
    await this.queue.shutdown();
    const active = (this.relay?.keys() ?? []).reduce((n, k) => n + (this.relay.stats(k)?.active ?? 0), 0);
    if (active > 0) this.log.info('draining open connections', { active, graceMs });
    await this.relay?.close(graceMs);
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
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
    if (!ns) return;
    for (const pf of this.caches.portForwards(ns))
      if (pf.spec?.target && involves(pf.spec.target)) this.queue.add(keyOf(pf));
  }
}

export function keyOf(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}
