// TCP servers and clients of the tests. Servers on 127.0.0.1 that play a pod's program: echo (named or
// not), silent (never reads), stallable (stops answering on command) and source (writes N bytes); the
// generic startTcpServer under them. Clients: connect, read everything (readAll, closed,
// connectAndRead), probe (connectRefused), check an echo (echoRoundTrip, lineFrom) or which pod
// answers (whoAnswers). The ones the benchmarks share live in tools/testenv/peers.ts.
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { EchoServer, startTcpServer } from '../../tools/testenv/peers';

export {
  echoRoundTrip,
  EchoServer,
  randomPayload,
  startEchoServer,
  startNamedEchoServer,
  startTcpServer,
  TcpServer,
  whoAnswers,
} from '../../tools/testenv/peers';

/** A TCP server on 127.0.0.1 running `handle` on each connection; close() destroys them all. */
function serve(handle: (s: net.Socket) => void): ReturnType<typeof startTcpServer> {
  return startTcpServer(handle, { allowHalfOpen: false });
}

/** A stalled target: accepts every connection and never reads a byte (a hung process behind a pod). */
export function startSilentServer(): Promise<EchoServer> {
  return serve((s) => s.pause());
}

export interface StallableServer extends EchoServer {
  /** Stops answering: no connection is read or written any more (the process hangs). */
  stall(): void;
  /** Answers again, from where each connection was. */
  resume(): void;
}

/** An echo server that can stop answering on command, with its connections left open. */
export async function startStallableEchoServer(): Promise<StallableServer> {
  let stalled = false;
  const srv = await serve((s) => {
    s.on('data', (c: Buffer) => {
      if (!s.write(c)) s.pause();
    });
    s.on('drain', () => {
      if (!stalled) s.resume();
    });
    s.on('end', () => s.end());
    if (stalled) s.pause();
  });
  return {
    ...srv,
    stall: () => {
      stalled = true;
      for (const s of srv.sockets) s.pause();
    },
    resume: () => {
      stalled = false;
      for (const s of srv.sockets) s.resume();
    },
  };
}

export interface SourceServer extends EchoServer {
  /** The bytes each connection gets, and their sha256. */
  bytes: number;
  digest: string;
}

/**
 * A fast pod: on each connection it writes `bytes` bytes (a fixed random 1 MiB block over and over)
 * as fast as the path takes them, then closes.
 */
export async function startSourceServer(bytes: number): Promise<SourceServer> {
  const block = crypto.randomBytes(1024 * 1024);
  const hash = crypto.createHash('sha256');
  for (let left = bytes; left > 0; left -= block.length)
    hash.update(block.subarray(0, Math.min(left, block.length)));
  const srv = await serve((s) => {
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, block.length);
        left -= n;
        if (!s.write(block.subarray(0, n))) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  return { ...srv, bytes, digest: hash.digest('hex') };
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/**
 * Connects to 127.0.0.1:port with the client socket bound to `from` (a kwok pod's address, say, to
 * connect as that pod), sends a line and resolves with what came back once the peer echoed it or
 * closed: the line when served by an echo server, '' when refused at accept.
 */
export function lineFrom(port: number, from: string, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const text = `hello from ${from}\n`;
    let got = '';
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
    const timer = setTimeout(() => {
      s.destroy();
      reject(
        new Error(`no echo and no close on 127.0.0.1:${port} for a client at ${from} within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(text));
    s.on('data', (c: string) => {
      got += c;
      if (got.length >= text.length) s.destroy();
    });
    s.on('error', () => undefined); // a refused client sees a reset; 'close' resolves
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

/** Whether an echo server behind 127.0.0.1:port serves a client at `from` (lineFrom). */
export async function servedFrom(port: number, from: string): Promise<boolean> {
  return (await lineFrom(port, from)) === `hello from ${from}\n`;
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

/** Resolves with the outcome of a TCP connect: 'accepted', or the error code (ECONNREFUSED ...). */
export function tryConnect(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.on('connect', () => {
      s.destroy();
      resolve('accepted');
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** Resolves true when a TCP connect to the port is refused (nothing listens). */
export async function connectRefused(port: number, host = '127.0.0.1'): Promise<boolean> {
  return (await tryConnect(port, host)) === 'ECONNREFUSED';
}

/** A connection that reads until the peer closes; resolves with what it read. */
export function connectAndRead(
  port: number,
  send?: Buffer,
  host = '127.0.0.1',
): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, host, () => {
      if (send) s.write(send);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err) => resolve({ data: Buffer.concat(chunks), error: err.message }));
    s.on('close', () => resolve({ data: Buffer.concat(chunks) }));
  });
}
