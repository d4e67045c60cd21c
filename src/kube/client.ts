// Kubernetes clients from one KubeConfig, found the way kubectl finds it: --kubeconfig, else
// $KUBECONFIG, else ~/.kube/config, else the in-cluster ServiceAccount. Every way it can go wrong is
// one KubeConfigError naming where it looked, raised at start-up before anything else runs.
import * as k8s from '@kubernetes/client-node';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { reuseConnections } from './connections';

/** The kubeconfig could not be found or used; the message names the file or the sources tried. */
export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
}

export interface KubeConfigSources {
  /** --kubeconfig. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
  /** The ServiceAccount token file that marks a pod. */
  serviceAccountTokenFile?: string;
}

const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** The operator's KubeConfig (see findKubeConfig), its API calls on keep-alive connections. */
export function loadKubeConfig(sources: KubeConfigSources = {}): k8s.KubeConfig {
  return reuseConnections(findKubeConfig(sources));
}

function findKubeConfig(sources: KubeConfigSources): k8s.KubeConfig {
  const env = sources.env ?? process.env;
  const kc = new k8s.KubeConfig();
  if (sources.file) {
    loadFile(kc, sources.file, '--kubeconfig');
    return requireCluster(kc, `the kubeconfig ${sources.file} (--kubeconfig)`);
  }
  const list = (env.KUBECONFIG ?? '').split(path.delimiter).filter(Boolean);
  if (list.length > 0) {
    loadFile(kc, list[0], '$KUBECONFIG');
    for (const file of list.slice(1)) {
      const more = new k8s.KubeConfig();
      loadFile(more, file, '$KUBECONFIG');
      kc.mergeConfig(more, true);
    }
    return requireCluster(kc, `the kubeconfig from $KUBECONFIG (${list.join(path.delimiter)})`);
  }
  const home = path.join(sources.home ?? os.homedir(), '.kube', 'config');
  if (fs.existsSync(home)) {
    loadFile(kc, home, 'the default location');
    return requireCluster(kc, `the kubeconfig ${home}`);
  }
  if (env.KUBERNETES_SERVICE_HOST && fs.existsSync(sources.serviceAccountTokenFile ?? SA_TOKEN)) {
    kc.loadFromCluster();
    return kc;
  }
  throw new KubeConfigError(
    `no kubeconfig: --kubeconfig is not given, $KUBECONFIG is not set, ${home} does not exist, and this ` +
      `is not a pod (${env.KUBERNETES_SERVICE_HOST ? `no ${SA_TOKEN}` : 'KUBERNETES_SERVICE_HOST is unset'}); ` +
      'pass --kubeconfig FILE',
  );
}

function loadFile(kc: k8s.KubeConfig, file: string, source: string): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT'
        ? 'no such file'
        : e.code === 'EACCES'
          ? 'permission denied'
          : e.code === 'EISDIR'
            ? 'it is a folder'
            : e.message;
    throw new KubeConfigError(`cannot read the kubeconfig ${file} (${source}): ${why}`, { cause: err });
  }
  try {
    kc.loadFromString(text);
  } catch (err) {
    const detail = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    throw new KubeConfigError(`the kubeconfig ${file} (${source}) is not valid: ${detail}`, { cause: err });
  }
}

function requireCluster(kc: k8s.KubeConfig, what: string): k8s.KubeConfig {
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new KubeConfigError(
      kc.getCurrentContext()
        ? `${what}: its current context "${kc.getCurrentContext()}" names no cluster it defines`
        : `${what} has no current context (set current-context)`,
    );
  }
  if (!cluster.server) throw new KubeConfigError(`${what}: cluster "${cluster.name}" has no server`);
  return kc;
}

/** The HTTP status of an API error from client-node, if it carries one. */
export function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: number; body?: unknown };
  if (err instanceof k8s.ApiException) return e.code as number;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  const body = parseBody(e?.body);
  return typeof body?.code === 'number' ? body.code : undefined;
}

/**
 * The API server's own message of an API error (its metav1.Status), else the error's message on one
 * line, with the cause of a failed request (`fetch failed: connect ECONNREFUSED 127.0.0.1:6443`).
 */
export function apiMessage(err: unknown): string {
  const body = parseBody((err as { body?: unknown })?.body);
  if (body && typeof body.message === 'string') return body.message;
  const message = err instanceof Error ? err.message : String(err);
  // ApiException's message is "HTTP-Code: 401\nMessage: Unauthorized\nBody: ...\nHeaders: ...".
  const http = /^HTTP-Code: (\d+)\nMessage: (.*)$/m.exec(message);
  if (http) return `${http[2]} (HTTP ${http[1]})`;
  const first = message.split('\n')[0];
  const cause = (err as { cause?: unknown })?.cause;
  const why = cause instanceof Error ? cause.message.split('\n')[0] : '';
  return why && !first.includes(why) ? `${first}: ${why}` : first;
}

function parseBody(body: unknown): { code?: unknown; message?: unknown } | undefined {
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as { code?: unknown; message?: unknown };
    } catch {
      return undefined;
    }
  }
  return body && typeof body === 'object' ? body : undefined;
}

/**
 * What a person can do about a failed API call, for log lines: the credentials, RBAC, or reaching the
 * API server at all. Undefined when there is nothing more to say than the error.
 */
export function apiHint(err: unknown): string | undefined {
  const own = (err as { code?: unknown })?.code;
  const code = statusCode(err) ?? (typeof own === 'number' ? own : undefined);
  if (code === 401) {
    return "the API server refused the operator's credentials (an invalid, expired or revoked token): fix the kubeconfig or the ServiceAccount";
  }
  if (code === 403) return 'the operator is not allowed to do this: check its RBAC (docs/operations.md#rbac)';
  const text = apiMessage(err);
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|fetch failed|socket hang up/.test(text)) {
    return "cannot reach the API server: is it running, and is the kubeconfig's server address right?";
  }
  return undefined;
}

/**
 * The namespace this process runs in: $POD_NAMESPACE (downward API), else the ServiceAccount's
 * namespace file, else undefined (outside a cluster).
 */
export function podNamespace(
  env: NodeJS.ProcessEnv = process.env,
  file = '/var/run/secrets/kubernetes.io/serviceaccount/namespace',
): string | undefined {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
