// Opening a SPDY session to a pod's pods/portforward subresource, in the two ways kube-apiserver
// accepts: a direct `Upgrade: SPDY/3.1` POST (passed through to the kubelet as raw bytes), and a
// WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io` (Kubernetes 1.31+, kubectl's default) whose
// binary messages carry the SPDY bytes, which kube-apiserver translates to a SPDY upgrade upstream.
//
// Guarantees
// - Credentials and TLS settings come from `applyOptions` on every dial (the operator passes the
//   kubeconfig's `applyToHTTPSOptions`, so refreshed tokens are used).
// - A refused upgrade becomes a PortForwardError whose kind follows the HTTP status (403 forbidden, 404
//   notFound, ...) and whose message is the metav1.Status message; a connect failure, the handshake
//   deadline (`handshakeTimeoutMs`) and `signal` reject too, and leave no socket open.
// - The bytes that came with the 101 response are the session's first input; TCP_NODELAY is set.
// - Over WebSocket, what the session writes in one tick is one binary message, and the WebSocket is
//   paused while the session does not read (websocket.ts).
//
// Caveats
// - No ping here: the session owner pings (SpdySession.ping) on its own schedule.
import type { IncomingMessage } from 'node:http';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import { kindOfError, kindOfStatus, readBody, statusMessage } from '../upgrade-errors';
import { PortForwardError } from '../errors';
import { PORT_FORWARD_PROTOCOL } from './portforward';
import { SpdySession, SpdySessionOptions } from './spdy-session';
import { checkHandshake, clientWebSocket, handshakeHeaders, WebSocketDuplex } from './over-websocket';

export { WebSocketDuplex };

export const SPDY_UPGRADE = 'SPDY/3.1';
export const SPDY_WEBSOCKET_PROTOCOL = `${SPDY_UPGRADE}+${PORT_FORWARD_PROTOCOL}`;

export interface SpdyTarget {
  namespace: string;
  pod: string;
}

export interface SpdyDialOptions {
  /** The API server's URL, maybe with a path prefix: https://host:6443[/prefix]. */
  server: string;
  /** Sets TLS and credentials on the request options (kc.applyToHTTPSOptions). */
  applyOptions?: (opts: https.RequestOptions) => Promise<void>;
  /** TCP + TLS + upgrade; default 10 000 ms. */
  handshakeTimeoutMs?: number;
  signal?: AbortSignal;
  /** For TLS session resumption across dials. */
  agent?: https.Agent;
  session?: SpdySessionOptions;
}

export function portForwardUrl(server: string, target: SpdyTarget): URL {
  const url = new URL(server);
  const prefix = url.pathname.replace(/\/$/, '');
  const ns = encodeURIComponent(target.namespace);
  const pod = encodeURIComponent(target.pod);
  url.pathname = `${prefix}/api/v1/namespaces/${ns}/pods/${pod}/portforward`;
  return url;
}

/** Direct upgrade: POST with `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`. */
export function dialSpdy(target: SpdyTarget, options: SpdyDialOptions): Promise<SpdySession> {
  const what = `SPDY port-forward to pod ${target.namespace}/${target.pod}`;
  const headers = {
    Connection: 'Upgrade',
    Upgrade: SPDY_UPGRADE,
    'X-Stream-Protocol-Version': PORT_FORWARD_PROTOCOL,
    'Content-Length': '0',
  };
  return upgrade(target, options, what, 'POST', headers, (res, socket, head) => {
    const upgraded = String(res.headers.upgrade ?? '').toLowerCase();
    if (upgraded !== SPDY_UPGRADE.toLowerCase())
      return `the server upgraded to "${upgraded}", not ${SPDY_UPGRADE}`;
    return new SpdySession(socket, { name: what, ...options.session, head });
  });
}

/**
 * SPDY over WebSocket: GET with subprotocol `SPDY/3.1+portforward.k8s.io`; kube-apiserver 1.31+
 * upgrades to a WebSocket and speaks SPDY to the kubelet on our behalf.
 */
