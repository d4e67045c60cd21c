// A kubeconfig held in a Secret (spec.kubeConfig.secretRef): read, checked and turned into a
// client-node KubeConfig on its current context. The Secret's shape is Flux's and Cluster API's: the
// kubeconfig under `key`, by default `value`, else `value.yaml`.
//
// Guarantees
// - A kubeconfig that would run code or reach beyond what it holds is refused before client-node
//   loads it: exec and auth-provider users (unless allowExec), and any file path (token-file,
//   client-certificate, client-key, certificate-authority): client-node reads token-file while it
//   loads, and a path in a Secret would hand the operator's own files (its ServiceAccount token) to
//   another API server. insecure-skip-tls-verify is refused unless allowInsecureTls.
// - No message, reason or field of a result holds a credential or a piece of the kubeconfig's text:
//   a YAML error is reported by line and column only (js-yaml quotes the text around it), and the
//   server's URL is given without user info.
import * as crypto from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { apiMessage, statusCode } from './client';
import { reuseConnections } from './connections';

/** Why a kubeconfig Secret gives no usable cluster; the words of status reasons. */
export type KubeConfigReason =
  'KubeConfigNotFound' | 'KubeConfigInvalid' | 'KubeConfigForbidden' | 'KubeConfigInsecure';

export interface KubeConfigPolicy {
  /** Accept exec and auth-provider users (--insecure-kubeconfig-exec). */
  allowExec: boolean;
  /** Accept insecure-skip-tls-verify (--insecure-kubeconfig-tls). */
  allowInsecureTls: boolean;
}

export interface SecretRef {
  namespace: string;
  name: string;
  /** Undefined: `value`, else `value.yaml`. */
  key?: string;
}

export interface RemoteKubeConfig {
  ok: true;
  kc: k8s.KubeConfig;
  /** The API server's URL without user info: safe to show. */
  server: string;
  proxyUrl?: string;
  /** Tells a changed kubeconfig apart (a SHA-256 of the key's data): compared, never shown. */
  fingerprint: string;
}

export interface KubeConfigFailure {
  ok: false;
  reason: KubeConfigReason;
  message: string;
}

export const DEFAULT_KEYS = ['value', 'value.yaml'] as const;

/**
 * The ClusterRole deploy/ and the chart ship for reading kubeconfig Secrets, bound per namespace by a
 * RoleBinding: named after the operator's ServiceAccount (`portforward-operator-kubeconfig-reader`).
 */
export function kubeConfigReaderRole(serviceAccountName: string): string {
  return `${serviceAccountName}-kubeconfig-reader`;
}

/**
 * Reads the Secret with `get` (by name: the operator holds no list or watch on Secrets) and loads its
 * kubeconfig. `serviceAccount` (namespace/name) is named in the RoleBinding a 403 asks for.
 */
export async function readKubeConfigSecret(
  core: Pick<k8s.CoreV1Api, 'readNamespacedSecret'>,
  ref: SecretRef,
  policy: KubeConfigPolicy,
  serviceAccount: string,
): Promise<RemoteKubeConfig | KubeConfigFailure> {
  let secret: k8s.V1Secret;
  try {
    secret = await core.readNamespacedSecret({ namespace: ref.namespace, name: ref.name });
  } catch (err) {
    const code = statusCode(err);
    if (code === 404) {
      return failure('KubeConfigNotFound', `Secret ${ref.namespace}/${ref.name} does not exist`);
    }
    if (code === 403) return failure('KubeConfigForbidden', forbiddenMessage(ref, serviceAccount));
    throw new Error(`could not read Secret ${ref.namespace}/${ref.name}: ${apiMessage(err)}`, {
      cause: err,
    });
  }
  return parseKubeConfigSecret(secret.data ?? {}, ref, policy);
}

function forbiddenMessage(ref: SecretRef, serviceAccount: string): string {
  const [saNamespace, saName] = serviceAccount.split('/');
  const role = kubeConfigReaderRole(saName);
  return (
    `the operator may not get Secret ${ref.namespace}/${ref.name}: bind ClusterRole ${role} to its ` +
    `ServiceAccount in namespace ${ref.namespace}: kubectl -n ${ref.namespace} create rolebinding ` +
    `${role} --clusterrole=${role} --serviceaccount=${saNamespace}:${saName}`
  );
}

/** The kubeconfig of a Secret's data (base64 values, as the API returns them). */
export function parseKubeConfigSecret(
  data: Record<string, string>,
  ref: SecretRef,
  policy: KubeConfigPolicy,
): RemoteKubeConfig | KubeConfigFailure {
  const where = `Secret ${ref.namespace}/${ref.name}`;
  const keys = ref.key ? [ref.key] : DEFAULT_KEYS;
  const key = keys.find((k) => data[k] !== undefined);
  if (!key) {
    return failure('KubeConfigInvalid', `${where} has no key ${keys.map((k) => `"${k}"`).join(' or ')}`);
  }
  const text = Buffer.from(data[key], 'base64').toString('utf8');
  const parsed = parseKubeConfig(text, `${where} key "${key}"`, policy);
  if (!parsed.ok) return parsed;
  return { ...parsed, fingerprint: crypto.createHash('sha256').update(key).update(text).digest('hex') };
}

