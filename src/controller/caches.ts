// The operator's watch caches: PortForwards, pods, services, deployments and statefulsets of the
// watched namespaces (all, or those of --namespace), each kept by a ResilientInformer, and, when some
// listener may be reached from other hosts, every Namespace (for allowedClients' namespaceSelector).
// Reconciles read targets and who may connect from here, never with per-connection API calls; the
// pods' addresses are indexed as their events arrive (PodAddressIndex).
import * as k8s from '@kubernetes/client-node';
import { GROUP, PLURAL, PortForward, VERSION } from '../api/v1alpha1';
import type { Logger } from '../observability/logger';
import type { ClientDirectory } from '../reconcile/clients';
import type { Caches } from '../reconcile/resolve';
import { ResilientInformer } from './informer';
import { PodAddressIndex } from '../reconcile/pod-addresses';

type ListResult<T extends k8s.KubernetesObject> = Promise<k8s.KubernetesListObject<T>>;

export type Kind = 'PortForward' | 'Pod' | 'Service' | 'Deployment' | 'StatefulSet' | 'Namespace';

export interface WatchCachesOptions {
  /**
   * Watch every Namespace (cluster-wide list and watch): needed to match namespaceSelector, so only
   * when some listener is not loopback-only. Default false: no namespace is known.
   */
  namespaces?: boolean;
}

export class WatchCaches implements Caches, ClientDirectory {
  private readonly informers = new Map<Kind, ResilientInformer<k8s.KubernetesObject>[]>();
  private readonly podAddresses = new PodAddressIndex();
  private readonly clientHandlers: ((namespaces: string[] | 'all') => void)[] = [];
  private clientsVersion = 0;

  constructor(kc: k8s.KubeConfig, namespaces: string[], logger: Logger, options: WatchCachesOptions = {}) {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const scopes: (string | undefined)[] = namespaces.length ? namespaces : [undefined];
    const add = <T extends k8s.KubernetesObject>(
      kind: Kind,
      base: string,
      plural: string,
      list: (ns: string | undefined) => ListResult<T>,
    ): void => {
      this.informers.set(
        kind,
        scopes.map(
          (ns) =>
            new ResilientInformer<k8s.KubernetesObject>({
              kind,
              path: ns ? `${base}/namespaces/${ns}/${plural}` : `${base}/${plural}`,
              list: () => list(ns),
              kubeConfig: kc,
              logger,
            }),
        ),
      );
    };
    add(
      'PortForward',
      `/apis/${GROUP}/${VERSION}`,
      PLURAL,
      (ns) =>
        (ns
          ? custom.listNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              namespace: ns,
              plural: PLURAL,
            })
          : custom.listClusterCustomObject({
              group: GROUP,
              version: VERSION,
              plural: PLURAL,
            })) as ListResult<k8s.KubernetesObject>,
    );
    add('Pod', '/api/v1', 'pods', (ns) =>
      ns ? core.listNamespacedPod({ namespace: ns }) : core.listPodForAllNamespaces(),
    );
    add('Service', '/api/v1', 'services', (ns) =>
      ns ? core.listNamespacedService({ namespace: ns }) : core.listServiceForAllNamespaces(),
    );
    add('Deployment', '/apis/apps/v1', 'deployments', (ns) =>
      ns ? apps.listNamespacedDeployment({ namespace: ns }) : apps.listDeploymentForAllNamespaces(),
    );
    add('StatefulSet', '/apis/apps/v1', 'statefulsets', (ns) =>
      ns ? apps.listNamespacedStatefulSet({ namespace: ns }) : apps.listStatefulSetForAllNamespaces(),
    );
    if (options.namespaces) {
      const inf = new ResilientInformer<k8s.KubernetesObject>({
        kind: 'Namespace',
        path: '/api/v1/namespaces',
        list: () => core.listNamespace(),
        kubeConfig: kc,
        logger,
      });
      this.informers.set('Namespace', [inf]);
      inf.onChange(() => this.clientsChanged('all'));
    }
    // Registered before anyone else's handler: the index is current when they run.
    this.onChange('Pod', (obj) => {
      const ns = obj.metadata?.namespace ?? '';
      const name = obj.metadata?.name ?? '';
      const changed = this.podAddresses.update(ns, name, this.pod(ns, name));
      if (changed.length > 0) this.clientsChanged(changed);
    });
  }

  /**
   * Called when who may connect may have changed: the pods' addresses or labels in these namespaces,
   * or ('all') a namespace's labels.
   */
  onClientsChange(handler: (namespaces: string[] | 'all') => void): void {
    this.clientHandlers.push(handler);
  }

  namespaceLabels(name: string): Record<string, string> | undefined {
    const ns = this.get('Namespace', '', name);
    return ns ? (ns.metadata?.labels ?? {}) : undefined;
  }

  namespaceNames(): string[] {
    return this.list('Namespace').map((n) => n.metadata?.name ?? '');
  }

  podAt(address: string): string | undefined {
    return this.podAddresses.podAt(address);
  }

  version(): number {
    return this.clientsVersion;
  }

  private clientsChanged(namespaces: string[] | 'all'): void {
    this.clientsVersion++;
    for (const h of this.clientHandlers) h(namespaces);
  }

  onChange(kind: Kind, handler: (obj: k8s.KubernetesObject) => void): void {
    for (const inf of this.informers.get(kind) ?? []) inf.onChange(handler);
  }

  /** Called when a watch of `kind` lists again after failing (the API server is back). */
  onRecover(kind: Kind, handler: () => void): void {
    for (const inf of this.informers.get(kind) ?? []) inf.onRecover(handler);
  }

  /** Lists everything once; resolves when every first list is done (or retrying in the background). */
  async start(): Promise<void> {
    await Promise.all(this.all().map((i) => i.start()));
  }

  stop(): void {
    for (const i of this.all()) i.stop();
  }

  synced(): boolean {
    return this.all().every((i) => i.hasSynced());
  }

  portForward(namespace: string, name: string): PortForward | undefined {
    return this.get('PortForward', namespace, name) as PortForward | undefined;
  }

  portForwards(namespace?: string): PortForward[] {
    return this.list('PortForward', namespace) as PortForward[];
  }

  pod(namespace: string, name: string): k8s.V1Pod | undefined {
    return this.get('Pod', namespace, name);
  }

  pods(namespace: string): ReadonlyArray<k8s.V1Pod> {
    return this.list('Pod', namespace);
  }

  service(namespace: string, name: string): k8s.V1Service | undefined {
    return this.get('Service', namespace, name);
  }

  deployment(namespace: string, name: string): k8s.V1Deployment | undefined {
    return this.get('Deployment', namespace, name);
  }

  statefulSet(namespace: string, name: string): k8s.V1StatefulSet | undefined {
    return this.get('StatefulSet', namespace, name);
  }

  private all(): ResilientInformer<k8s.KubernetesObject>[] {
    return [...this.informers.values()].flat();
  }

  private get(kind: Kind, namespace: string, name: string): k8s.KubernetesObject | undefined {
    for (const inf of this.informers.get(kind) ?? []) {
      const obj = inf.get(name, namespace);
      if (obj) return obj;
    }
    return undefined;
  }

  private list(kind: Kind, namespace?: string): k8s.KubernetesObject[] {
    return (this.informers.get(kind) ?? []).flatMap((i) => [...i.list(namespace)]);
  }
}
