// The remote clusters of spec.kubeConfig: per kubeconfig Secret, its kubeconfig (read with get by
// name, again every `refreshMs`, so a rotated credential is in use within that time), and per
// (Secret, namespace over there) watch caches of every resource a target kind reads, shared by all
// PortForwards that use them.
//
// Guarantees
// - Watches run while some PortForward uses them (clusterOf .. release) and stop with the last one.
// - A changed kubeconfig (a new fingerprint) is a new generation: new dials use it at once (its own
//   relay cluster id), and its watch caches replace the old ones once they have listed; until then
//   targets resolve in the old ones, so a rotation holds no connection back.
// - A failure (the Secret missing, unreadable, refused; the remote API server refusing or out of
//   reach) is a ClusterView with a reason and a message; it is retried with backoff (the Secret up to
//   every 60 s, the watches as ResilientInformer does), and the users' keys are brought back whenever
//   the view may have changed. Nothing here throws at the caller, and no credential reaches a log line,
//   a message or a relay cluster id.
//
// Caveats
// - The relay keeps the transport of an earlier generation (its open connections go on); it takes no
//   new connections.
import * as k8s from '@kubernetes/client-node';
import type { ObjectKey } from '../api/key';
import type { PortForward, TargetSpec } from '../api/v1alpha1';
import { apiMessage, statusCode } from '../kube/client';
import {
  KubeConfigFailure,
  isRefusedCredentials,
  KubeConfigPolicy,
  readKubeConfigSecret,
  RemoteKubeConfig,
  SecretRef,
} from '../kube/kubeconfig-secret';
import { errorMessage, Logger } from '../observability/logger';
import type { ClusterDirectory, ClusterView } from '../reconcile/clusters';
import { kubeAccess, type ApiServerAccess, type ClusterRef } from '../relay';
import {
  kindOf,
  listerOf,
  resourcePath,
  ResourceKind,
  TargetObjects,
  WATCHED_RESOURCES,
} from '../targets/kinds';
import { targetNamespace } from '../targets/resolve';
import { ResilientInformer } from './informer';

export interface RemoteClustersOptions {
  /** The operator's own cluster, where the Secrets are read. */
  kc: k8s.KubeConfig;
  policy: KubeConfigPolicy;
  /** The operator's ServiceAccount, namespace/name, for the RoleBinding a 403 asks for. */
  serviceAccount: string;
  logger: Logger;
  /** Keys whose view may have changed. */
  enqueue(keys: readonly ObjectKey[]): void;
  /** How often a Secret is read again. Default 30 s. */
  refreshMs?: number;
  /** First retry of a failed read; doubles up to 60 s. Default 1 s. */
  retryMs?: number;
}

type Loaded = RemoteKubeConfig & { id: string };

/** One kubeconfig Secret and who uses it. */
interface SecretEntry {
  ref: SecretRef;
  state: Loaded | KubeConfigFailure | undefined;
  generation: number;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  users: Set<ObjectKey>;
  stopped: boolean;
}

/** The watch caches of one namespace over there, on one generation of the kubeconfig. */
class RemoteCaches implements TargetObjects {
  private readonly informers = new Map<ResourceKind, ResilientInformer<k8s.KubernetesObject>>();
  constructor(
    readonly generation: Loaded,
    readonly namespace: string,
    logger: Logger,
  ) {
    for (const kind of WATCHED_RESOURCES) {
      const list = listerOf(kind, generation.kc);
      this.informers.set(
        kind,
        new ResilientInformer<k8s.KubernetesObject>({
          kind: `${kind} (remote)`,
          path: resourcePath(kind, namespace),
          list: () => list(namespace),
          kubeConfig: generation.kc,
          logger: logger.child({ remote: generation.server, namespace }),
        }),
      );
    }
  }

  onEvent(kind: ResourceKind, handler: (obj: k8s.KubernetesObject) => void): void {
    this.informers.get(kind)?.onChange(handler);
  }

  onTrouble(handler: () => void): void {
    for (const i of this.informers.values()) {
      i.onFailure(handler);
      i.onRecover(handler);
    }
  }

  start(): Promise<void> {
    return Promise.all([...this.informers.values()].map((i) => i.start())).then(() => undefined);
  }

  stop(): void {
    for (const i of this.informers.values()) i.stop();
  }

  synced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced());
  }

  failure(): unknown {
    for (const i of this.informers.values()) if (i.lastFailure() !== undefined) return i.lastFailure();
    return undefined;
  }

  get(kind: ResourceKind, namespace: string, name: string): k8s.KubernetesObject | undefined {
    return namespace === this.namespace ? this.informers.get(kind)?.get(name, namespace) : undefined;
  }

  list(kind: ResourceKind, namespace: string): ReadonlyArray<k8s.KubernetesObject> {
    return namespace === this.namespace ? (this.informers.get(kind)?.list(namespace) ?? []) : [];
  }
}

