// One accepted client connection: dial its tunnel, relay, and report how it ended.
import type * as net from 'node:net';
import type { Dialer } from './dialer';
import type { PortForwardError } from './errors';
import { asPortForwardError } from './errors';
import type { RelayLogger } from './logger';
import { Tunnel, TunnelOptions } from './tunnel';
import type { PodRef } from './types';

export type ConnectionTunnelOptions = Omit<TunnelOptions, 'port' | 'onSent' | 'onReceived' | 'logger'>;

export interface ConnectionDeps {
  dialer: Dialer;
  tunnel: ConnectionTunnelOptions;
  logger: RelayLogger;
  onSent: (bytes: number) => void;
  onReceived: (bytes: number) => void;
  /** The tunnel is open, `ms` after dialing began. */
  onDialed?: (ms: number) => void;
}

export class RelayConnection {
  /** Resolves when the connection is gone, with the error that ended it (undefined: a clean end). */
  readonly done: Promise<PortForwardError | undefined>;
  private readonly dialing = new AbortController();
  private tunnel: Tunnel | undefined;
  private aborted = false;

  constructor(
    readonly socket: net.Socket,
    /** The listener that accepted it. */
    readonly listenerId: string,
    target: PodRef,
    port: number,
    private readonly deps: ConnectionDeps,
  ) {
    this.done = this.run(target, port);
  }

  bufferedBytes(): number {
    return this.tunnel?.bufferedBytes() ?? this.socket.readableLength;
  }

  /** Closes the connection now (its listener or session is going away); not counted as a failure. */
  abort(): void {
    this.aborted = true;
    this.dialing.abort();
    this.tunnel?.abort();
    this.socket.destroy();
  }

  private async run(target: PodRef, port: number): Promise<PortForwardError | undefined> {
    const { socket, deps } = this;
    // While dialing, a client that goes away cancels the dial.
    const onGone = (): void => this.dialing.abort();
    socket.once('close', onGone);
    socket.on('error', (err) =>
      deps.logger.debug('client socket error while dialing', { error: err.message }),
    );
    let ws;
    const dialStart = performance.now();
    try {
      ws = await deps.dialer.dial(
        { namespace: target.namespace, pod: target.name, port },
        this.dialing.signal,
      );
    } catch (err) {
      socket.destroy();
      if (this.dialing.signal.aborted) return undefined; // the client left, or we were aborted
      return asPortForwardError(err, 'network', `port-forward to pod ${target.namespace}/${target.name}`);
    } finally {
      socket.off('close', onGone);
    }
    if (this.aborted || socket.destroyed) {
      ws.terminate();
      return undefined;
    }
    deps.onDialed?.(performance.now() - dialStart);
    this.tunnel = new Tunnel(socket, ws, {
      ...deps.tunnel,
      port,
      logger: deps.logger,
      onSent: deps.onSent,
      onReceived: deps.onReceived,
    });
    const err = await this.tunnel.done;
    return this.aborted ? undefined : err;
  }
}
