// The messages between the relay's worker thread and the operator's main thread (host.ts and
// thread.ts). Everything here is structured-clone data: no functions, no sockets, no class instances
// (errors cross as name + message + kind).
import type { TransportChoice } from '../kube-transports';
import type { SpdyTransportOptions } from '../spdy/spdy-transport';
import type { ListenerState, RelayEvent, SessionSpec, SessionStats } from '../types';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** What the worker is started with (workerData). */
export interface WorkerInit {
  transport: TransportChoice;
  /** The API server's URL. */
  server: string;
  /** The kubeconfig's proxy-url, if any: the worker builds the proxy agent itself. */
  proxyUrl?: string;
  /** The lowest level whose lines are sent to the main thread. */
  logLevel: LogLevel;
  /** How often every session's counters are sent to the main thread. */
  statsIntervalMs: number;
  spdy?: Omit<SpdyTransportOptions, 'name' | 'dial' | 'logger'>;
  tuning?: RelayTuning;
}

/** Buffer limits of the relay (defaults: spdy/spdy-session.ts and engine/engine.ts). */
export interface RelayTuning {
  /** Bytes a SPDY stream buffers from the pod before its session stops reading. */
  streamHighWaterMark?: number;
  /** Largest SPDY DATA frame written. */
  maxFrameBytes?: number;
  /** A client socket's write buffer before the pod side is paused. */
  socketBufferBytes?: number;
}

/** TLS settings and credentials of one dial: the cloneable part of https.RequestOptions. */
export interface DialCredentials {
  ca?: CredentialData;
  cert?: CredentialData;
  key?: CredentialData;
  pfx?: CredentialData;
  passphrase?: string;
  rejectUnauthorized?: boolean;
  servername?: string;
  /** `user:password` (basic auth). */
  auth?: string;
  headers?: Record<string, string>;
}

export type CredentialData = string | Uint8Array | (string | Uint8Array)[];

export type Call =
  | { op: 'ensure'; key: string; spec: SessionSpec }
  | { op: 'stop'; key: string }
  | { op: 'stopAccepting' }
  | { op: 'close'; graceMs: number };

/** Main -> worker. */
export type ToWorker =
  | { type: 'call'; id: number; call: Call }
  | { type: 'credentials'; id: number; credentials?: DialCredentials; error?: string };

export interface WireError {
  name: string;
  message: string;
}

/** Worker -> main. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'reply'; id: number; result?: ListenerState[]; error?: WireError; stats?: StatsEntry[] }
  | { type: 'event'; event: RelayEvent; stats: SessionStats | undefined }
  | { type: 'stats'; entries: StatsEntry[] }
  | { type: 'log'; level: LogLevel; message: string; meta?: Record<string, unknown> }
  /** Credentials for a dial; `cluster`: of that remote cluster's id, else the relay's own. */
  | { type: 'credentials'; id: number; cluster?: string };

/** One session's counters; undefined: the session is gone. */
export type StatsEntry = [key: string, stats: SessionStats | undefined];

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
