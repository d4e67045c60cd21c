// Keep-alive for the API calls of a KubeConfig. Why by hand: client-node 2.0.1 (the newest) builds a
// new undici Agent for every request (KubeConfig.createDispatcher, called by
// applySecurityAuthentication, is not cached, unlike createAgent for https), so every API call
// opened its own TCP connection and TLS handshake, on the operator's main thread and on
// kube-apiserver: 100 sequential reads made 100 handshakes (9.5 ms a call on the test control
// plane). This keeps one dispatcher, built from the library's own options, so its pool's keep-alive
// connections are reused (undici's own pooling, not ours).
//
// HTTP/1.1, not HTTP/2: undici 8 offers h2 by default, and on one shared h2 connection a request
// that fails authentication brings a GOAWAY from kube-apiserver (its guard against unauthenticated
// h2 clients), which undici turns into "fetch failed" for every other request in flight on it: a
// refused token showed as "cannot reach the API server" on the watches beside it. On HTTP/1.1 a
// refused request is answered on its own connection, as each was before. (kube-apiserver's
// --goaway-chance sends the same frame to h2 clients at random.)
//
// Guarantees
// - One dispatcher per cluster, user and TLS material (CA, client certificate and key, servername,
//   verification): a client certificate rotated on disk gets a new one, and the one it replaces is
//   closed once its requests are done.
// - Headers (bearer tokens, re-read by client-node per request) are not part of the key: a rotated
//   token needs no new connection.
// - The library's choice of dispatcher (proxy, socks, none) is unchanged; only reuse is added.
import * as k8s from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import type * as https from 'node:https';
import { Agent } from 'undici';

const REUSED = Symbol('portforward-operator.reuseConnections');

/** What client-node's undici dispatchers have in common, as far as this file needs. */
interface Closable {
  close(): Promise<void>;
}

type CreateDispatcher = (
  cluster: k8s.Cluster | null,
  agentOptions: https.AgentOptions,
) => Closable | undefined;

/** The fields of agentOptions that decide a connection (client-node copies these from the kubeconfig). */
const TLS_FIELDS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

function fingerprint(cluster: k8s.Cluster | null, user: k8s.User | null, o: https.AgentOptions): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([cluster?.name, cluster?.server, cluster?.proxyUrl, user?.name]));
  for (const f of TLS_FIELDS) {
    const v = o[f] as unknown;
    h.update(`\0${f}=`);
    if (v === undefined) continue;
    for (const part of Array.isArray(v) ? v : [v]) h.update(Buffer.isBuffer(part) ? part : String(part));
  }
  return h.digest('hex');
}

/**
 * Makes `kc`'s API calls share keep-alive connections (see the header). Returns `kc`. Idempotent.
 */
export function reuseConnections(kc: k8s.KubeConfig): k8s.KubeConfig {
  const target = kc as unknown as { createDispatcher: CreateDispatcher; [REUSED]?: true };
  if (target[REUSED]) return kc;
  const library = target.createDispatcher.bind(kc);
  // The library's own choice of dispatcher, on HTTP/1.1 where it is a plain agent (see the header).
  const build: CreateDispatcher = (cluster, agentOptions) => {
    const o = kc.createDispatcherOptions(cluster, agentOptions);
    return o.type === 'agent'
      ? new Agent({ connect: o.connect, allowH2: false })
      : library(cluster, agentOptions);
  };
  /** By cluster and user: the TLS fingerprint and the dispatcher built for it. */
  const current = new Map<string, { print: string; dispatcher: Closable | undefined }>();
  target.createDispatcher = (cluster, agentOptions) => {
    const user = kc.getCurrentUser();
    const who = JSON.stringify([cluster?.name, user?.name]);
    const print = fingerprint(cluster, user, agentOptions);
    const had = current.get(who);
    if (had?.print === print) return had.dispatcher;
    const dispatcher = build(cluster, agentOptions);
    current.set(who, { print, dispatcher });
    // Requests in flight on the replaced one finish; close() waits for them.
    void had?.dispatcher?.close().catch(() => undefined);
    return dispatcher;
  };
  target[REUSED] = true;
  return kc;
}
