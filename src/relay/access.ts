// What the relay needs of a kubeconfig: the API server's URL, and on every dial the TLS settings and
// credentials (so exec, OIDC and token-file credentials refresh as they do for API calls). The
// operator passes client-node's KubeConfig through `kubeAccess`; the relay's worker thread gets the
// same answers from the main thread by message (worker/credentials.ts).
import type * as https from 'node:https';
import { RelaySpecError } from './errors';

export interface ApiServerAccess {
  /** The API server's URL, maybe with a path prefix: https://host:6443[/prefix]. */
  readonly server: string;
  /** Sets TLS options, credentials and, where the kubeconfig asks for one (proxy-url), the agent. */
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

/** The part of client-node's KubeConfig that `kubeAccess` uses. */
export interface KubeConfigLike {
  getCurrentCluster(): { server: string } | null;
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

/** `source` as ApiServerAccess: a KubeConfig's current cluster and credentials, or the access itself. */
export function kubeAccess(source: KubeConfigLike | ApiServerAccess): ApiServerAccess {
  if ('server' in source) return source;
  const kc = source;
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new RelaySpecError('the kubeconfig has no current cluster');
  return { server: cluster.server, applyToHTTPSOptions: (opts) => kc.applyToHTTPSOptions(opts) };
}