/** A namespace over there, through one Secret: its caches and the PortForwards that use them. */
interface NamespaceEntry {
  secret: string;
  namespace: string;
  /** The caches targets resolve in. */
  current: RemoteCaches | undefined;
  /** Caches of a newer generation, listing; they replace `current` once synced. */
  next: RemoteCaches | undefined;
  users: Map<ObjectKey, TargetSpec>;
}

export class RemoteClusters implements ClusterDirectory {
  private readonly secrets = new Map<string, SecretEntry>();
  private readonly namespaces = new Map<string, NamespaceEntry>();
  /** What each user uses: its Secret's and namespace's map keys. */
  private readonly uses = new Map<ObjectKey, { secret: string; namespace: string }>();
  private readonly core: k8s.CoreV1Api;

  constructor(private readonly o: RemoteClustersOptions) {
    this.core = o.kc.makeApiClient(k8s.CoreV1Api);
  }

  clusterOf(key: string, pf: PortForward): ClusterView {
    const k = key as ObjectKey;
    const ref: SecretRef = {
      namespace: pf.metadata.namespace,
      name: pf.spec.kubeConfig?.secretRef.name ?? '',
      ...(pf.spec.kubeConfig?.secretRef.key ? { key: pf.spec.kubeConfig.secretRef.key } : {}),
    };
    const secretKey = `${ref.namespace}/${ref.name}/${ref.key ?? ''}`;
    const namespace = targetNamespace(pf);
    const nsKey = `${secretKey}|${namespace}`;
    const used = this.uses.get(k);
    if (used && (used.secret !== secretKey || used.namespace !== nsKey)) this.release(key);
    this.uses.set(k, { secret: secretKey, namespace: nsKey });
    const secret = this.secretEntry(secretKey, ref);
    secret.users.add(k);
    const ns = this.namespaceEntry(nsKey, secretKey, namespace);
    ns.users.set(k, pf.spec.target);
    const where = `Secret ${ref.namespace}/${ref.name}`;
    const state = secret.state;
    if (!state) return { ok: false, reason: 'RemotePending', message: `reading the kubeconfig of ${where}` };
    if (!state.ok) return state;
    const remote = { server: state.server, namespace };
    const cluster: ClusterRef = {
      id: state.id,
      // Without user info: basic auth comes from the user entry, and the URL may end up in messages.
      server: state.server,
      ...(state.proxyUrl ? { proxyUrl: state.proxyUrl } : {}),
    };
    this.follow(ns, state);
    const newest = ns.next ?? ns.current;
    const failure = newest?.failure();
    // Listed once and now out of reach (a restart): resolve in what was listed, as local targets
    // do. Refused credentials are told at once: no dial with them will work either.
    if (newest?.synced() && (failure === undefined || !isRefusedCredentials(failure))) {
      return { ok: true, objects: newest, cluster, remote };
    }
    if (failure !== undefined) {
      return { ok: false, ...remoteFailure(failure, state.server, namespace), remote };
    }
    if (ns.current?.synced()) return { ok: true, objects: ns.current, cluster, remote };
    return {
      ok: false,
      reason: 'RemotePending',
      message: `waiting for the first list of namespace ${namespace} from ${state.server}`,
      remote,
    };
  }

  release(key: string): void {
    const k = key as ObjectKey;
    const used = this.uses.get(k);
    if (!used) return;
    this.uses.delete(k);
    const ns = this.namespaces.get(used.namespace);
    if (ns) {
      ns.users.delete(k);
      if (ns.users.size === 0) {
        ns.current?.stop();
        ns.next?.stop();
        this.namespaces.delete(used.namespace);
      }
    }
    const secret = this.secrets.get(used.secret);
    if (secret) {
      secret.users.delete(k);
      if (secret.users.size === 0) {
        secret.stopped = true;
        clearTimeout(secret.timer);
        this.secrets.delete(used.secret);
      }
    }
  }

  /** The credentials of a relay cluster id (a generation still in use); undefined when gone. */
  accessFor(id: string): ApiServerAccess | undefined {
    for (const s of this.secrets.values()) {
      if (s.state?.ok && s.state.id === id) return kubeAccess(s.state.kc);
    }
    return undefined;
  }

  /** Stops every watch and timer. */
  stop(): void {
    for (const key of [...this.uses.keys()]) this.release(key);
  }

