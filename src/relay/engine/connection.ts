// One accepted client connection: open its path to the pod through the transport, relay, and report
// how it ended.
import type * as net from 'node:net';
import type { PortForwardError } from '../errors';
import { asPortForwardError } from '../errors';
import type { RelayLogger } from '../logger';
import type { RelayTunnel, Transport } from '../transport';
import type { PodTarget, TransportName } from '../types';

export interface ConnectionDeps {
  transport: Transport;
  logger: RelayLogger;
  onSent: (bytes: number) => void;
  onReceived: (bytes: number) => void;
  /** The tunnel is open, `ms` after the connect began, on `transport`. */
  onDialed?: (ms: number, transport: TransportName) => void;
}

export class RelayConnection {
  /** Resolves when the connection is gone, with the error that ended it (undefined: a clean end). */
  readonly done: Promise<PortForwardError | undefined>;
  private readonly connecting = new AbortController();
  private tunnel: RelayTunnel | undefined;
  private aborted = false;
  /**
   * Set when the pod was gone before anything reached it (the dial answered 404) and the client
   * has sent nothing we read: its socket is open and untouched, and may wait for another pod.
   */
  podGone = false;
  /** Pods that answered this connection 404 before (ClientSession sends it elsewhere). */
  avoid: ReadonlySet<string> | undefined;

  constructor(
    readonly socket: net.Socket,
    /** The listener that accepted it. */
    readonly listenerId: string,
    readonly target: PodTarget,
    port: number,
    private readonly deps: ConnectionDeps,
    /** When the client connected (performance.now()): a connection held again keeps its deadline. */
    readonly acceptedAt = performance.now(),
  ) {
    this.done = this.run(target, port);
  }

  bufferedBytes(): number {
    return this.tunnel?.bufferedBytes() ?? this.socket.readableLength;
  }

  /** Closes the connection now (its listener or session is going away); not counted as a failure. */
  abort(): void {
    this.aborted = true;
    this.connecting.abort();
    this.tunnel?.abort();
    this.socket.destroy();
  }

  private async run(target: PodTarget, port: number): Promise<PortForwardError | undefined> {
    const { socket, deps } = this;
    // While connecting, a client that goes away cancels the connect.
    const onGone = (): void => this.connecting.abort();
    const onError = (err: Error): void =>
      deps.logger.debug('client socket error while connecting', { error: err.message });
    socket.once('close', onGone);
    socket.on('error', onError);
    const start = performance.now();
    try {
      this.tunnel = await deps.transport.connect(
        socket,
        { namespace: target.namespace, pod: target.name, uid: target.uid, port, cluster: target.cluster },
        { onSent: deps.onSent, onReceived: deps.onReceived, logger: deps.logger },
        this.connecting.signal,
      );
    } catch (err) {
      if (this.connecting.signal.aborted) {
        socket.destroy();
        return undefined; // the client left, or we were aborted
      }
      const e = asPortForwardError(err, 'network', `port-forward to pod ${target.namespace}/${target.name}`);
      // A pod deleted between the plan and the dial (a rollout, a pod deleted right after it became
      // ready): the API server answers 404 before any byte reached a pod. Nothing of the client's was
      // read (the socket was accepted paused), so it can wait for another pod like any new connection.
      if (e.kind === 'notFound' && socket.bytesRead === 0 && !socket.destroyed) {
        socket.off('error', onError);
        this.podGone = true;
        return e;
      }
      socket.destroy();
      return e;
    } finally {
      socket.off('close', onGone);
    }
    if (this.aborted) {
      this.tunnel.abort();
      return undefined;
    }
    deps.onDialed?.(performance.now() - start, this.tunnel.transport);
    const err = await this.tunnel.done;
    return this.aborted ? undefined : err;
  }
}