/** A kubeconfig's text, checked, on its current context. `where` names it in messages. */
export function parseKubeConfig(
  text: string,
  where: string,
  policy: KubeConfigPolicy,
): Omit<RemoteKubeConfig, 'fingerprint'> | KubeConfigFailure {
  let raw: unknown;
  try {
    raw = k8s.loadYaml<unknown>(text);
  } catch (err) {
    const mark = (err as { mark?: { line?: number; column?: number } }).mark;
    const at = mark?.line !== undefined ? ` (line ${mark.line + 1}, column ${(mark.column ?? 0) + 1})` : '';
    return failure('KubeConfigInvalid', `${where} is not a kubeconfig: not valid YAML${at}`);
  }
  if (!isObject(raw) || !Array.isArray(raw.clusters) || !Array.isArray(raw.contexts)) {
    return failure('KubeConfigInvalid', `${where} is not a kubeconfig: it has no clusters and contexts`);
  }
  const contextName = raw['current-context'];
  if (typeof contextName !== 'string' || !contextName) {
    return failure('KubeConfigInvalid', `${where} has no current-context`);
  }
  const context = named(raw.contexts, contextName)?.context;
  if (!isObject(context)) {
    return failure('KubeConfigInvalid', `${where}: the current context "${contextName}" is not defined`);
  }
  const cluster = named(raw.clusters, context.cluster)?.cluster;
  if (!isObject(cluster) || typeof cluster.server !== 'string' || !cluster.server) {
    return failure(
      'KubeConfigInvalid',
      `${where}: the cluster "${String(context.cluster)}" of context "${contextName}" has no server`,
    );
  }
  const user =
    context.user === undefined ? {} : named(Array.isArray(raw.users) ? raw.users : [], context.user)?.user;
  if (!isObject(user)) {
    return failure(
      'KubeConfigInvalid',
      `${where}: the user "${String(context.user)}" of context "${contextName}" is not defined`,
    );
  }
  const refused = refusal(cluster, user, policy);
  if (refused) return failure(refused.reason, `${where}: ${refused.message}`);
  let server: string;
  try {
    server = safeServer(cluster.server);
  } catch {
    return failure(
      'KubeConfigInvalid',
      `${where}: the server of cluster "${String(context.cluster)}" is not a URL`,
    );
  }
  const kc = new k8s.KubeConfig();
  try {
    // Only the current context's cluster and user: nothing else of the file is kept or read.
    kc.loadFromOptions({
      // The server without user info: no credential in a URL that error messages may quote.
      clusters: [{ ...clusterOptions(cluster), server, name: 'remote' }],
      users: [{ ...userOptions(user), name: 'remote' }],
      contexts: [{ name: 'remote', cluster: 'remote', user: 'remote' }],
      currentContext: 'remote',
    });
  } catch {
    return failure('KubeConfigInvalid', `${where}: its current context could not be loaded`);
  }
  const proxyUrl = typeof cluster['proxy-url'] === 'string' ? cluster['proxy-url'] : undefined;
  reuseConnections(kc);
  return { ok: true, kc, server, ...(proxyUrl ? { proxyUrl } : {}) };
}

/** Why a cluster and user of a Secret may not be used, or undefined. */
function refusal(
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
  policy: KubeConfigPolicy,
): { reason: KubeConfigReason; message: string } | undefined {
  const files = ['token-file', 'client-certificate', 'client-key', 'username-file'].filter((f) => f in user);
  if ('certificate-authority' in cluster) files.push('certificate-authority');
  if (files.length > 0) {
    return {
      reason: 'KubeConfigInsecure',
      message:
        `it names files (${files.join(', ')}), which would be read on the operator's disk: embed ` +
        `the data instead (token, client-certificate-data, client-key-data, certificate-authority-data)`,
    };
  }
  for (const field of ['exec', 'auth-provider']) {
    if (field in user && !policy.allowExec) {
      return {
        reason: 'KubeConfigInsecure',
        message:
          `its user has ${field} credentials, which run code or call a token issuer from the operator: ` +
          `use a token or a client certificate, or start the operator with --insecure-kubeconfig-exec`,
      };
    }
  }
  if (cluster['insecure-skip-tls-verify'] === true && !policy.allowInsecureTls) {
    return {
      reason: 'KubeConfigInsecure',
      message:
        'its cluster sets insecure-skip-tls-verify: give certificate-authority-data, or start the ' +
        'operator with --insecure-kubeconfig-tls',
    };
  }
  return undefined;
}

/** client-node's cluster options from a kubeconfig cluster entry. */
function clusterOptions(c: Record<string, unknown>): Record<string, unknown> {
  return {
    server: c.server,
    caData: c['certificate-authority-data'],
    skipTLSVerify: c['insecure-skip-tls-verify'] === true,
    tlsServerName: c['tls-server-name'],
    proxyUrl: c['proxy-url'],
  };
}

/** client-node's user options from a kubeconfig user entry (no files: refused before). */
function userOptions(u: Record<string, unknown>): Record<string, unknown> {
  return {
    token: u.token,
    certData: u['client-certificate-data'],
    keyData: u['client-key-data'],
    username: u.username,
    password: u.password,
    exec: u.exec,
    authProvider: u['auth-provider'],
    impersonateUser: u.as,
  };
}

/** The URL without user info or a trailing slash. */
export function safeServer(server: string): string {
  const url = new URL(server);
  url.username = '';
  url.password = '';
  return url.toString().replace(/\/$/, '');
}

function named(list: unknown[], name: unknown): Record<string, unknown> | undefined {
  return list.find((e): e is Record<string, unknown> => isObject(e) && e.name === name);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function failure(reason: KubeConfigReason, message: string): KubeConfigFailure {
  return { ok: false, reason, message };
}

/** A 401 or 403 of the remote API server: its credentials are refused. */
export function isRefusedCredentials(err: unknown): boolean {
  const code = statusCode(err);
  return code === 401 || code === 403;
}