export function dialSpdyOverWebSocket(target: SpdyTarget, options: SpdyDialOptions): Promise<SpdySession> {
  const what = `SPDY-over-WebSocket port-forward to pod ${target.namespace}/${target.pod}`;
  const { headers, key } = handshakeHeaders(SPDY_WEBSOCKET_PROTOCOL);
  return upgrade(target, options, what, 'GET', headers, (res, socket, head) => {
    const wrong = checkHandshake(res, key, SPDY_WEBSOCKET_PROTOCOL);
    if (wrong) return wrong;
    const ws = clientWebSocket(socket, head, SPDY_WEBSOCKET_PROTOCOL, 32 * 1024 * 1024);
    return new SpdySession(new WebSocketDuplex(ws), { name: what, ...options.session });
  });
}

type OnUpgrade = (res: IncomingMessage, socket: net.Socket, head: Buffer) => SpdySession | string;

/** One HTTP upgrade request; a refused upgrade, a failed connect, the deadline and `signal` reject. */
async function upgrade(
  target: SpdyTarget,
  options: SpdyDialOptions,
  what: string,
  method: string,
  headers: Record<string, string>,
  onUpgrade: OnUpgrade,
): Promise<SpdySession> {
  const url = portForwardUrl(options.server, target);
  const secure = url.protocol === 'https:';
  const opts: https.RequestOptions = {
    method,
    protocol: url.protocol,
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port || (secure ? 443 : 80),
    path: url.pathname + url.search,
    headers: {},
  };
  await applyCredentials(options, opts, what);
  opts.headers = { ...(opts.headers as Record<string, string>), ...headers };
  if (options.agent && secure) opts.agent = options.agent;
  const signal = options.signal;
  if (signal?.aborted) throw aborted(what);
  const timeoutMs = options.handshakeTimeoutMs ?? 10_000;

  return new Promise<SpdySession>((resolve, reject) => {
    let settled = false;
    const req = (secure ? https : http).request(opts);
    const timer = setTimeout(
      () => settle(new PortForwardError('timeout', `${what}: no upgrade within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = (): void => settle(aborted(what));
    function settle(err: PortForwardError | undefined, session?: SpdySession): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(session!);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err: NodeJS.ErrnoException) =>
      settle(new PortForwardError(kindOfError(err), `${what}: ${err.message}`, { cause: err })),
    );
    req.on('response', (res) => {
      readBody(res, (body) => {
        const status = res.statusCode ?? 0;
        const detail = statusMessage(body) || res.statusMessage || 'no reason given';
        settle(new PortForwardError(kindOfStatus(status), `${what}: HTTP ${status}: ${detail}`, { status }));
      });
    });
    req.on('upgrade', (res: IncomingMessage, socket: net.Socket, head: Buffer) => {
      if (settled) return void socket.destroy();
      socket.setNoDelay(true);
      // A peer that is gone (a restarted API server behind a NAT, a laptop that slept) is found by
      // the kernel; a peer that is only slow keeps its session (ADR 6).
      socket.setKeepAlive(true, 15_000);
      let result: SpdySession | string;
      try {
        result = onUpgrade(res, socket, head);
      } catch (err) {
        result = err instanceof Error ? err.message : String(err);
      }
      if (typeof result === 'string') {
        socket.destroy();
        settle(new PortForwardError('protocol', `${what}: ${result}`));
      } else settle(undefined, result);
    });
    req.end();
  });
}

async function applyCredentials(
  options: SpdyDialOptions,
  opts: https.RequestOptions,
  what: string,
): Promise<void> {
  if (!options.applyOptions) return;
  try {
    await options.applyOptions(opts);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new PortForwardError('forbidden', `${what}: no credentials: ${detail}`, { cause: err });
  }
}

function aborted(what: string): PortForwardError {
  return new PortForwardError('network', `${what}: aborted before the session opened`);
}
