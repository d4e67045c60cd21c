// The operator: watches PortForwards and pods, feeds a keyed work queue, and runs the reconciler with
// the relay engine behind it. @dot-i/k8s-operator is the base class (lifecycle and kubeconfig), but
// three of its parts are bypassed, each where it is used below.
import Operator from '@dot-i/k8s-operator';
import * as k8s from '@kubernetes/client-node';
import type * as http from 'node:http';
import * as os from 'node:os';
import { GROUP, PLURAL, PortForward, PortForwardStatus, VERSION } from './api/v1alpha1';
import type { Config } from './config/flags';
import { ResilientInformer } from './controller/informer';
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
  private readonly pfInformers: ResilientInformer<k8s.KubernetesObject>[] = [];
  private readonly podInformers: ResilientInformer<k8s.V1Pod>[] = [];
  private readonly queue: WorkQueue;
  private readonly metrics = new Metrics();
  private relay!: RelayEngine;
  private reconciler!: Reconciler;
  private servers: http.Server[] = [];
  private started = false;

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
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const scopes: (string | undefined)[] = this.cfg.namespaces.length ? this.cfg.namespaces : [undefined];
    for (const ns of scopes) {
      this.pfInformers.push(
        new ResilientInformer<k8s.KubernetesObject>({
          kind: 'PortForward',
          path: ns
            ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`
            : `/apis/${GROUP}/${VERSION}/${PLURAL}`,
          list: () =>
            (ns
              ? custom.listNamespacedCustomObject(GROUP, VERSION, ns, PLURAL)
              : custom.listClusterCustomObject(GROUP, VERSION, PLURAL)) as Promise<{
              body: k8s.KubernetesListObject<k8s.KubernetesObject>;
              response: http.IncomingMessage;
            }>,
          kubeConfig: kc,
          logger: this.log,
        }),
      );
      this.podInformers.push(
        new ResilientInformer<k8s.V1Pod>({
          kind: 'Pod',
          path: ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods',
          list: () => (ns ? core.listNamespacedPod(ns) : core.listPodForAllNamespaces()),
          kubeConfig: kc,
          logger: this.log,
        }),
      );
    }

    const events = new EventRecorder(kc, os.hostname(), this.log);
    const statusWriter = new StatusWriter(kc);
    this.relay = createRelayEngine({ dialer: new WebSocketDialer(kc), logger: this.log });
    this.reconciler = new Reconciler({
      getPortForward: (ns, name) => this.findIn(this.pfInformers, ns, name) as PortForward | undefined,
      getPod: (ns, name) => this.findIn(this.podInformers, ns, name),
      relay: this.relay,
      allocator: new PortAllocator(this.cfg.portRange),
      // Not dot-i's patchResourceStatus: it swallows errors, and a lost status write must be retried.
      writeStatus: (ns, name, status: PortForwardStatus) => statusWriter.replace(ns, name, status),
      events,
      config: this.cfg,
      logger: this.log,
    });

    this.relay.onEvent((ev) => {
      if (ev.type === 'tunnelError') {
        const [ns, name] = [ev.key.slice(0, ev.key.indexOf('/')), ev.key.slice(ev.key.indexOf('/') + 1)];
        const pf = this.findIn(this.pfInformers, ns, name) as PortForward | undefined;
        this.log.warn('tunnel failed', { portforward: ev.key, kind: ev.kind, error: ev.message });
        if (pf) void events.record(pf, 'Warning', 'TunnelFailed', ev.message);
      }
      this.queue.add(ev.key);
    });
    for (const inf of this.pfInformers) inf.onChange((pf) => this.queue.add(keyOf(pf)));
    for (const inf of this.podInformers) inf.onChange((pod) => this.enqueueForPod(pod));

    await Promise.all([...this.pfInformers, ...this.podInformers].map((i) => i.start()));
    this.reconciler.restoreRecordedPorts(this.pfInformers.flatMap((i) => i.list() as PortForward[]));
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
    for (const inf of this.pfInformers) for (const pf of inf.list()) this.queue.add(keyOf(pf));
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
            if (!this.started) return { ok: false, reason: 'starting' };
            const synced = [...this.pfInformers, ...this.podInformers].every((i) => i.hasSynced());
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
  async shutdown(): Promise<void> {
    for (const inf of [...this.pfInformers, ...this.podInformers]) inf.stop();
    super.stop();
    await this.queue.shutdown();
    await this.relay?.close();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }

  private findIn<T extends k8s.KubernetesObject>(
    informers: ResilientInformer<T>[],
    ns: string,
    name: string,
  ): T | undefined {
    for (const inf of informers) {
      const obj = inf.get(name, ns);
      if (obj) return obj;
    }
    return undefined;
  }

  /** A pod changed: every PortForward of its namespace that targets it runs again. */
  private enqueueForPod(pod: k8s.V1Pod): void {
    const ns = pod.metadata?.namespace;
    const name = pod.metadata?.name;
    if (!ns || !name) return;
    for (const inf of this.pfInformers) {
      for (const pf of inf.list(ns) as PortForward[])
        if (pf.spec?.target?.pod === name) this.queue.add(keyOf(pf));
    }
  }
}

export function keyOf(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}
