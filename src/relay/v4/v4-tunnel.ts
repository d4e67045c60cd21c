// One tunnel: one accepted TCP connection relayed over one open port-forward WebSocket.
//
// Guarantees
// - Close propagates both ways: the client's socket closing (or failing) closes the WebSocket; the
//   WebSocket closing ends the client's socket once what the pod sent is written, and a failure
//   (node error, protocol error, lost API server, missing pong) destroys it.
// - Memory stays bounded whatever either side's speed: when the client reads slowly (socket.write()
//   returns false) the WebSocket is paused until 'drain'; when the API server reads slowly
//   (ws.bufferedAmount above `highWaterMark`) the client's socket is paused until the queue falls to
//   `lowWaterMark`.
// - A ping every `pingIntervalMs`; a tunnel that shows no sign of life (pong, message, or data
//   accepted by the peer) for `pongTimeoutMs` fails with a `timeout` error.
//
// Caveats
// - v4.channel.k8s.io cannot carry a half-close: there is no way to tell the pod "the client sent
//   everything" (only v5 has a close signal, and the kubelet offers v5 for exec, not port-forward). A
//   client that half-closes (socket 'end') still gets the rest of the reply: the tunnel keeps reading
//   until the pod side closes, or until it sent nothing for `halfCloseTimeoutMs`.
// - While the client is not reading, the WebSocket is paused and pongs cannot be read, so liveness is
//   not judged then; it is judged again once the client reads.
import type * as net from 'node:net';
import type WebSocket from 'ws';
import { asPortForwardError, PortForwardError } from '../errors';
import { encodeData, PortForwardDecoder } from './v4-framing';
import type { RelayLogger } from '../logger';
import type { RelayTunnel } from '../transport';

export interface TunnelOptions {
  /** The pod's port, announced by the server on both channels. */
  port: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  halfCloseTimeoutMs: number;
  /** Bytes queued on the WebSocket above which the client's socket is paused. */
  highWaterMark: number;
  /** Bytes queued on the WebSocket at or below which the client's socket resumes. */
  lowWaterMark: number;
  onSent?: (bytes: number) => void;
  onReceived?: (bytes: number) => void;
  logger: RelayLogger;
}

export class Tunnel implements RelayTunnel {
  readonly transport = 'websocket' as const;
  /** Resolves once both the socket and the WebSocket are closed, with the error that ended it, if any. */
  readonly done: Promise<PortForwardError | undefined>;
  private readonly decoder: PortForwardDecoder;
  private finished = false;
  private error: PortForwardError | undefined;
  private socketClosed = false;
  private wsClosed = false;
  private clientEnded = false;
  private socketPaused = false;
  private wsPaused = false;
  private lastAlive = Date.now();
  private readonly pingTimer: NodeJS.Timeout;
  private halfCloseTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private resolveDone!: (err: PortForwardError | undefined) => void;

