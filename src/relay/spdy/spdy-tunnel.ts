// One client connection relayed over a portforward.k8s.io stream pair on a SPDY session.
//
// Guarantees
// - Close propagates both ways, half-close too: the client's FIN becomes FIN on the data stream (the
//   pod reads end-of-file), the pod side's FIN ends the client's socket once what it sent is written.
//   Once both directions ended (or either side closed) the tunnel is done at once: nothing lingers.
// - Backpressure both ways through Node's streams: a client that reads slowly pauses the data stream
//   (and, past its buffer, the session's socket: see the session's caveats); a pod side that reads
//   slowly holds the data stream's write callbacks, which pauses the client's socket.
// - A client that sent DIRECT_AFTER_BYTES has its reads switched to direct ones (direct-reads.ts):
//   each read is framed in place and written as one buffer, in order with what went before; the
//   session's socket asking for 'drain' pauses the client's reads as the stream's callbacks did.
// - A node-side error (the error stream's text) ends this connection only, as a `nodeError`; a reset of
//   the data stream or the session failing ends it as that error. The session and its other streams
//   go on in the first two cases.
// - No keep-alive of its own: liveness is the session's (pings and TCP keep-alive), and a target that
//   is merely slow is never cut.
//
// Caveats
// - Not every node passes a FIN on to the pod (kwok, for one, ends a forward only once both directions
//   ended), and a FIN does not say whether the client still reads. So after the client's FIN the
//   tunnel closes once the pod side sent nothing for `halfCloseTimeoutMs` (each byte from the pod
//   restarts the wait); a pod that answers the FIN by closing ends it at once.
import type * as net from 'node:net';
import { asPortForwardError, PortForwardError } from '../errors';
import type { PortForwardConnection } from './portforward';
import type { RelayTunnel, TunnelHooks } from '../transport';
import type { TransportName } from '../types';
import { directReads, directReadsSupported, withHeader } from '../direct-reads';

/**
 * Bytes a client sends through 'data' events before its reads go direct: a connection that carries
 * this much is taken to carry more, and is worth the 64 KiB buffer it then holds until it closes.
 */
export const DIRECT_AFTER_BYTES = 256 * 1024;
let warnedUnsupported = false;

