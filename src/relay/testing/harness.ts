// Helpers of the relay's tests: TCP peers that play the pod's program, a client that reads everything,
// and polling with a deadline (never a fixed sleep standing in for readiness).
import * as net from 'node:net';

export interface TcpServer {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Connections open now. */
  open(): number;
  close(): Promise<void>;
}

/** A local TCP server that hands each connection to `onConnection`. */
export function startTcpServer(onConnection: (socket: net.Socket) => void): Promise<TcpServer> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    onConnection(s);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        accepted: () => accepted,
        open: () => sockets.size,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    );
  });
}

/** Polls `check` every 20 ms until it returns true, failing with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Polls `value` until it stays the same for `quietMs` (a stalled transfer); resolves with it. */
export async function waitStable(
  what: string,
  value: () => number,
  quietMs = 500,
  timeoutMs = 15_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = value();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    const now = value();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return now;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} to settle`);
  }
}

export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export interface Received {
  data: Buffer;
  /** How the stream ended: 'end' (FIN), or 'close' without FIN (reset or destroyed). */
  how: 'end' | 'close';
}

/** Collects everything `socket` receives until it ends or closes. */
export function readAll(socket: net.Socket): Promise<Received> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.once('end', () => resolve({ data: Buffer.concat(chunks), how: 'end' }));
    socket.once('close', () => resolve({ data: Buffer.concat(chunks), how: 'close' }));
  });
}

/** Resolves once the peer closed `socket` (FIN or reset); what arrives meanwhile is discarded. */
export function closed(socket: net.Socket): Promise<void> {
  if (socket.closed || socket.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    socket.on('error', () => undefined);
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
    socket.resume();
  });
}