  constructor(
    private readonly socket: net.Socket,
    private readonly ws: WebSocket,
    private readonly opts: TunnelOptions,
  ) {
    this.decoder = new PortForwardDecoder(opts.port);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));

    // v4.channel.k8s.io is a binary protocol; a text frame is decoded alike (same bytes).
    ws.on('message', (data) => this.onMessage(toBuffer(data)));
    ws.on('pong', () => this.alive());
    ws.on('ping', () => this.alive());
    ws.on('error', (err) => this.finish(asPortForwardError(err, 'network', 'port-forward WebSocket')));
    ws.on('close', (code, reason) => this.onWsClose(code, reason.toString('utf8')));

    socket.on('data', (chunk: Buffer) => this.onClientData(chunk));
    socket.on('drain', () => this.resumeWs());
    socket.on('end', () => this.onClientEnd());
    socket.on('error', (err) => {
      // The client going away is not a tunnel failure.
      opts.logger.debug('client socket error', { error: err.message });
      this.finish(undefined);
    });
    socket.on('close', () => {
      this.socketClosed = true;
      clearTimeout(this.lingerTimer);
      this.finish(undefined);
      this.settle();
    });

    this.pingTimer = setInterval(() => this.ping(), opts.pingIntervalMs);
    // Either side may have closed before these handlers were attached; its 'close' will not come again.
    this.socketClosed = socket.closed;
    this.wsClosed = ws.readyState === ws.CLOSED;
    if (ws.readyState !== ws.OPEN) {
      this.finish(new PortForwardError('network', 'the port-forward WebSocket closed before relaying began'));
    } else if (socket.destroyed) {
      this.finish(undefined);
    }
    this.settle();
    socket.resume(); // accepted paused, so nothing was read before the tunnel was ready
    ws.resume(); // dialed paused, so no message was emitted before the handlers above
  }

  /** Bytes the tunnel holds in memory now, both directions. */
  bufferedBytes(): number {
    return this.socket.writableLength + this.socket.readableLength + this.ws.bufferedAmount;
  }

  /** Closes both sides at once (the session is stopping); not a failure. */
  abort(): void {
    this.finish(undefined, true);
    // Also when a clean end is still waiting for the client or for the closing handshake.
    this.socket.destroy();
    this.ws.terminate();
  }

  private onClientData(chunk: Buffer): void {
    if (this.finished) return;
    this.opts.onSent?.(chunk.length);
    this.ws.send(encodeData(chunk), { binary: true }, () => {
      this.alive(); // the peer's TCP took the bytes
      if (this.socketPaused && this.ws.bufferedAmount <= this.opts.lowWaterMark) {
        this.socketPaused = false;
        this.socket.resume();
      }
    });
    if (!this.socketPaused && this.ws.bufferedAmount > this.opts.highWaterMark) {
      this.socketPaused = true;
      this.socket.pause();
    }
  }

  private onMessage(message: Buffer): void {
    this.alive();
    if (this.finished) return;
    let data: Buffer;
    try {
      data = this.decoder.decode(message);
    } catch (err) {
      this.finish(asPortForwardError(err, 'protocol', 'port-forward'));
      return;
    }
    if (data.length === 0) return;
    this.opts.onReceived?.(data.length);
    if (this.clientEnded) this.armHalfCloseTimer();
    if (this.socket.destroyed || this.socket.writableEnded) return;
    if (!this.socket.write(data) && !this.wsPaused) {
      this.wsPaused = true;
      this.ws.pause();
    }
  }

  private resumeWs(): void {
    if (!this.wsPaused) return;
    this.wsPaused = false;
    this.lastAlive = Date.now(); // pongs could not be read while paused
    this.ws.resume();
  }

  private onClientEnd(): void {
    this.clientEnded = true;
    if (!this.finished) this.armHalfCloseTimer();
  }

  private armHalfCloseTimer(): void {
    clearTimeout(this.halfCloseTimer);
    this.halfCloseTimer = setTimeout(() => {
      this.opts.logger.debug('half-closed tunnel idle: closing', { idleMs: this.opts.halfCloseTimeoutMs });
      this.finish(undefined);
    }, this.opts.halfCloseTimeoutMs);
  }

  private onWsClose(code: number, reason: string): void {
    this.wsClosed = true;
    if (!this.finished) {
      const why = `code ${code}${reason ? `: ${reason}` : ''}`;
      if (!this.decoder.ready) {
        this.finish(
          new PortForwardError(
            'protocol',
            `the port-forward WebSocket closed before the port prefix (${why})`,
          ),
        );
      } else if (code === 1000 || code === 1005) {
        this.finish(undefined); // the pod side closed
      } else {
        this.finish(new PortForwardError('network', `the port-forward WebSocket closed abnormally (${why})`));
      }
    }
    this.settle();
  }

  private ping(): void {
    if (this.finished) return;
    if (!this.wsPaused && Date.now() - this.lastAlive > this.opts.pongTimeoutMs) {
      this.finish(
        new PortForwardError('timeout', `no pong from the API server within ${this.opts.pongTimeoutMs} ms`),
      );
      return;
    }
    this.ws.ping();
  }

  private alive(): void {
    this.lastAlive = Date.now();
  }

  /** Ends the tunnel once: an error (or an abort) tears both sides down, a clean end lets data drain. */
  private finish(err: PortForwardError | undefined, hard = false): void {
    if (this.finished) return;
    this.finished = true;
    this.error = err;
    clearInterval(this.pingTimer);
    clearTimeout(this.halfCloseTimer);
    if (this.wsPaused) this.ws.resume(); // the closing handshake must be readable
    if (err || hard) {
      this.socket.destroy();
      this.ws.terminate();
      return;
    }
    if (!this.socket.destroyed) {
      this.socket.resume(); // a paused socket would never see the client's FIN
      // Once all is written, a client that never closes its side is not waited for forever.
      this.socket.end(() => {
        this.lingerTimer = setTimeout(() => this.socket.destroy(), this.opts.halfCloseTimeoutMs);
      });
    }
    this.ws.close(1000);
  }

  private settle(): void {
    if (this.socketClosed && this.wsClosed) this.resolveDone(this.error);
  }
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
