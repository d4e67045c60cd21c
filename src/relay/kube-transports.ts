// The transports of the operator, on the kubeconfig's current context: TLS, credentials and proxy
// from client-node's applyToHTTPSOptions on every dial (so exec and token-file credentials refresh).
import type * as https from 'node:https';
import { ApiServerAccess, kubeAccess, KubeConfigLike } from './access';
import { AutoTransport } from './auto-transport';
import { WebSocketDialer } from './v4/v4-dialer';
import type { RelayLogger } from './logger';
import { dialSpdy, dialSpdyOverWebSocket, SpdyDialOptions } from './spdy/dial';
import type { SpdySessionOptions } from './spdy/spdy-session';
import { SpdyTransport, SpdyTransportOptions } from './spdy/spdy-transport';
import type { Transport } from './transport';
import type { TransportName } from './types';
import { DEFAULT_WEBSOCKET_TUNNEL, WebSocketTransport } from './v4/v4-transport';

export type TransportChoice = TransportName | 'auto';

export interface KubeTransportOptions {
  logger: RelayLogger;
  /** Tuning of the SPDY session pools (defaults in spdy-transport.ts). */
  spdy?: Omit<SpdyTransportOptions, 'name' | 'dial' | 'logger'>;
  /** Tuning of each SPDY session (defaults in spdy/spdy-session.ts). */
  session?: Pick<SpdySessionOptions, 'streamHighWaterMark' | 'maxFrameBytes'>;
}

export function kubeTransport(
  choice: TransportChoice,
  kc: KubeConfigLike | ApiServerAccess,
  options: KubeTransportOptions,
): Transport {
  const access = kubeAccess(kc);
  const dialOptions = (signal: AbortSignal): SpdyDialOptions => ({
    server: access.server,
    applyOptions: (opts: https.RequestOptions) => access.applyToHTTPSOptions(opts),
    signal,
    session: options.session,
  });
  const spdy = (name: 'spdy' | 'spdy-websocket'): SpdyTransport =>
    new SpdyTransport({
      ...options.spdy,
      name,
      logger: options.logger,
      dial: (pod, signal) =>
        (name === 'spdy' ? dialSpdy : dialSpdyOverWebSocket)(
          { namespace: pod.namespace, pod: pod.name },
          dialOptions(signal),
        ),
    });
  const websocket = (): WebSocketTransport =>
    new WebSocketTransport(new WebSocketDialer(access), DEFAULT_WEBSOCKET_TUNNEL);
  switch (choice) {
    case 'spdy':
    case 'spdy-websocket':
      return spdy(choice);
    case 'websocket':
      return websocket();
    case 'auto':
      return new AutoTransport([spdy('spdy'), spdy('spdy-websocket'), websocket()], options.logger);
  }
}
