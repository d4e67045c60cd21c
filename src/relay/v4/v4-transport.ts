// The per-connection v4.channel.k8s.io transport: each client connection dials its own WebSocket
// (TLS, HTTP upgrade, the API server's own dial to the node), then a Tunnel relays it. The slowest
// transport to connect, but it passes every L7 proxy that passes WebSockets; tried last (ADR 6).
import type * as net from 'node:net';
import type { Dialer } from './v4-dialer';
import { PortForwardError } from '../errors';
import type { RelayTunnel, StreamTarget, Transport, TunnelHooks } from '../transport';
import { Tunnel, TunnelOptions } from './v4-tunnel';

export type WebSocketTunnelOptions = Omit<TunnelOptions, 'port' | 'onSent' | 'onReceived' | 'logger'>;

/** Pings every 10 s, 30 s without a sign of life fails it; 512/128 KiB water marks toward the server. */
export const DEFAULT_WEBSOCKET_TUNNEL: WebSocketTunnelOptions = {
  pingIntervalMs: 10_000,
  pongTimeoutMs: 30_000,
  halfCloseTimeoutMs: 5_000,
  highWaterMark: 512 * 1024,
  lowWaterMark: 128 * 1024,
};

export class WebSocketTransport implements Transport {
  readonly name = 'websocket' as const;

  constructor(
    private readonly dialer: Dialer,
    private readonly tunnel: WebSocketTunnelOptions,
  ) {}

  async connect(
    socket: net.Socket,
    target: StreamTarget,
    hooks: TunnelHooks,
    signal: AbortSignal,
  ): Promise<RelayTunnel> {
    const ws = await this.dialer.dial(
      { namespace: target.namespace, pod: target.pod, port: target.port },
      signal,
    );
    if (signal.aborted || socket.destroyed) {
      ws.terminate();
      throw new PortForwardError('network', 'the client went away before the tunnel opened');
    }
    return new Tunnel(socket, ws, { ...this.tunnel, port: target.port, ...hooks });
  }

  async close(): Promise<void> {
    // Nothing is held between connections.
  }
}
