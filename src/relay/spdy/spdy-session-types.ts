// What a SPDY session (session.ts) is built with and reports: its options, counters and events.
import type { PortForwardError } from '../errors';
import type { SpdyStreamOptions } from './stream';

export interface SpdySessionOptions {
  /** Largest DATA payload written; default 64 KiB. */
  maxFrameBytes?: number;
  /** Largest DATA frame accepted from the peer; default 16 MiB - 1 (the protocol's limit). */
  maxReceiveDataBytes?: number;
  /** Largest control frame accepted from the peer; default 1 MiB. */
  maxReceiveControlBytes?: number;
  /**
   * Bytes a stream's readable side buffers before the session stops reading; default 256 KiB (no
   * slower than 1 MiB, and less held per connection: `make bench BENCH=limits`).
   */
  streamHighWaterMark?: number;
  /** Bytes the peer sent before the session took the socket (the upgrade's `head`). */
  head?: Buffer;
  /** A name for messages (the pod, say). */
  name?: string;
  /** After we reset a stream, DATA for it is taken as in flight for this long; default 500 ms. */
  orphanGraceMs?: number;
}

export interface OpenStreamOptions extends SpdyStreamOptions {
  /** Send FIN with the SYN_STREAM: nothing will be written on this stream. */
  fin?: boolean;
  /** 0 (highest, default) .. 7. */
  priority?: number;
}

export interface SpdySessionStats {
  openStreams: number;
  /** Streams opened since the start. */
  streamsOpened: number;
  /** Bytes queued on the underlying socket, not yet taken by the kernel (or the WebSocket). */
  queuedBytes: number;
  /**
   * How long the socket has been waiting for 'drain' (0: it takes writes). Streams wait for the
   * drain, so a peer that stopped reading shows here rather than in queuedBytes.
   */
  writeBlockedMs: number;
  /**
   * When (Date.now()) a write last found the socket full or 64 KiB queued on it, 0 if never: a session
   * with an upload under way does so on every large write; one carrying small exchanges does not.
   */
  lastFullAt: number;
  /**
   * DATA bytes that arrived for streams this session no longer has (kwok's server keeps copying a
   * pod's output into a stream we reset until the pod stops).
   */
  orphanBytes: number;
  /** No new streams (GOAWAY either way, or close()). */
  draining: boolean;
  closed: boolean;
  /** Reading is paused because a stream's reader is slow. */
  readPaused: boolean;
  bytesIn: number;
  bytesOut: number;
}

export interface SpdySessionEvents {
  /** Once, when the session ended: the error that ended it, or undefined for a clean close. */
  close: [err: PortForwardError | undefined];
  goaway: [lastGoodStreamId: number, status: number];
  /** Once: DATA keeps coming for a stream this session reset (see orphanData). */
  orphanFlow: [streamId: number];
}
