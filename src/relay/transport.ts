// The relay's transport layer: how one accepted client connection reaches "port N of pod P". The
// session and its connections depend only on this interface, so transports are pluggable (ADR 6):
// SPDY/3.1 sessions dialed before they are needed, the same over a WebSocket tunnel, and the
// per-connection v4.channel.k8s.io WebSocket.
import type * as net from 'node:net';
import type { PortForwardError } from './errors';
import type { RelayLogger } from './logger';
import type { ClusterRef, PodRef, TransportName } from './types';

/** Where one connection goes: a pod (by name, and by uid when known) and one of its ports. */
export interface StreamTarget {
  namespace: string;
  pod: string;
  /** The pod's uid: sessions to a re-created pod of the same name are not reused. */
  uid?: string;
  port: number;
  /** The cluster of the pod; undefined: the relay's own (ClusterTransport routes on it). */
  cluster?: ClusterRef;
}

export interface TunnelHooks {
  onSent(bytes: number): void;
  onReceived(bytes: number): void;
  logger: RelayLogger;
}

/** A pod new connections may go to soon, in its cluster. */
export type RetainedPod = PodRef & { uid?: string; cluster?: ClusterRef };

/** One client connection being relayed. */
export interface RelayTunnel {
  /** Resolves once both sides are closed, with the error that ended it (undefined: a clean end). */
  readonly done: Promise<PortForwardError | undefined>;
  /** The transport that carries it. */
  readonly transport: TransportName;
  /** Bytes held in memory for it now, both directions. */
  bufferedBytes(): number;
  /** Closes both sides at once; not a failure. */
  abort(): void;
}

export interface Transport {
  readonly name: TransportName | 'auto';
  /**
   * Relays `socket` (accepted paused: nothing was read yet) to `target`. Rejects with a
   * PortForwardError when no path could be opened; the socket is then the caller's to close.
   * Aborting `signal` (the client went away) gives up a connect still in progress.
   */
  connect(
    socket: net.Socket,
    target: StreamTarget,
    hooks: TunnelHooks,
    signal: AbortSignal,
  ): Promise<RelayTunnel>;
  /**
   * The pods that new connections may go to soon (every session's targets): a transport with
   * sessions keeps them ready for these and drops those of other pods. Optional.
   */
  retain?(pods: readonly RetainedPod[]): void;
  /**
   * Whether a new connection to `pod` would start without a dial (a session is open for it).
   * Optional: a transport without sessions has no warm state.
   */
  warm?(pod: RetainedPod): boolean;
  /** Closes whatever the transport holds open (sessions); open tunnels are closed with it. */
  close(): Promise<void>;
}