export class SpdyTunnel implements RelayTunnel {
  readonly done: Promise<PortForwardError | undefined>;
  private finished = false;
  private error: PortForwardError | undefined;
  private clientEnded = false;
  /** The data stream's FIN came. */
  private podFin = false;
  /** ...and the error stream's verdict said the forward ended cleanly. */
  private podEnded = false;
  private resolveDone!: (err: PortForwardError | undefined) => void;
  private socketClosed = false;
  private streamClosed = false;
  private halfCloseTimer: NodeJS.Timeout | undefined;
  private released = false;
  /** The client's bytes are read into pooled buffers and framed in place (direct-reads.ts). */
  private direct = false;
  /** Bytes read directly that the session's socket has not taken yet. */
  private directQueued = 0;
  private sentThroughStream = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly conn: PortForwardConnection,
    readonly transport: TransportName,
    hooks: TunnelHooks,
    private readonly halfCloseTimeoutMs = 5_000,
    private readonly verdictTimeoutMs = 1_000,
    /**
     * Called once when the client stops sending (its FIN) or the tunnel ends, whichever is first: from
     * then on the connection puts no load on its session (a half-closed one only waits for the pod).
     */
    private readonly onRelease?: () => void,
    /** After this many bytes from the client through 'data' events, reads go direct; 0: never. */
    directAfterBytes = DIRECT_AFTER_BYTES,
  ) {
    if (directAfterBytes <= 0) directAfterBytes = Infinity;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    const data = conn.data;

    socket.on('data', (chunk: Buffer) => {
      if (this.finished) return;
      hooks.onSent(chunk.length);
      const more = data.write(chunk);
      if ((this.sentThroughStream += chunk.length) >= directAfterBytes) this.goDirect(hooks);
      if (!more && !this.direct) socket.pause();
    });
    data.on('drain', () => {
      if (!this.finished && !this.direct) socket.resume();
    });
    socket.on('end', () => {
      this.clientEnded = true;
      this.release();
      if (!this.finished) data.end(); // FIN on the data stream: the pod reads end-of-file
      this.armHalfClose();
      this.maybeDone();
    });
    socket.on('error', (err) => {
      hooks.logger.debug('client socket error', { error: err.message });
      this.finish(undefined, true);
    });
    socket.on('close', () => {
      this.socketClosed = true;
      // The client is gone: whatever the pod still sends has nowhere to go.
      this.finish(undefined, true);
      this.settle();
    });

    data.on('data', (chunk: Buffer) => {
      hooks.onReceived(chunk.length);
      if (this.clientEnded) this.armHalfClose();
      if (socket.destroyed || socket.writableEnded) return;
      if (!socket.write(chunk)) data.pause();
    });
    socket.on('drain', () => data.resume());
    data.on('end', () => {
      this.podFin = true;
      // A node may end the data stream before it writes why on the error stream (kwok does for a
      // forward command that fails, containerd 2.x for a dial that fails). The error stream ends with
      // the forward either way: its verdict is waited for (at most `verdictTimeoutMs`) before the pod
      // side counts as ended, so that a failed connection is never reported as a clean one, whether
      // the client's FIN comes before, during or after the wait.
      void this.verdict().then((err) => {
        if (this.finished) return;
        if (err) return this.finish(err, true);
        this.podEnded = true;
        if (!socket.destroyed && !socket.writableEnded) socket.end();
        this.maybeDone();
      });
    });
    data.on('error', (err) => {
      if (this.finished) return;
      this.finish(asPortForwardError(err, 'network', 'port-forward stream'), true);
    });
    data.on('close', () => {
      this.streamClosed = true;
      // A stream that closed without FIN nor error (the session closing cleanly): the pod is gone.
      if (!this.podFin && !this.finished) this.finish(undefined, true);
      this.settle();
    });
    void conn.error.then((err) => {
      if (err) this.finish(err, true);
    });

    this.socketClosed = socket.closed; // its 'close' may have come before these handlers
    if (socket.destroyed) this.finish(undefined, true);
    socket.resume(); // accepted paused: nothing was read before the streams were open
  }

  bufferedBytes(): number {
    const d = this.conn.data;
    const held =
      this.socket.writableLength + this.socket.readableLength + d.writableLength + d.readableLength;
    return held + this.directQueued;
  }

  abort(): void {
    this.finish(undefined, true);
  }

  /**
   * Switches the client's reads to direct ones (direct-reads.ts): from the next read on, its bytes go
   * from the socket to the session without a 'data' event, a fresh buffer or a copy. Called in a
   * 'data' handler right after its write; done only when nothing is queued on either side (no byte
   * may overtake another), else tried again on the next chunk.
   */
  private goDirect(hooks: TunnelHooks): void {
    const { socket } = this;
    const data = this.conn.data;
    if (this.direct || this.clientEnded || socket.readableLength > 0 || data.writableLength > 0) return;
    if (!directReadsSupported(socket)) {
      this.sentThroughStream = -Infinity; // not on this socket: never again
      if (!socket.destroyed && !warnedUnsupported) {
        warnedUnsupported = true;
        hooks.logger.warn(
          'direct reads are not available on this Node.js: uploads go through stream events',
          {
            node: process.version,
          },
        );
      }
      return;
    }
    this.direct = directReads(socket, (view, release) => {
      if (this.finished) {
        release();
        return false;
      }
      const n = view.length;
      hooks.onSent(n);
      this.directQueued += n;
      const written = (): void => {
        this.directQueued -= n;
        release();
      };
      return data.writeFramed(withHeader(view), written, () => {
        if (!this.finished) socket.resume();
      });
    });
  }

  /** Both directions ended cleanly: close at once (the client's socket closes once its data is out). */
  private maybeDone(): void {
    if (this.clientEnded && this.podEnded) this.finish(undefined, false);
  }

  /** The error stream's verdict, or undefined when it says nothing within verdictTimeoutMs. */
  private verdict(): Promise<PortForwardError | undefined> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.conn.error.finally(() => clearTimeout(timer)),
      new Promise<undefined>(
        (resolve) => (timer = setTimeout(() => resolve(undefined), this.verdictTimeoutMs)),
      ),
    ]);
  }

  private armHalfClose(): void {
    if (this.finished) return;
    // Re-armed for every chunk from the pod after the client's FIN: refresh() reuses the timer.
    if (this.halfCloseTimer) this.halfCloseTimer.refresh();
    else this.halfCloseTimer = setTimeout(() => this.finish(undefined, false), this.halfCloseTimeoutMs);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease?.();
  }

  private finish(err: PortForwardError | undefined, hard: boolean): void {
    if (this.finished) return;
    this.finished = true;
    this.release();
    clearTimeout(this.halfCloseTimer);
    this.error = err;
    if (hard || err) {
      this.socket.destroy();
      this.conn.close();
    } else {
      // Both FINs were exchanged: the streams are done; the socket closes after its last write.
      if (!this.socket.writableEnded) this.socket.end();
      this.conn.close();
    }
    this.settle();
  }

  private settle(): void {
    if (!this.finished) return;
    if (this.socketClosed && (this.streamClosed || this.conn.data.destroyed)) this.resolveDone(this.error);
  }
}
