// A local stand-in for pods/portforward over SPDY/3.1, server side, for the SPDY client's tests. It
// accepts a direct `Upgrade: SPDY/3.1` POST and a `SPDY/3.1+portforward.k8s.io` WebSocket, and then
// behaves like the kubelet's httpstream handler on moby/spdystream: SYN_REPLY to each SYN_STREAM,
// error + data streams paired by `requestid`, a dial of the local TCP port the port map names, and on a
// failed dial the error text on the error stream followed by RST_STREAM of both (or, told to, containerd's
// order: FIN on the data stream, then the text). It answers pings and
// can be told to stall (stop reading its sockets) or to send GOAWAY.
import * as http from 'node:http';
import type * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { SPDY_WEBSOCKET_PROTOCOL, WebSocketDuplex } from '../spdy/dial';
import {
  encodeDataHeader,
  encodeGoAway,
  encodePing,
  encodeRstStream,
  encodeSynReply,
  Frame,
  RstStatus,
} from '../spdy/frames';
import { FrameDecoder } from '../spdy/decoder';
import { HeaderCompressor, HeaderDecompressor, headerValue, SpdyHeaders } from '../spdy/headers';

export interface FakeSpdyServerOptions {
  /** The local TCP port behind a pod's port; undefined: no forward (the dial fails). */
  portMap(pod: string, port: number): number | undefined;
  token?: string;
  /** Largest DATA payload the server writes; default 32 KiB (kwok's copy buffer). */
  maxFrameBytes?: number;
  /** Delay before each SYN_REPLY, to show the client does not wait for it; default 0. */
  replyDelayMs?: number;
  /**
   * As kwok's tunnel: a client's RST_STREAM of a data stream ends only what goes to the pod; the
   * pod's output is still sent on the reset stream until the pod ends. Default false (the stream's
   * pod connection is closed, as containerd does).
   */
  copyAfterReset?: boolean;
  /**
   * As containerd 2.x on a failed dial: the data stream's FIN goes out first (its dial closes the
   * stream on return), `textDelayMs` later the error text, then FIN on the error stream; `onDataFin`
   * is told when the FIN went out. Default: the kubelet's order (text, then RST_STREAM of both).
   */
  dataFinFirst?: { textDelayMs: number; onDataFin?: () => void };
}

export interface ReceivedFrame {
  type: Frame['type'];
  streamId?: number;
  /** For DATA: bytes; for SYN_STREAM: the headers. */
  bytes?: number;
  headers?: SpdyHeaders;
  /** A SYN_REPLY had been sent for this stream when the frame arrived. */
  replied?: boolean;
}

