// One SPDY stream as a node Duplex. The session owns the socket; a stream only asks it to write DATA
// frames, a FIN or a RST_STREAM, and is fed what the peer sent.
//
// Guarantees
// - write() becomes DATA frames of at most the session's `maxFrameBytes`; its callback waits while the
//   session's socket asks for 'drain', so a writer that honours write()'s return value stays bounded.
// - end() sends an empty DATA frame with FIN (a half-close: the peer's data still arrives).
// - destroy() before both sides sent FIN resets the stream (RST_STREAM CANCEL); a stream whose both
//   halves closed is not reset. A reset by the peer destroys it with a `StreamResetError` (or with what
//   the opener's `resetError` returns), a session failure with the session's error.
// - Incoming DATA is pushed as it came (a subarray of the socket's chunk, no copy); when the readable
//   buffer passes `readableHighWaterMark` the session stops reading its socket until this stream is
//   read again (see the session's caveats).
import { Duplex } from 'node:stream';
import { PortForwardError } from '../errors';
import { RstStatus } from './frames';
import type { SpdyHeaders } from './headers';

/** What a stream needs of its session. */
export interface StreamOwner {
  writeData(stream: SpdyStream, chunk: Buffer, fin: boolean, cb: (err?: Error | null) => void): void;
  /**
   * Sends `framed` (8 bytes of room for the header, then the payload) as one DATA frame; `written`
   * once the socket took it, `drained` after a false return once the socket drained.
   */
  writeFramed(stream: SpdyStream, framed: Buffer, written: () => void, drained: () => void): boolean;
  resetStream(stream: SpdyStream, status: number): void;
  streamReadable(stream: SpdyStream): void;
  streamBackpressure(stream: SpdyStream): void;
  streamClosed(stream: SpdyStream): void;
}

export interface SpdyStreamOptions {
  /** Bytes the readable side buffers before the session stops reading; default 256 KiB. */
  highWaterMark?: number;
  /** The error a peer's RST_STREAM destroys the stream with; undefined: a StreamResetError. */
  resetError?: (status: number) => Error | undefined;
}

/** The peer reset a stream (RST_STREAM); `code` is the status it gave. */
export class StreamResetError extends PortForwardError {
  constructor(
    readonly streamId: number,
    readonly code: number,
  ) {
    super('network', `SPDY stream ${streamId} was reset by the peer (${statusName(code)})`);
  }
}

export class SpdyStream extends Duplex {
  /** The SYN_REPLY's headers once it arrived (also emitted as 'reply'). */
  replyHeaders: SpdyHeaders | undefined;
  private localFin = false;
  /** The FIN already went out (with the SYN_STREAM). */
  private finSent = false;
  private remoteFin = false;
  /** A RST_STREAM went either way, or the session failed: nothing more may be sent. */
  private dead = false;

  constructor(
    private readonly owner: StreamOwner,
    readonly id: number,
    readonly requestHeaders: SpdyHeaders,
    private readonly options: SpdyStreamOptions = {},
  ) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: options.highWaterMark ?? 256 * 1024,
      writableHighWaterMark: 64 * 1024,
      decodeStrings: true,
    });
    // Failures reach whoever listens for 'error' and stay in `errored`; a stream nobody listens to
    // must not crash the process when its session fails.
    this.on('error', () => undefined);
  }

  /** True once the peer sent FIN. */
  get remoteEnded(): boolean {
    return this.remoteFin;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.dead) return cb(new PortForwardError('network', `SPDY stream ${this.id} is closed`));
    this.owner.writeData(this, chunk, false, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.dead || this.finSent) return cb();
    this.localFin = true;
    this.owner.writeData(this, EMPTY, true, cb);
  }

  override _read(): void {
    this.owner.streamReadable(this);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (!this.dead && !(this.localFin && this.remoteFin)) this.owner.resetStream(this, RstStatus.CANCEL);
    this.dead = true;
    this.owner.streamClosed(this);
    cb(err);
  }

  /**
   * Writes one DATA frame past the writable side: `framed` holds the payload after 8 bytes the
   * session writes the frame's header into, so header and payload leave as one buffer. For a writer
   * that never used write() (its frames would overtake what write() still queues): the tunnel's
   * direct reads. `written()` is called once the bytes are no longer needed (also when nothing is
   * sent: the stream is closed); returns false when the writer should wait for `drained()`.
   */
  writeFramed(framed: Buffer, written: () => void, drained: () => void): boolean {
    if (this.dead || this.localFin || this.destroyed) {
      written();
      return true;
    }
    return this.owner.writeFramed(this, framed, written, drained);
  }

  // ------------------------------------------------------------------------ called by the session

  /** @internal The SYN_STREAM carried FIN: end() must not send another. */
  finWithSyn(): void {
    this.localFin = true;
    this.finSent = true;
    this.end();
  }

  /** @internal */
  receiveData(data: Buffer, fin: boolean): void {
    if (this.destroyed) return;
    if (this.remoteFin) {
      this.owner.resetStream(this, RstStatus.STREAM_ALREADY_CLOSED);
      this.dead = true;
      this.destroy(
        new PortForwardError('protocol', `SPDY protocol error: DATA on stream ${this.id} after FIN`),
      );
      return;
    }
    if (data.length > 0 && !this.push(data)) this.owner.streamBackpressure(this);
    if (fin) {
      this.remoteFin = true;
      this.push(null);
    }
  }

  /** @internal */
  receiveReply(headers: SpdyHeaders): void {
    if (this.replyHeaders) return;
    this.replyHeaders = headers;
    this.emit('reply', headers);
  }

  /** @internal The peer reset the stream. */
  receiveReset(status: number): void {
    if (this.destroyed) return;
    this.dead = true;
    this.destroy(this.options.resetError?.(status) ?? new StreamResetError(this.id, status));
  }

  /** @internal The session ended under the stream. */
  abort(err: Error): void {
    if (this.destroyed) return;
    this.dead = true;
    this.destroy(err);
  }
}

const EMPTY = Buffer.alloc(0);

export function statusName(code: number): string {
  const name = Object.entries(RstStatus).find(([, v]) => v === code)?.[0];
  return name ?? `status ${code}`;
}
