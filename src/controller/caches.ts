// The operator's watch caches: PortForwards and every resource a target kind reads (targets/kinds.ts:
// pods, services, deployments, statefulsets) in the watched namespaces (all, or those of --namespace),
// each kept by a ResilientInformer, and, when some
// listener may be reached from other hosts, every Namespace (for allowedClients' namespaceSelector).
// Reconciles read targets and who may connect from here, never with per-connection API calls; the
// pods' addresses are indexed as their events arrive (PodAddressIndex).
import * as k8s from '@kubernetes/client-node';
import { GROUP, PLURAL, PortForward, VERSION } from '../api/v1alpha1';
import type { Logger } from '../observability/logger';
import type { ClientDirectory } from '../reconcile/clients';
import { listerOf, resourcePath, ResourceKind, TargetObjects, WATCHED_RESOURCES } from '../targets/kinds';
import { ResilientInformer } from './informer';
import { TRIMS } from './trim';
import { PodAddressIndex } from '../reconcile/pod-addresses';

type ListResult<T extends k8s.KubernetesObject> = Promise<k8s.KubernetesListObject<T>>;

export type Kind = 'PortForward' | ResourceKind | 'Namespace';

export interface WatchCachesOptions {
  /**
   * Watch every Namespace (cluster-wide list and watch): needed to match namespaceSelector, so only
   * when some listener is not loopback-only. Default false: no namespace is known.
   */
  namespaces?: boolean;
}

export class WatchCaches implements TargetObjects, ClientDirectory {
  private readonly informers = new Map<Kind, ResilientInformer<k8s.KubernetesObject>[]>();
  private readonly podAddresses = new PodAddressIndex();
  private readonly clientHandlers: ((namespaces: string[] | 'all') => void)[] = [];
  private clientsVersion = 0;

  constructor(kc: k8s.KubeConfig, namespaces: string[], logger: Logger, options: WatchCachesOptions = {}) {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const scopes: (string | undefined)[] = namespaces.length ? namespaces : [undefined];
    const add = <T extends k8s.KubernetesObject>(
      kind: Kind,
      path: (ns: string | undefined) => string,
      list: (ns: string | undefined) => ListResult<T>,
    ): void => {
      this.informers.set(
        kind,
        scopes.map(
          (ns) =>
            new ResilientInformer<k8s.KubernetesObject>({
              kind,
              path: path(ns),
              list: () => list(ns),
              transform: TRIMS[kind],
              kubeConfig: kc,
              logger,
            }),
        ),
      );
    };
    const crd = `/apis/${GROUP}/${VERSION}`;
    add(
      'PortForward',
      (ns) => (ns ? `${crd}/namespaces/${ns}/${PLURAL}` : `${crd}/${PLURAL}`),
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
    for (const kind of WATCHED_RESOURCES) add(kind, (ns) => resourcePath(kind, ns), listerOf(kind, kc));
    if (options.namespaces) {
      const inf = new ResilientInformer<k8s.KubernetesObject>({
        kind: 'Namespace',
        path: '/api/v1/namespaces',
        list: () => core.listNamespace(),
        transform: TRIMS.Namespace,
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

  private all(): ResilientInformer<k8s.KubernetesObject>[] {
    return [...this.informers.values()].flat();
  }

  get(kind: Kind, namespace: string, name: string): k8s.KubernetesObject | undefined {
    for (const inf of this.informers.get(kind) ?? []) {
      const obj = inf.get(name, namespace);
      if (obj) return obj;
    }
    return undefined;
  }

  list(kind: Kind, namespace?: string): k8s.KubernetesObject[] {
    return (this.informers.get(kind) ?? []).flatMap((i) => [...i.list(namespace)]);
  }
}
