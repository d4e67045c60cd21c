// The WebSocket leg of SPDY over WebSocket: a client handshake written here, because `ws` refuses the
// subprotocol `SPDY/3.1+portforward.k8s.io` ('/' is not a token character of RFC 6455, yet it is the
// name kube-apiserver and kubectl use), and a Duplex over the WebSocket's binary messages.
//
// Guarantees
// - The handshake is RFC 6455's (GET, Upgrade: websocket, a random key, Sec-WebSocket-Accept checked,
//   the subprotocol checked); after it `ws` takes the socket as a client (masking its frames).
// - What is written in one tick (a corked batch) is one binary message; the WebSocket is paused while
//   the readable side is full.
//
// Caveats
// - Handing the upgraded socket to `ws` uses `WebSocket.setSocket`, which `ws` uses internally for its
//   server side; a client made this way needs `_isServer` false. Checked at runtime: a `ws` without
//   them fails the dial with a clear error.
import * as crypto from 'node:crypto';
import type * as http from 'node:http';
import type * as net from 'node:net';
import { Duplex } from 'node:stream';
import WebSocket from 'ws';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Request headers for a WebSocket handshake offering `protocol`; `key` is the nonce sent. */
export function handshakeHeaders(protocol: string): { headers: Record<string, string>; key: string } {
  const key = crypto.randomBytes(16).toString('base64');
  return {
    key,
    headers: {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': key,
      'Sec-WebSocket-Protocol': protocol,
    },
  };
}

/** Why a 101 response does not complete the handshake, or undefined when it does. */
export function checkHandshake(res: http.IncomingMessage, key: string, protocol: string): string | undefined {
  if (String(res.headers.upgrade ?? '').toLowerCase() !== 'websocket')
    return 'the server did not upgrade to websocket';
  const accept = crypto
    .createHash('sha1')
    .update(key + GUID)
    .digest('base64');
  if (res.headers['sec-websocket-accept'] !== accept) return 'a wrong Sec-WebSocket-Accept';
  const chosen = res.headers['sec-websocket-protocol'];
  if (chosen !== protocol) return `subprotocol "${chosen ?? ''}" instead of ${protocol}`;
  return undefined;
}

interface WsInternals {
  _isServer: boolean;
  _protocol: string;
  setSocket(
    socket: net.Socket,
    head: Buffer,
    options: { maxPayload: number; skipUTF8Validation: boolean; allowSynchronousEvents: boolean },
  ): void;
}

/** A client WebSocket on a socket that completed the handshake; `head` is what came after the 101. */
export function clientWebSocket(
  socket: net.Socket,
  head: Buffer,
  protocol: string,
  maxPayload: number,
): WebSocket {
  // ws builds its server-side sockets this way: no address, then setSocket().
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
  const ws = new WebSocket(null as unknown as URL, undefined, {
    autoPong: true,
  } as WebSocket.ClientOptions);
  const inner = ws as unknown as WsInternals;
  if (typeof inner.setSocket !== 'function' || inner._isServer !== true) {
    socket.destroy();
    throw new Error('this version of ws cannot adopt an upgraded socket (setSocket)');
  }
  inner._isServer = false;
  inner._protocol = protocol;
  inner.setSocket(socket, head, { maxPayload, skipUTF8Validation: true, allowSynchronousEvents: true });
  return ws;
}

/**
 * The byte stream of a WebSocket: binary messages in, one binary message per write (or per corked
 * batch) out. The WebSocket is paused while the readable side is full.
 */
export class WebSocketDuplex extends Duplex {
  constructor(private readonly ws: WebSocket) {
    super({ allowHalfOpen: false, writableHighWaterMark: 256 * 1024, readableHighWaterMark: 256 * 1024 });
    ws.on('message', (data: WebSocket.RawData) => {
      if (!this.push(toBuffer(data))) ws.pause();
    });
    ws.on('error', (err) => this.destroy(err));
    ws.on('close', () => this.push(null));
  }

  override _read(): void {
    this.ws.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.send(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.send(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.ws.terminate();
    cb(err);
  }

  private send(buf: Buffer, cb: (err?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) return cb(new Error('the WebSocket is closed'));
    this.ws.send(buf, { binary: true }, (err) => cb(err ?? null));
  }
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
