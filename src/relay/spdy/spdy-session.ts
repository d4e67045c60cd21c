// A client-side SPDY/3.1 session over any Duplex (a TLS socket after `Upgrade: SPDY/3.1`, or the byte
// stream of a `SPDY/3.1+portforward.k8s.io` WebSocket), speaking to moby/spdystream as kubelets and
// kwok run it. Written by hand: no maintained npm package speaks SPDY/3.1 to spdystream.
//
// Guarantees
// - openStream() writes the SYN_STREAM before it returns and never waits for SYN_REPLY: a caller may
//   open streams and write to them in the same tick, and it all leaves in one socket write (the socket
//   is corked for the rest of the tick on the first write). spdystream handles a stream's frames in
//   order on one worker, after the SYN_STREAM handler replied, so such DATA is not lost.
// - Client stream ids are odd and increasing in the order the SYN_STREAMs are written; ping ids are odd;
//   the server's (even) pings are answered. SETTINGS and WINDOW_UPDATE are read and ignored: spdystream
//   has no flow control, and the session never waits for a window.
// - GOAWAY from the peer: no new streams; streams the peer says it processed go on, later ones fail with
//   a `refused` error; the session closes once no stream is left. close() does the same from our side.
// - DATA for a stream the session no longer has is dropped and counted (`orphanBytes`); if it keeps
//   coming after the reset's in-flight window, 'orphanFlow' is emitted once (see orphanData).
// - A session-level failure (malformed frame, bad header block, socket error or close) destroys every
//   stream with one typed PortForwardError and emits 'close' once, with it. Nothing is thrown out of an
//   event handler; no 'error' event is emitted.
//
// Caveats
// - No flow control either way (spdystream has none). A stream whose readable buffer passes its
//   high-water mark pauses the whole socket until it is read again (head-of-line blocking). Toward the
//   server it is worse: spdystream blocks a frame worker on a target that does not read, then its frame
//   reader, so one stalled target stalls every stream and PING of the session (measured: within ~0.3 s,
//   after 12-21 MiB in flight through kube-apiserver + kwok). Sessions must be sized and watched for it.
// - Writes are bounded by the socket: write() callbacks wait for the socket's 'drain', shared by all
//   streams, so a congested socket slows every writer of the session equally.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { asPortForwardError, PortForwardError } from '../errors';
import {
  encodeDataHeader,
  encodeGoAway,
  encodePing,
  encodeRstStream,
  encodeSynStream,
  Frame,
  GoAwayStatus,
  MAX_STREAM_ID,
  RstStatus,
} from './frames';
import { FrameDecoder } from './decoder';
import { HeaderCompressor, HeaderDecompressor, SpdyHeaders } from './headers';
import { PendingPings } from './pings';
import { SpdyStream, StreamOwner } from './stream';
import type {
  OpenStreamOptions,
  SpdySessionEvents,
  SpdySessionOptions,
  SpdySessionStats,
} from './spdy-session-types';

export type * from './spdy-session-types';

