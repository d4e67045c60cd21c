// Real TCP peers on loopback for the pods of the test control plane: a server that stands behind a pod
// (an echo server, or one that first says its name), and the clients that check what answers. The
// benchmarks use them, and the tests through test/support/net.ts.
import * as crypto from 'node:crypto';
import * as net from 'node:net';

export interface TcpServer {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Connections open now. */
  open(): number;
  /** Destroys every connection and closes the server. */
  close(): Promise<void>;
}

/** A TCP server that stands behind a pod and echoes (startEchoServer, startNamedEchoServer). */
export type EchoServer = TcpServer;

/**
 * A TCP server on 127.0.0.1 (a kernel-chosen port) that hands each connection to `onConnection`.
 * Connections may stay half-open (the peer's FIN does not end the server's side) unless
 * `allowHalfOpen: false`. `sockets` holds the connections open now.
 */
export async function startTcpServer(
  onConnection: (socket: net.Socket) => void,
  opts: { allowHalfOpen?: boolean } = {},
): Promise<TcpServer & { sockets: ReadonlySet<net.Socket> }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: opts.allowHalfOpen ?? true }, (s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    onConnection(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    accepted: () => accepted,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An echo server: what each connection sends comes back; it ends when the client does. */
export function startEchoServer(): Promise<EchoServer> {
  return startTcpServer((s) => s.pipe(s), { allowHalfOpen: false });
}

/**
 * A server that says who it is: on each connection it writes `${name}\n`, then echoes. Put one behind
 * each pod to see which pod a connection reached.
 */
export function startNamedEchoServer(name: string): Promise<EchoServer> {
  return startTcpServer(
    (s) => {
      s.write(`${name}\n`);
      s.pipe(s);
    },
    { allowHalfOpen: false },
  );
}

export function randomPayload(bytes: number): Buffer {
  return crypto.randomBytes(bytes);
}

/**
 * Connects to host:port, writes `payload`, and resolves with everything read back once `payload.length`
 * bytes arrived. Rejects on a socket error, an early close, or after `timeoutMs`.
 */
export function echoRoundTrip(
  port: number,
  payload: Buffer,
  timeoutMs = 30_000,
  host = '127.0.0.1',
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const sock = net.connect({ port, host });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`echo of ${payload.length} bytes: only ${received} back after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(payload));
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      if (received >= payload.length) {
        clearTimeout(timer);
        sock.end();
        resolve(Buffer.concat(chunks));
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (received < payload.length)
        reject(new Error(`connection closed after ${received} of ${payload.length} bytes`));
    });
  });
}

/** Connects, reads the first line a named echo server sends, and closes: which pod answered. */
export function whoAnswers(port: number, timeoutMs = 15_000, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const sock = net.connect({ port, host });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer on ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        sock.destroy();
        resolve(buf.slice(0, nl));
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`connection to ${host}:${port} closed before an answer`));
    });
  });
}