  private secretEntry(secretKey: string, ref: SecretRef): SecretEntry {
    let entry = this.secrets.get(secretKey);
    if (!entry) {
      entry = {
        ref,
        state: undefined,
        generation: 0,
        failures: 0,
        timer: undefined,
        users: new Set(),
        stopped: false,
      };
      this.secrets.set(secretKey, entry);
      void this.read(secretKey, entry);
    }
    return entry;
  }

  private namespaceEntry(nsKey: string, secretKey: string, namespace: string): NamespaceEntry {
    let entry = this.namespaces.get(nsKey);
    if (!entry) {
      entry = { secret: secretKey, namespace, current: undefined, next: undefined, users: new Map() };
      this.namespaces.set(nsKey, entry);
    }
    return entry;
  }

  /** Reads the Secret; brings the users back when what it says changed; reads again later. */
  private async read(secretKey: string, entry: SecretEntry): Promise<void> {
    let next: Loaded | KubeConfigFailure | undefined = entry.state;
    try {
      const got = await readKubeConfigSecret(this.core, entry.ref, this.o.policy, this.o.serviceAccount);
      if (!got.ok) next = got;
      else if (entry.state?.ok && entry.state.fingerprint === got.fingerprint) next = entry.state;
      else next = { ...got, id: `${secretKey}#${++entry.generation}` };
      entry.failures = got.ok ? 0 : entry.failures + 1;
    } catch (err) {
      // The local API server did not answer: keep what was read, try again soon.
      entry.failures++;
      this.o.logger.warn('could not read a kubeconfig Secret; retrying', {
        secret: `${entry.ref.namespace}/${entry.ref.name}`,
        error: errorMessage(err),
      });
    }
    if (entry.stopped) return;
    if (next !== entry.state) {
      const was = entry.state;
      entry.state = next;
      if (next?.ok && was?.ok) {
        this.o.logger.info('kubeconfig Secret changed: new connections use the new one', {
          secret: `${entry.ref.namespace}/${entry.ref.name}`,
          server: next.server,
        });
      }
      this.o.enqueue([...entry.users]);
    }
    const delay = entry.state?.ok
      ? (this.o.refreshMs ?? 30_000)
      : Math.min(60_000, (this.o.retryMs ?? 1000) * 2 ** Math.min(entry.failures - 1, 6));
    entry.timer = setTimeout(() => void this.read(secretKey, entry), delay);
    entry.timer.unref();
  }

  /** Starts caches on the Secret's current generation when `ns` has none of it yet. */
  private follow(ns: NamespaceEntry, generation: Loaded): void {
    if ((ns.next ?? ns.current)?.generation.id === generation.id) return;
    ns.next?.stop();
    const caches = new RemoteCaches(generation, ns.namespace, this.o.logger);
    const users = (): ObjectKey[] => [...ns.users.keys()];
    for (const kind of WATCHED_RESOURCES) {
      caches.onEvent(kind, (obj) => this.o.enqueue(involved(ns.users, kind, obj.metadata?.name)));
    }
    caches.onTrouble(() => this.o.enqueue(users()));
    if (ns.current) ns.next = caches;
    else ns.current = caches;
    // Reconciles that ran while the first list was under way saw no objects: bring them back.
    void caches.start().then(() => {
      if (!caches.synced()) return;
      if (ns.next === caches) {
        ns.current?.stop();
        ns.current = caches;
        ns.next = undefined;
      }
      if (ns.current === caches) this.o.enqueue(users());
    });
  }
}

/** The users whose target a change of `kind`/`name` may concern. */
function involved(
  users: Map<ObjectKey, TargetSpec>,
  kind: ResourceKind,
  name: string | undefined,
): ObjectKey[] {
  return [...users]
    .filter(([, t]) => kindOf(t)?.involves(t, kind, name) ?? kind === 'Pod')
    .map(([key]) => key);
}

/** A failed list or watch of the remote API server, as a reason and a message. */
function remoteFailure(
  err: unknown,
  server: string,
  namespace: string,
): { reason: 'RemoteUnauthorized' | 'RemoteUnreachable'; message: string } {
  const code = statusCode(err);
  if (code === 401) {
    return {
      reason: 'RemoteUnauthorized',
      message: `${server} refused the kubeconfig's credentials (401 Unauthorized): renew the token or certificate in the Secret`,
    };
  }
  if (code === 403) {
    return {
      reason: 'RemoteUnauthorized',
      message:
        `${server} forbids the kubeconfig's user to list and watch targets in namespace ${namespace} ` +
        `(403): grant it get, list and watch on pods, services, deployments and statefulsets there ` +
        `(docs/remote-clusters.md): ${apiMessage(err)}`,
    };
  }
  return {
    reason: 'RemoteUnreachable',
    message: `${server} is out of reach${code !== undefined ? ` (${code})` : ''}: ${apiMessage(err)}`,
  };
}