export class SpdySession extends EventEmitter<SpdySessionEvents> implements StreamOwner {
  readonly name: string;
  private readonly decoder: FrameDecoder;
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor();
  private readonly streams = new Map<number, SpdyStream>();
  private readonly maxFrameBytes: number;
  private readonly streamHighWaterMark: number;
  private nextStreamId = 1;
  private readonly pings = new PendingPings();
  private drainWaiters: ((err?: Error | null) => void)[] = [];
  private readonly blocking = new Set<SpdyStream>();
  private corked = false;
  private draining = false;
  private closed = false;
  private goneAway: { lastGoodStreamId: number; status: number } | undefined;
  /** Streams we reset, with when: DATA for them in the next ORPHAN_GRACE_MS is still in flight. */
  private readonly resetAt = new Map<number, number>();
  private orphanBytes = 0;
  private orphanFlow = false;
  private readonly orphanGraceMs: number;
  /** Since when the socket has been waiting for 'drain' (0: it is not). */
  private writeBlockedSince = 0;
  /** When a write last found the socket full or UPLOAD_QUEUED_BYTES queued (0: never): an upload. */
  private lastFullAt = 0;
  private streamsOpened = 0;
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(
    private readonly socket: Duplex,
    options: SpdySessionOptions = {},
  ) {
    super();
    this.name = options.name ?? 'SPDY session';
    this.maxFrameBytes = options.maxFrameBytes ?? 64 * 1024;
    if (!(this.maxFrameBytes >= 1 && this.maxFrameBytes <= 0xffffff))
      throw new RangeError(`maxFrameBytes ${this.maxFrameBytes} is not in 1-16777215`);
    this.streamHighWaterMark = options.streamHighWaterMark ?? 256 * 1024;
    this.orphanGraceMs = options.orphanGraceMs ?? 500;
    this.decoder = new FrameDecoder({
      maxDataBytes: options.maxReceiveDataBytes,
      maxControlBytes: options.maxReceiveControlBytes,
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    const ended = (why: string) => () => this.fail(new PortForwardError('network', `${this.name}: ${why}`));
    socket.on('end', ended('the peer closed the connection'));
    socket.on('error', (err) => this.fail(asPortForwardError(err, 'network', this.name)));
    socket.on('close', ended('the connection closed'));
    if (options.head && options.head.length > 0) this.onData(options.head);
  }

  /** Opens a stream: the SYN_STREAM is written now; SYN_REPLY is not waited for. */
  openStream(headers: SpdyHeaders, opts: OpenStreamOptions = {}): SpdyStream {
    if (this.closed) throw new PortForwardError('network', `${this.name} is closed`);
    if (this.draining) throw new PortForwardError('refused', `${this.name} is going away: no new streams`);
    const id = this.nextStreamId;
    if (id > MAX_STREAM_ID) {
      this.close();
      throw new PortForwardError('refused', `${this.name} ran out of stream ids`);
    }
    this.nextStreamId += 2;
    const stream = new SpdyStream(this, id, headers, {
      highWaterMark: opts.highWaterMark ?? this.streamHighWaterMark,
      resetError: opts.resetError,
    });
    this.streams.set(id, stream);
    this.streamsOpened++;
    let block: Buffer;
    try {
      block = this.compressor.compress(headers);
    } catch (err) {
      const e = asPortForwardError(err, 'protocol', `${this.name}: compressing headers`);
      this.fail(e);
      throw e;
    }
    this.send(encodeSynStream(id, block, { fin: opts.fin, priority: opts.priority }));
    if (opts.fin) stream.finWithSyn();
    return stream;
  }

  /** Round-trip time of a PING, in ms; rejects after `timeoutMs` or when the session ends. */
  ping(timeoutMs = 10_000): Promise<number> {
    if (this.closed) return Promise.reject(new PortForwardError('network', `${this.name} is closed`));
    const { id, rtt } = this.pings.start(this.name, timeoutMs);
    this.send(encodePing(id));
    return rtt;
  }

  stats(): SpdySessionStats {
    return {
      openStreams: this.streams.size,
      streamsOpened: this.streamsOpened,
      queuedBytes: this.socket.writableLength,
      writeBlockedMs: this.writeBlockedSince === 0 ? 0 : Date.now() - this.writeBlockedSince,
      lastFullAt: this.lastFullAt,
      orphanBytes: this.orphanBytes,
      draining: this.draining,
      closed: this.closed,
      readPaused: this.blocking.size > 0,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
    };
  }

  /** No new streams; the session closes (GOAWAY, then end of the socket) once the open ones are done. */
  close(): void {
    if (this.closed) return;
    this.draining = true;
    this.maybeFinish();
  }

  /** Ends at once: every stream is destroyed with `err` (default: a `network` error). */
  destroy(err?: PortForwardError): void {
    this.fail(err ?? new PortForwardError('network', `${this.name} was closed`), true);
  }

  // ------------------------------------------------------------------------ StreamOwner

  writeData(stream: SpdyStream, chunk: Buffer, fin: boolean, cb: (err?: Error | null) => void): void {
    if (this.closed) return cb(new PortForwardError('network', `${this.name} is closed`));
    this.sendFrames(stream, chunk, fin);
    if (this.socket.writableNeedDrain) this.drainWaiters.push(cb);
    else cb();
  }

  writeFramed(stream: SpdyStream, framed: Buffer, written: () => void, drained: () => void): boolean {
    const n = framed.length - FRAME_HEADER_BYTES;
    if (this.closed) {
      written();
      return true;
    }
    if (n > this.maxFrameBytes) {
      // Larger than this session's frames: split as write() does (the header room unused).
      this.sendFrames(stream, framed.subarray(FRAME_HEADER_BYTES), false, written);
    } else {
      framed.writeUInt32BE(stream.id, 0);
      framed.writeUInt32BE(n, 4); // flags 0: FIN goes out with end()
      this.send(framed, written);
    }
    if (!this.socket.writableNeedDrain) return true;
    this.drainWaiters.push(() => drained());
    return false;
  }

  resetStream(stream: SpdyStream, status: number): void {
    if (this.closed || !this.streams.has(stream.id)) return;
    this.send(encodeRstStream(stream.id, status));
    if (this.resetAt.size >= 1024) this.resetAt.delete(this.resetAt.keys().next().value!);
    this.resetAt.set(stream.id, Date.now());
  }

  streamReadable(stream: SpdyStream): void {
    if (this.blocking.delete(stream) && this.blocking.size === 0 && !this.closed) this.socket.resume();
  }

  streamBackpressure(stream: SpdyStream): void {
    if (this.blocking.size === 0) this.socket.pause();
    this.blocking.add(stream);
  }

  streamClosed(stream: SpdyStream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    this.streamReadable(stream);
    this.maybeFinish();
  }

  // ------------------------------------------------------------------------ internals

  /**
   * `data` as DATA frames of at most maxFrameBytes (header, then the payload's slice: no copy);
   * `written` once the socket took the last one, and with it every one before.
   */
  private sendFrames(stream: SpdyStream, data: Buffer, fin: boolean, written?: () => void): void {
    let at = 0;
    do {
      const n = Math.min(this.maxFrameBytes, data.length - at);
      const last = at + n >= data.length;
      this.send(encodeDataHeader(stream.id, n, fin && last), last && n === 0 ? written : undefined);
      if (n > 0) this.send(data.subarray(at, at + n), last ? written : undefined);
      at += n;
    } while (at < data.length);
  }

  private send(buf: Buffer, written?: () => void): void {
    if (this.closed) return written?.();
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.bytesOut += buf.length;
    const more = written ? this.socket.write(buf, () => written()) : this.socket.write(buf);
    if (!more || this.socket.writableLength >= UPLOAD_QUEUED_BYTES) this.lastFullAt = Date.now();
    if (!more && this.writeBlockedSince === 0) this.writeBlockedSince = this.lastFullAt;
  }

  private onDrain(): void {
    this.writeBlockedSince = 0;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const cb of waiters) cb();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.bytesIn += chunk.length;
    this.decoder.push(chunk);
    try {
      for (let frame = this.decoder.next(); frame; frame = this.closed ? undefined : this.decoder.next()) {
        this.handle(frame);
      }
    } catch (err) {
      this.fail(asPortForwardError(err, 'protocol', this.name));
    }
  }

  private handle(frame: Frame): void {
    switch (frame.type) {
      case 'data': {
        const stream = this.streams.get(frame.streamId);
        if (stream) stream.receiveData(frame.data, frame.fin);
        else this.orphanData(frame.streamId, frame.data.length);
        return;
      }
      case 'synReply': {
        const stream = this.streams.get(frame.streamId);
        this.inflate(frame.headerBlock, (headers) => stream?.receiveReply(headers));
        if (frame.fin) stream?.receiveData(EMPTY, true);
        return;
      }
      case 'headers': {
        this.inflate(frame.headerBlock);
        if (frame.fin) this.streams.get(frame.streamId)?.receiveData(EMPTY, true);
        return;
      }
      case 'synStream':
        // A client accepts no pushed streams; the block still goes through the shared context.
        this.inflate(frame.headerBlock);
        this.send(encodeRstStream(frame.streamId, RstStatus.REFUSED_STREAM));
        return;
      case 'rstStream':
        this.streams.get(frame.streamId)?.receiveReset(frame.status);
        return;
      case 'ping':
        if (frame.id % 2 === 0) {
          this.send(encodePing(frame.id));
        } else {
          this.pings.replied(frame.id);
        }
        return;
      case 'goaway':
        this.onGoAway(frame.lastGoodStreamId, frame.status);
        return;
      case 'settings':
      case 'windowUpdate':
      case 'unknown':
        return;
    }
  }

  /**
   * DATA for a stream we do not have. Right after we reset it (orphanGraceMs), that is what was in
   * flight; later, the
   * server is still copying into a stream nobody reads, and the session carries waste from then on:
   * 'orphanFlow' tells its owner once, who should stop using it.
   */
  private orphanData(id: number, bytes: number): void {
    this.orphanBytes += bytes;
    if (this.orphanFlow) return;
    const at = this.resetAt.get(id);
    if (at !== undefined && Date.now() - at < this.orphanGraceMs) return;
    this.orphanFlow = true;
    this.emit('orphanFlow', id);
  }

  /** Every block goes through the shared context in frame order, wanted or not. */
  private inflate(block: Buffer, then?: (headers: SpdyHeaders) => void): void {
    this.decompressor.decompress(block).then(
      (headers) => {
        if (!this.closed) then?.(headers);
      },
      (err: unknown) => this.fail(asPortForwardError(err, 'protocol', this.name)),
    );
  }

  private onGoAway(lastGoodStreamId: number, status: number): void {
    if (this.goneAway) return;
    this.goneAway = { lastGoodStreamId, status };
    this.draining = true;
    this.emit('goaway', lastGoodStreamId, status);
    for (const stream of [...this.streams.values()]) {
      if (stream.id > lastGoodStreamId) {
        stream.abort(
          new PortForwardError('refused', `${this.name}: the server went away before stream ${stream.id}`),
        );
      }
    }
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.closed || !this.draining || this.streams.size > 0) return;
    if (!this.goneAway) this.send(encodeGoAway(0, GoAwayStatus.OK));
    this.finish(undefined);
    this.socket.end(); // after the GOAWAY, which is corked until the end of this tick
  }

  private fail(err: PortForwardError, hard = false): void {
    if (this.closed) return;
    // A socket ending after a clean close of every stream under GOAWAY is not a failure.
    if (!hard && this.draining && this.streams.size === 0) {
      this.finish(undefined);
      this.socket.destroy();
      return;
    }
    this.finish(err);
    this.socket.destroy();
  }

  private finish(err: PortForwardError | undefined): void {
    this.closed = true;
    this.draining = true;
    const streamErr = err ?? new PortForwardError('network', `${this.name} was closed`);
    for (const stream of [...this.streams.values()]) stream.abort(streamErr);
    this.streams.clear();
    this.pings.failAll(streamErr);
    this.onDrain();
    this.compressor.close();
    this.decompressor.close();
    this.blocking.clear();
    this.emit('close', err);
  }
}

const EMPTY = Buffer.alloc(0);
/** Bytes queued on the socket that mark an upload (lastFullAt) whatever the socket's high-water mark. */
const UPLOAD_QUEUED_BYTES = 64 * 1024;
/** A DATA frame's header: the room writeFramed's caller leaves in front of the payload. */
const FRAME_HEADER_BYTES = 8;
