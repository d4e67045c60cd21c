// The target servers of the relay benchmark, in a child process of their own (forked by children.ts):
// kwok maps the benchmark pod's ports to them, and direct TCP reaches them without Kubernetes.
//
//   node build/tools/bench/targets.js STREAM_BYTES SEED_HEX
//                                    (forked: listens on 127.0.0.1, free ports, sent over IPC)
//   node targets.js STREAM_BYTES SEED_HEX --listen=SOURCE,SINK,GREETING,ECHO
//                                    (in a pod on the real node: those ports on every address, a
//                                     `ready` line on stdout; SIGTERM ends it)
//
// Guarantees: every write respects backpressure (write() false -> wait for 'drain'); a peer that goes
// away mid-transfer costs only its own socket. The process exits when the benchmark disconnects.
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { matchesBlock, parsePushHeader, PUSH_HEADER_BYTES, seededBlock, Verify } from './payload';
import { GREETING, TargetPorts, TargetsMessage } from './proto';

const streamBytes = Number(process.argv[2]);
const BLOCK = seededBlock(process.argv[3] ?? '');
const sockets = new Set<net.Socket>();

function track(s: net.Socket): void {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
  s.on('error', () => s.destroy());
}

/** Sends `streamBytes` of the seeded block over and over, then FIN. */
function source(s: net.Socket): void {
  let left = streamBytes;
  const pump = (): void => {
    while (left > 0 && !s.destroyed) {
      const n = Math.min(left, BLOCK.length);
      left -= n;
      if (!s.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) {
        s.once('drain', pump);
        return;
      }
    }
    if (!s.destroyed) s.end();
  };
  s.resume(); // nothing to read; a client that writes must not stall
  pump();
}

/**
 * Reads the push header (length, check), then that many bytes, checking them against the seeded block
 * or hashing them; replies "count ok", "count mismatch at OFFSET" or "count SHA256HEX", and a newline.
 */
function sink(s: net.Socket): void {
  let header = Buffer.alloc(0);
  let expected = -1;
  let verify: Verify = 'bytes';
  let count = 0;
  let mismatch = -1;
  const hash = crypto.createHash('sha256');
  s.on('data', (c: Buffer) => {
    if (expected < 0) {
      header = Buffer.concat([header, c]);
      if (header.length < PUSH_HEADER_BYTES) return;
      ({ bytes: expected, verify } = parsePushHeader(header));
      c = header.subarray(PUSH_HEADER_BYTES);
    }
    const take = Math.min(c.length, expected - count);
    const part = take === c.length ? c : c.subarray(0, take);
    if (verify === 'sha256') hash.update(part);
    else if (mismatch < 0 && !matchesBlock(BLOCK, count, part)) mismatch = count;
    count += take;
    if (c.length > take) {
      s.end(`error: ${c.length - take} bytes beyond the announced ${expected}\n`);
      return;
    }
    if (count === expected) {
      const verdict =
        verify === 'sha256' ? hash.digest('hex') : mismatch < 0 ? 'ok' : `mismatch at ${mismatch}`;
      s.end(`${count} ${verdict}\n`);
    }
  });
}

/**
 * Connections to the greeting and echo servers close after this long with no byte either way. kwok
 * (v0.8.0) passes neither the client's FIN nor a stream's reset on to the server: its forward waits
 * for the server's side to end. So without this every connection the scale benchmark's probes made
 * stayed open in kwok and here, until kwok ran out of file descriptors (this machine's limit is
 * 20,000) and failed dials with EMFILE. A kubelet with containerd closes the server's side by itself.
 * Real servers close idle connections too; no measure here keeps one idle this long.
 */
const IDLE_CLOSE_MS = 10_000;

function closeWhenIdle(s: net.Socket): void {
  s.setTimeout(IDLE_CLOSE_MS, () => s.destroy());
}

function greeting(s: net.Socket): void {
  closeWhenIdle(s);
  s.setNoDelay(true);
  s.write(GREETING);
  s.resume();
  s.on('end', () => s.end());
}

function echo(s: net.Socket): void {
  closeWhenIdle(s);
  s.pipe(s);
}

/** `--listen=A,B,C,D`: the ports of a pod, in TargetPorts' order; undefined when forked. */
const fixed = /^--listen=(\d+),(\d+),(\d+),(\d+)$/
  .exec(process.argv[4] ?? '')
  ?.slice(1)
  .map(Number);

async function listen(handler: (s: net.Socket) => void, port = 0): Promise<number> {
  const server = net.createServer((s) => {
    track(s);
    handler(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (fixed) server.listen(port, () => resolve());
    else server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

async function main(): Promise<void> {
  if (!Number.isSafeInteger(streamBytes) || streamBytes <= 0) {
    throw new Error(`targets: STREAM_BYTES must be a positive integer, not ${process.argv[2]}`);
  }
  if (process.argv[4] !== undefined && !fixed) {
    throw new Error(`targets: give --listen=SOURCE,SINK,GREETING,ECHO, not ${process.argv[4]}`);
  }
  const ports: TargetPorts = {
    source: await listen(source, fixed?.[0]),
    sink: await listen(sink, fixed?.[1]),
    greeting: await listen(greeting, fixed?.[2]),
    echo: await listen(echo, fixed?.[3]),
  };
  const msg: TargetsMessage = { type: 'ready', ports };
  if (fixed) console.log(JSON.stringify(msg));
  else process.send!(msg);
}

// As a pod's first process, node has no default SIGTERM handler: without this the pod waits out its grace.
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});

main().catch((err: unknown) => {
  const msg: TargetsMessage = { type: 'error', error: (err as Error).message };
  if (process.send) process.send(msg);
  else console.error(JSON.stringify(msg));
  process.exit(1);
});
