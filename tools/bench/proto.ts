// The messages between the benchmark and its two child processes (node IPC): the target servers that
// stand behind the pod (targets.ts) and the load client that connects through each relay (client.ts).
// Both run outside the benchmark's process so that its API calls, timers and bookkeeping never share
// an event loop with the bytes being measured.
import type { Verify } from './payload';

/** The ports the target-server process listens on (127.0.0.1). */
export interface TargetPorts {
  /** Sends `streamBytes` on accept, then closes: pod -> client throughput. */
  source: number;
  /** Reads a push header (payload.ts), then that many bytes; replies with the count and a verdict. */
  sink: number;
  /** Writes a greeting on accept: connect -> first byte. */
  greeting: number;
  /** Echoes everything. */
  echo: number;
}

export const GREETING = 'hello from the target\n';

export type TargetsMessage = { type: 'ready'; ports: TargetPorts } | { type: 'error'; error: string };

/** Where the load client connects: a relay's local port, or the target itself (direct TCP). */
export interface Endpoint {
  host: string;
  port: number;
}

export type ClientRequest =
  | { op: 'pull'; to: Endpoint; bytes: number; timeoutMs: number }
  | { op: 'push'; to: Endpoint; bytes: number; verify: Verify; timeoutMs: number }
  | { op: 'connects'; to: Endpoint; count: number; timeoutMs: number }
  | { op: 'echoes'; to: Endpoint; concurrency: number; bytes: number; verify: Verify; timeoutMs: number };

export interface StreamResult {
  ms: number;
  bytes: number;
}

export interface ConnectsResult {
  /** Milliseconds from connect() to the first byte of the greeting, one per successful connection. */
  latencies: number[];
  failed: number;
  errors: string[];
}

export interface EchoesResult {
  /** Wall time from the first connect to the last connection settled. */
  ms: number;
  ok: number;
  failed: number;
  corrupted: number;
  /** The first few failure messages. */
  errors: string[];
}

export type ClientResult = StreamResult | ConnectsResult | EchoesResult;

export type ClientReply =
  { id: number; ok: true; result: ClientResult } | { id: number; ok: false; error: string };
