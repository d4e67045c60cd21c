// What a SPDY transport (spdy-transport.ts) is built with: how it dials a session, and the knobs
// of its session pool with their defaults.
import type { RelayLogger } from '../logger';
import type { PodRef } from '../types';
import type { SpdySession } from './spdy-session';

export type SessionDialer = (pod: PodRef, signal: AbortSignal) => Promise<SpdySession>;

export interface SpdyTransportOptions {
  name: 'spdy' | 'spdy-websocket';
  dial: SessionDialer;
  logger: RelayLogger;
  /** Idle sessions kept open per retained pod. Default 1. */
  warmSessions?: number;
  /** Connections one session carries at most. Default 8. */
  maxStreamsPerSession?: number;
  /**
   * A session whose socket has not drained for this long takes no new connections (its peer stopped
   * reading: spdystream blocked behind a target that does not read). Default 250 ms.
   */
  congestedAfterMs?: number;
  /**
   * A session already carrying connections takes another (while a new one is dialed) only if its
   * socket has not been full for this long: no upload is under way on it. Default 1 000 ms.
   */
  quietBeforeSharingMs?: number;
  /** PING interval of every session. Default 10 000 ms. */
  pingIntervalMs?: number;
  /** A PING unanswered this long marks the session unresponsive. Default 5 000 ms. */
  pingTimeoutMs?: number;
  /** Sessions beyond the warm ones close after this long without a connection. Default 60 000 ms. */
  idleTimeoutMs?: number;
  /** First re-dial delay of a warm session that failed to dial; doubles up to 30 s. Default 250 ms. */
  redialDelayMs?: number;
  /** After a client's FIN, how long a silent pod side is waited for (spdy-tunnel.ts). Default 5 000 ms. */
  halfCloseTimeoutMs?: number;
  /**
   * A retained pod without a connection for this long goes cold: its idle sessions close and none is
   * dialed until its next connection. Checked every pingIntervalMs. 0 (the default here): never.
   */
  warmIdleMs?: number;
  /**
   * Idle sessions kept open across all pods at most; beyond it the least recently used pods go cold.
   * Sessions carrying connections do not count. 0 (the default here): no cap.
   */
  maxWarmSessions?: number;
}
