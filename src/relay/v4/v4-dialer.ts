// Opening the WebSocket of one tunnel. The tunnel depends only on the Dialer interface, so tests dial a
// local fake server and the operator dials the API server with the kubeconfig's credentials.
import type { ClientRequest, IncomingMessage } from 'node:http';
import type * as https from 'node:https';
import WebSocket from 'ws';
import { ApiServerAccess, kubeAccess, KubeConfigLike } from '../access';
import { PortForwardError } from '../errors';
import { kindOfError, kindOfStatus, readBody, statusMessage } from '../upgrade-errors';
import { PORT_FORWARD_SUBPROTOCOL } from './v4-framing';

export interface TunnelTarget {
  namespace: string;
  pod: string;
  /** The pod's port (one port per tunnel). */
  port: number;
}

export interface Dialer {
  /**
   * Resolves with an open WebSocket that negotiated v4.channel.k8s.io, or rejects with a
   * PortForwardError. Aborting `signal` closes a WebSocket still opening and rejects.
   * The WebSocket is handed over paused (`ws.pause()` in its 'open' event): the server's first
   * messages may arrive with the upgrade response, and none may be emitted before the caller
   * listens. The caller resumes it.
   */
  dial(target: TunnelTarget, signal: AbortSignal): Promise<WebSocket>;
}

export interface KubeDialerOptions {
  /** Time allowed for the TCP + TLS connect and the HTTP upgrade. Default 10 000 ms. */
  handshakeTimeoutMs?: number;
  /** Largest WebSocket message accepted from the server (a kubelet sends ≤ 32 KiB). Default 1 MiB. */
  maxMessageBytes?: number;
}

/** The path of the pods/portforward subresource for one port. */
export function portForwardPath(target: TunnelTarget): string {
  const ns = encodeURIComponent(target.namespace);
  const pod = encodeURIComponent(target.pod);
  return `/api/v1/namespaces/${ns}/pods/${pod}/portforward?ports=${target.port}`;
}

/**
 * Dials `GET {server}/api/v1/namespaces/{ns}/pods/{pod}/portforward?ports={port}` as a WebSocket with
 * the current context's TLS settings and credentials. Credentials are applied on every dial, so exec
 * and token-file providers refresh their tokens as they do for API calls.
 */
export class WebSocketDialer implements Dialer {
  private readonly handshakeTimeoutMs: number;
  private readonly maxMessageBytes: number;
  private readonly access: ApiServerAccess;

  constructor(kc: KubeConfigLike | ApiServerAccess, options: KubeDialerOptions = {}) {
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
    this.access = kubeAccess(kc);
  }

  async dial(target: TunnelTarget, signal: AbortSignal): Promise<WebSocket> {
    const what = `port-forward to pod ${target.namespace}/${target.pod} port ${target.port}`;
    const opts: WebSocket.ClientOptions = {};
    try {
      await this.access.applyToHTTPSOptions(opts as https.RequestOptions);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      throw new PortForwardError('forbidden', `${what}: no credentials from the kubeconfig: ${detail}`, {
        cause: err,
      });
    }
    if (signal.aborted) throw aborted(what);
    const ws = new WebSocket(wsUrl(this.access.server, target), [PORT_FORWARD_SUBPROTOCOL], {
      ...opts,
      handshakeTimeout: this.handshakeTimeoutMs,
      maxPayload: this.maxMessageBytes,
      perMessageDeflate: false,
      followRedirects: false,
      // opts.agent is client-node's agent for this cluster (one per cluster, cached): it honours the
      // kubeconfig's proxy-url, and keeps TLS sessions for resumption, so that each tunnel (a new
      // connection: the upgrade consumes it) saves the full handshake.
    });
    return openWebSocket(ws, what, signal);
  }
}

function wsUrl(server: string, target: TunnelTarget): string {
  const url = new URL(server);
  const scheme = url.protocol === 'https:' ? 'wss:' : 'ws:';
  // A server URL may carry a path prefix (API proxies such as Rancher's): keep it.
  return `${scheme}//${url.host}${url.pathname.replace(/\/$/, '')}${portForwardPath(target)}`;
}

/** Waits for `ws` to open; turns a refused upgrade or a failed connect into a PortForwardError. */
export function openWebSocket(ws: WebSocket, what: string, signal: AbortSignal): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: PortForwardError | undefined): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      ws.off('open', onOpen);
      ws.off('unexpected-response', onResponse);
      if (!err) return resolve(ws);
      ws.terminate();
      reject(err);
    };
    const onOpen = (): void => {
      ws.pause(); // synchronously in 'open', before ws emits anything that came with the upgrade
      settle(undefined);
    };
    const onAbort = (): void => settle(aborted(what));
    const onResponse = (_req: ClientRequest, res: IncomingMessage): void => {
      readBody(res, (body) => {
        const status = res.statusCode ?? 0;
        const detail = statusMessage(body) || res.statusMessage || 'no reason given';
        settle(new PortForwardError(kindOfStatus(status), `${what}: HTTP ${status}: ${detail}`, { status }));
      });
    };
    // Stays attached: errors after a failed dial (the aborted handshake) must not go unhandled.
    ws.on('error', (err: NodeJS.ErrnoException) => {
      settle(new PortForwardError(kindOfError(err), `${what}: ${err.message}`, { cause: err }));
    });
    ws.once('open', onOpen);
    ws.on('unexpected-response', onResponse);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function aborted(what: string): PortForwardError {
  return new PortForwardError('network', `${what}: the client went away before the tunnel opened`);
}
