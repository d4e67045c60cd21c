// Real TCP peers for tests: an echo server that stands behind a pod, and a client that sends a payload
// and reads back the whole echo.
import * as crypto from 'node:crypto';
import * as net from 'node:net';

export interface EchoServer {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

export function startEchoServer(): Promise<EchoServer> {
  return startServer(undefined);
}

/** An echo server that first writes `greeting` on each connection (when given). */
function startServer(greeting: string | undefined): Promise<EchoServer> {
  return serve((s) => {
    if (greeting !== undefined) s.write(greeting);
    s.pipe(s);
  });
}

/** A TCP server on 127.0.0.1 running `handle` on each connection; close() destroys them all. */
async function serve(
  handle: (s: net.Socket) => void,
  sockets = new Set<net.Socket>(),
): Promise<EchoServer & { sockets: Set<net.Socket> }> {
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    handle(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
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

export function randomPayload(bytes: number): Buffer {
  return crypto.randomBytes(bytes);
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
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

/**
 * A server that says who it is: on each connection it writes `${name}\n`, then echoes. Put one behind
 * each pod to see which pod a connection reached.
 */
export function startNamedEchoServer(name: string): Promise<EchoServer> {
  return startServer(`${name}\n`);
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