export interface FakeSpdyServer {
  url: string;
  /** Sets the bearer token (default: the one the server wants) on request options, as a kubeconfig would. */
  applyOptions(token?: string): (opts: https.RequestOptions) => Promise<void>;
  /** SPDY connections open now. */
  connections(): number;
  /** Every frame received, per connection, in order. */
  received(): ReceivedFrame[][];
  /** true: stop reading every connection's socket (a peer that does not read); false: read again. */
  stall(on: boolean): void;
  /** GOAWAY on every connection, with the last stream id it received. */
  goAway(): void;
  /** Sends a PING with an even id on every connection; resolves when all came back. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/;

export async function startFakeSpdyServer(options: FakeSpdyServerOptions): Promise<FakeSpdyServer> {
  const token = options.token ?? 'fake-token';
  const conns = new Set<FakeConnection>();
  // ws refuses '/' in a subprotocol name: the fake negotiates a stand-in token and writes the real name
  // back into the response, as kube-apiserver (gorilla/websocket) sends it.
  const STAND_IN = 'spdy-tunnel';
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (p) => (p.has(STAND_IN) ? STAND_IN : false),
  });
  wss.on('headers', (headers) => {
    const i = headers.indexOf(`Sec-WebSocket-Protocol: ${STAND_IN}`);
    if (i >= 0) headers[i] = `Sec-WebSocket-Protocol: ${SPDY_WEBSOCKET_PROTOCOL}`;
  });
  const server = http.createServer((_req, res) => res.writeHead(400).end('upgrade required'));
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => undefined);
    const m = PATH.exec(new URL(req.url ?? '/', 'http://fake').pathname);
    if (req.headers.authorization !== `Bearer ${token}`) return refuse(socket, 401, 'Unauthorized');
    if (!m) return refuse(socket, 404, 'the server could not find the requested resource');
    const pod = decodeURIComponent(m[2]);
    const start = (duplex: Duplex, first: Buffer): void => {
      const c = new FakeConnection(duplex, pod, options, () => conns.delete(c));
      conns.add(c);
      if (first.length > 0) c.onData(first);
    };
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    if (upgrade === 'websocket') {
      if (req.headers['sec-websocket-protocol'] !== SPDY_WEBSOCKET_PROTOCOL) {
        return refuse(socket, 400, 'unable to upgrade: no tunneling spdy protocols provided');
      }
      req.headers['sec-websocket-protocol'] = STAND_IN;
      wss.handleUpgrade(req, socket, head, (ws) => start(new WebSocketDuplex(ws), Buffer.alloc(0)));
      return;
    }
    if (upgrade !== 'spdy/3.1' || req.headers['x-stream-protocol-version'] !== 'portforward.k8s.io') {
      return refuse(socket, 400, 'unable to upgrade: missing upgrade headers in request');
    }
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
        'X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n',
    );
    socket.setNoDelay(true);
    start(socket, head);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url,
    applyOptions:
      (t = token) =>
      (opts) => {
        opts.headers = { ...(opts.headers as Record<string, string>), Authorization: `Bearer ${t}` };
        return Promise.resolve();
      },
    connections: () => conns.size,
    received: () => [...conns].map((c) => c.log),
    stall: (on) => conns.forEach((c) => c.setStalled(on)),
    goAway: () => conns.forEach((c) => c.goAway()),
    ping: () => Promise.all([...conns].map((c) => c.ping())).then(() => undefined),
    close: async () => {
      conns.forEach((c) => c.destroy());
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface ServerStream {
  id: number;
  headers: SpdyHeaders;
  replied: boolean;
  pending: Buffer[];
  tcp?: net.Socket;
  remoteFin: boolean;
  waitingDrain?: boolean;
  waitingPod?: boolean;
}

class FakeConnection {
  readonly log: ReceivedFrame[] = [];
  private readonly decoder = new FrameDecoder();
  private readonly inflate = new HeaderDecompressor();
  private readonly deflate = new HeaderCompressor();
  private readonly streams = new Map<number, ServerStream>();
  private readonly pairs = new Map<string, { error?: ServerStream; data?: ServerStream }>();
  private lastStreamId = 0;
  private nextPingId = 2;
  private readonly pings = new Map<number, () => void>();
  /** Pod connections of reset streams still being copied (copyAfterReset). */
  private readonly copying = new Set<net.Socket>();
  private stalled = false;
  private dead = false;
  /** Frames are handled one after another: a SYN_STREAM's headers inflate asynchronously. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly socket: Duplex,
    private readonly pod: string,
    private readonly options: FakeSpdyServerOptions,
    private readonly onClose: () => void,
  ) {
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
    socket.on('end', () => this.destroy());
  }

  onData(chunk: Buffer): void {
    if (this.dead) return;
    this.decoder.push(chunk);
    try {
      for (let f = this.decoder.next(); f && !this.dead; f = this.decoder.next()) {
        const frame = f;
        this.chain = this.chain
          .then(() => (this.dead ? undefined : this.handle(frame)))
          .catch(() => this.destroy());
      }
    } catch {
      this.destroy(); // spdystream drops the connection on a bad frame
    }
  }

  setStalled(on: boolean): void {
    this.stalled = on;
    if (on) this.socket.pause();
    else this.socket.resume();
  }

  goAway(): void {
    this.socket.write(encodeGoAway(this.lastStreamId));
  }

  ping(): Promise<void> {
    const id = this.nextPingId;
    this.nextPingId += 2;
    return new Promise((resolve) => {
      this.pings.set(id, resolve);
      this.socket.write(encodePing(id));
    });
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    for (const s of this.streams.values()) s.tcp?.destroy();
    for (const tcp of this.copying) tcp.destroy();
    this.inflate.close();
    this.socket.destroy();
    this.onClose();
  }

  private async handle(f: Frame): Promise<void> {
    const stream = 'streamId' in f ? this.streams.get(f.streamId) : undefined;
    switch (f.type) {
      case 'synStream': {
        const headers = await this.inflate.decompress(f.headerBlock);
        this.log.push({ type: f.type, streamId: f.streamId, headers });
        if (f.streamId <= this.lastStreamId || f.streamId % 2 === 0) {
          this.socket.write(encodeRstStream(f.streamId, RstStatus.PROTOCOL_ERROR));
          return;
        }
        this.lastStreamId = f.streamId;
        const s: ServerStream = { id: f.streamId, headers, replied: false, pending: [], remoteFin: f.fin };
        this.streams.set(s.id, s);
        const type = headerValue(headers, 'streamtype');
        if (!headerValue(headers, 'port') || (type !== 'error' && type !== 'data')) {
          this.reset(s, RstStatus.REFUSED_STREAM);
          return;
        }
        const reply = (): void => {
          if (this.dead || !this.streams.has(s.id)) return;
          this.socket.write(encodeSynReply(s.id, this.deflate.compress({})));
          s.replied = true;
          this.pair(s, type);
        };
        if (this.options.replyDelayMs) setTimeout(reply, this.options.replyDelayMs);
        else reply();
        return;
      }
      case 'data':
        this.log.push({ type: f.type, streamId: f.streamId, bytes: f.data.length, replied: stream?.replied });
        if (!stream) return;
        if (f.data.length > 0) {
          if (stream.tcp) this.toPod(stream, f.data);
          else stream.pending.push(Buffer.from(f.data));
        }
        if (f.fin) {
          stream.remoteFin = true;
          stream.tcp?.end();
        }
        return;
      case 'rstStream':
        this.log.push({ type: f.type, streamId: f.streamId });
        if (stream) {
          // kwok's copy goes on until the pod ends or the connection closes (its context ends).
          if (this.options.copyAfterReset && stream.tcp) this.copying.add(stream.tcp);
          else stream.tcp?.destroy();
          this.streams.delete(stream.id);
        }
        return;
      case 'ping':
        this.log.push({ type: f.type });
        if (f.id % 2 === 1) this.socket.write(encodePing(f.id));
        else this.pings.get(f.id)?.();
        return;
      case 'goaway':
        this.log.push({ type: f.type });
        return;
      default:
        this.log.push({ type: f.type });
    }
  }

  private pair(s: ServerStream, type: string): void {
    const requestId = headerValue(s.headers, 'requestid') ?? String(type === 'error' ? s.id : s.id - 2);
    const p = this.pairs.get(requestId) ?? {};
    this.pairs.set(requestId, p);
    if (type === 'error') p.error = s;
    else p.data = s;
    if (!p.error || !p.data) return;
    this.pairs.delete(requestId);
    this.forward(p.error, p.data);
  }

  private forward(error: ServerStream, data: ServerStream): void {
    const port = Number(headerValue(data.headers, 'port'));
    const fail = (why: string): void => {
      const text = Buffer.from(`error forwarding port ${port} to pod ${this.pod}, uid : ${why}`);
      const finFirst = this.options.dataFinFirst;
      if (finFirst) {
        this.sendData(data, Buffer.alloc(0), true);
        finFirst.onDataFin?.();
        setTimeout(() => {
          this.sendData(error, text, false);
          this.sendData(error, Buffer.alloc(0), true);
        }, finFirst.textDelayMs);
        return;
      }
      this.sendData(error, text, false);
      this.reset(data, RstStatus.CANCEL);
      this.reset(error, RstStatus.CANCEL);
    };
    const target = this.options.portMap(this.pod, port);
    if (target === undefined) return fail(`no forward found for port ${port} in pod "${this.pod}"`);
    const tcp = net.connect(target, '127.0.0.1');
    tcp.setNoDelay(true);
    tcp.once('connect', () => {
      data.tcp = tcp;
      for (const b of data.pending) this.toPod(data, b);
      data.pending = [];
      if (data.remoteFin) tcp.end();
    });
    tcp.once('error', (err) => {
      if (!data.tcp) fail(`failed to dial 127.0.0.1:${target}: ${err.message}`);
      else this.reset(data, RstStatus.CANCEL);
    });
    tcp.on('data', (c: Buffer) => {
      this.sendData(data, c, false);
      if (this.socket.writableNeedDrain && !data.waitingDrain) {
        data.waitingDrain = true;
        tcp.pause();
        this.socket.once('drain', () => {
          data.waitingDrain = false;
          tcp.resume();
        });
      }
    });
    tcp.on('end', () => {
      // kubelet: the forward returned, so both streams are closed (FIN).
      if (!this.streams.has(data.id)) return;
      this.sendData(data, Buffer.alloc(0), true);
      this.sendData(error, Buffer.alloc(0), true);
    });
  }

  private toPod(s: ServerStream, data: Buffer): void {
    if (!s.tcp!.write(data) && !this.stalled && !s.waitingPod) {
      // spdystream blocks its frame worker, then its reader, on a target that does not read.
      s.waitingPod = true;
      this.socket.pause();
      s.tcp!.once('drain', () => {
        s.waitingPod = false;
        if (!this.stalled) this.socket.resume();
      });
    }
  }

  private sendData(s: ServerStream, data: Buffer, fin: boolean): void {
    if (this.dead) return;
    const max = this.options.maxFrameBytes ?? 32 * 1024;
    let at = 0;
    do {
      const n = Math.min(max, data.length - at);
      this.socket.write(encodeDataHeader(s.id, n, fin && at + n >= data.length));
      if (n > 0) this.socket.write(data.subarray(at, at + n));
      at += n;
    } while (at < data.length);
  }

  private reset(s: ServerStream, status: number): void {
    if (!this.streams.delete(s.id)) return;
    s.tcp?.destroy();
    this.socket.write(encodeRstStream(s.id, status));
  }
}

function refuse(socket: net.Socket, code: number, message: string): void {
  const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code });
  socket.end(
    `HTTP/1.1 ${code} ${http.STATUS_CODES[code] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
