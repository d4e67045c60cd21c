// The relay engine's small interface. It knows nothing of CRDs: a session is a set of TCP listeners
// whose accepted connections are relayed to a pod's port through the API server.
import type { TunnelErrorKind } from './errors';

/**
 * How connections reach pods through the API server, in the order the automatic choice tries them
 * (auto-transport.ts). The list of record: the operator's --transport flag and the CRD's
 * status.transport enum are checked against it.
 */
export const TRANSPORT_NAMES = ['spdy', 'spdy-websocket', 'websocket'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

/** Where new connections of a session go; changing it never disturbs open connections. */
export interface PodRef {
  namespace: string;
  name: string;
}

export interface ListenerSpec {
  /** Stable identity within the session (the spec port's name, or its index). */
  id: string;
  address: string;
  /** The local port to bind; 0 asks the kernel for one. */
  localPort: number;
  /** The pod's container port number. */
  remotePort: number;
}

/**
 * The API server a pod is reached through when it is not the relay's own (a remote cluster). The
 * relay asks for its credentials by `id` on every dial; a new `id` (the kubeconfig changed) gets
 * sessions of its own, and those of the old one take no new connections but keep their open ones.
 */
export interface ClusterRef {
  id: string;
  /** The API server's URL. */
  server: string;
  /** The kubeconfig's proxy-url, if any. */
  proxyUrl?: string;
}

/** A pod new connections may go to. */
export interface PodTarget extends PodRef {
  /** The cluster the pod is in; undefined: the relay's own. */
  cluster?: ClusterRef;
  /** The pod's uid when known: a transport never reuses a session to an earlier pod of this name. */
  uid?: string;
  /** The container port per listener id where it differs from the listener's remotePort (named ports). */
  ports?: Record<string, number>;
}

export type LoadBalance = 'first' | 'spread';

export interface SessionSpec {
  listeners: ListenerSpec[];
  /**
   * Ready pods, preferred first. Changing them never disturbs open connections. Empty: a new
   * connection waits up to `holdMs` for a pod, then is refused (and counted as failed).
   */
  targets: PodTarget[];
  /** 'first' (default): new connections go to targets[0]; 'spread': round-robin over all targets. */
  loadBalance?: LoadBalance;
  /**
   * How long a new connection waits while there is no target, counted from when its client connected
   * (also one whose pod was gone at the dial, a 404 before any byte reached it, with no other target);
   * 0 (default) refuses at once.
   */
  holdMs?: number;
  /**
   * Why there is no target, in a user's words (`pod demo/web has no TCP container port named "grpc"`):
   * a connection refused for want of one says so in the log and in `lastError`. Default: no ready pod.
   */
  noTargetReason?: string;
  /** CIDRs allowed to connect; empty or undefined allows everyone (unless allowedClientAddresses is set). */
  allowedSourceRanges?: string[];
  /**
   * Client addresses allowed to connect besides allowedSourceRanges: those of the pods the controller
   * admits (it computes them from its caches; the relay only matches addresses). Undefined: no such
   * rule, allowedSourceRanges alone decides. Set, even empty: a client outside allowedSourceRanges
   * must have one of these addresses.
   */
  allowedClientAddresses?: string[];
}

/** The rule that refused a client: allowedClientAddresses was in force, or allowedSourceRanges alone. */
export type ClientRule = 'clients' | 'sourceRanges';

export type ListenerState =
  | { id: string; state: 'bound'; address: string; localPort: number }
  | { id: string; state: 'error'; address: string; localPort: number; code: string; message: string };

export interface SessionStats {
  active: number;
  total: number;
  failed: number;
  refused: number;
  bytesSent: number; // client -> pod
  bytesReceived: number; // pod -> client
  /** Bytes the relay holds in memory for this session now (both directions); bounded by backpressure. */
  bufferedBytes?: number;
  lastError?: { message: string; time: Date; kind: TunnelErrorKind };
  /** The transport of the latest connection (none yet: undefined). */
  transport?: TransportName;
  /**
   * A session to a target pod is open, so a new connection starts without a dial (ADR 14). Undefined
   * when the transport keeps no sessions (websocket).
   */
  warm?: boolean;
}

export type RelayEvent =
  | { type: 'tunnelError'; key: string; message: string; kind: TunnelErrorKind }
  | { type: 'connectionClosed'; key: string }
  /** A client was refused at accept (and counted in `refused`): its address and the rule in force. */
  | { type: 'clientRefused'; key: string; address: string; rule: ClientRule }
  /**
   * A connection's pod answered its dial 404 (gone) before anything reached it; the connection went
   * to another target or waits. Plan again: the pod is likely deleted.
   */
  | { type: 'podGone'; key: string; message: string }
  /** The relay lost the session (its worker thread died): ensure it again. */
  | { type: 'sessionLost'; key: string; message: string }
  /** A tunnel is open: `connectMs` from accepting the client to relaying, on `transport`. */
  | { type: 'tunnelOpened'; key: string; connectMs: number; transport: TransportName };

export interface RelayEngine {
  /** Makes the session's listeners match `spec` (idempotent); resolves with each listener's state. */
  ensure(key: string, spec: SessionSpec): Promise<ListenerState[]>;
  /** Closes the session's listeners and connections. */
  stop(key: string): Promise<void>;
  /** The session's counters; `buffered: false` leaves out bufferedBytes (it walks every connection). */
  stats(key: string, opts?: { buffered?: boolean }): SessionStats | undefined;
  /** Keys of the sessions it holds. */
  keys(): string[];
  /** Relay events; the controller enqueues the key, it never writes status from here. */
  onEvent(listener: (event: RelayEvent) => void): void;
  /** Closes every listener (new clients are refused); open connections go on. */
  stopAccepting(): Promise<void>;
  /**
   * Closes every session. With `graceMs`, listeners stop accepting at once and open connections get
   * up to that long to finish before they are closed.
   */
  close(graceMs?: number): Promise<void>;
}
