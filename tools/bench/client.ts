// The load client of the relay benchmark, in a child process of its own (forked by children.ts): it
// runs one request of the benchmark at a time against a local port (a relay's, or the target's for
// direct TCP) and reports figures over IPC. Timing starts at connect(), so a relay's connection set-up
// is part of every figure.
//
//   node build/tools/bench/client.js SEED_HEX      (forked; requests and replies over IPC)
//
// Guarantees: every request has a deadline; a connection that errors, closes early or misses the
// deadline is counted as failed, never waited on; every byte that comes back is checked (against the
// expected bytes, or by sha256 with BENCH_VERIFY=sha256; see payload.ts), not only counted.
// Caveats: the streams repeat one seeded 4 MiB block; echo payloads are distinct per connection
// (windows at different offsets of one random pool), so bytes crossed between connections are caught.
import * as crypto from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import { blockStreamSha256, matchesBlock, pushHeader, seededBlock, Verify } from './payload';
import {
  ClientReply,
  ClientRequest,
  ClientResult,
  ConnectsResult,
  EchoesResult,
  Endpoint,
  GREETING,
  StreamResult,
} from './proto';

const BLOCK = seededBlock(process.argv[2] ?? '');
const ECHO_STRIDE = 4096;

const now = (): bigint => process.hrtime.bigint();
const msSince = (t0: bigint): number => Number(now() - t0) / 1e6;

function connect(to: Endpoint): net.Socket {
  const s = net.connect(to);
  s.setNoDelay(true);
  return s;
}

/** Reads `bytes` sent by the source server and checks them; time from connect() to the last byte. */
function pull(to: Endpoint, bytes: number, timeoutMs: number): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    let got = 0;
    let done = false;
    const s = connect(to);
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const ms = msSince(t0);
      s.destroy();
      if (err) reject(err);
      else resolve({ ms, bytes: got });
    };
    const timer = setTimeout(
      () => finish(new Error(`pull: ${got} of ${bytes} bytes after ${timeoutMs} ms`)),
      timeoutMs,
    );
    s.on('data', (c: Buffer) => {
      if (!matchesBlock(BLOCK, got, c)) finish(new Error(`pull: the bytes at ${got} differ from those sent`));
      got += c.length;
      if (got > bytes) finish(new Error(`pull: ${got} bytes, more than the ${bytes} sent`));
      else if (got === bytes) finish();
    });
    s.on('error', (err) => finish(new Error(`pull: ${err.message} after ${got} of ${bytes} bytes`)));
    s.on('close', () => finish(new Error(`pull: closed after ${got} of ${bytes} bytes`)));
  });
}

const pushHashes = new Map<number, string>();

function expectedVerdict(bytes: number, verify: Verify): string {
  if (verify === 'bytes') return `${bytes} ok`;
  let h = pushHashes.get(bytes);
  if (!h) pushHashes.set(bytes, (h = blockStreamSha256(BLOCK, bytes)));
  return `${bytes} ${h}`;
}

/** Writes the push header and `bytes` to the sink; time from connect() to its verdict. */
async function push(to: Endpoint, bytes: number, verify: Verify, timeoutMs: number): Promise<StreamResult> {
  const want = expectedVerdict(bytes, verify); // before t0: hashing is not the relay's time
  const t0 = now();
  const s = connect(to);
  let reply = '';
  let replied = false; // the sink answers early only with an error: stop writing then
  const timer = setTimeout(() => s.destroy(new Error(`push: no reply after ${timeoutMs} ms`)), timeoutMs);
  try {
    const answered = new Promise<void>((resolve, reject) => {
      s.setEncoding('utf8');
      s.on('data', (c: string) => {
        reply += c;
        if (reply.includes('\n')) {
          replied = true;
          resolve();
        }
      });
      s.on('error', reject);
      s.on('close', () => reject(new Error(`push: closed before the reply (got ${JSON.stringify(reply)})`)));
    });
    answered.catch(() => undefined); // observed below; a failed write must not leave it unhandled
    await once(s, 'connect');
    const header = pushHeader(bytes, verify);
    s.write(header);
    for (let left = bytes; left > 0 && !s.destroyed && !replied;) {
      const n = Math.min(left, BLOCK.length);
      left -= n;
      if (!s.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) {
        await Promise.race([once(s, 'drain'), answered]);
      }
    }
    await answered;
    const ms = msSince(t0);
    const got = reply.trim();
    if (got !== want) throw new Error(`push: the sink answered ${JSON.stringify(got)}, expected ${want}`);
    return { ms, bytes: bytes + header.length };
  } finally {
    clearTimeout(timer);
    s.destroy();
  }
}

/** One connection: ms from connect() to the first byte of the greeting. */
function firstByte(to: Endpoint, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const s = connect(to);
    let done = false;
    const finish = (err?: Error, ms?: number): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(ms!);
    };
    const timer = setTimeout(() => finish(new Error(`no greeting after ${timeoutMs} ms`)), timeoutMs);
    s.once('data', (c: Buffer) => {
      const ms = msSince(t0);
      if (c[0] !== GREETING.charCodeAt(0)) finish(new Error(`unexpected first byte ${c[0]}`));
      else finish(undefined, ms);
    });
    s.on('error', (err) => finish(err));
    s.on('close', () => finish(new Error('closed before the greeting')));
  });
}

async function connects(to: Endpoint, count: number, timeoutMs: number): Promise<ConnectsResult> {
  const r: ConnectsResult = { latencies: [], failed: 0, errors: [] };
  for (let i = 0; i < count; i++) {
    try {
      r.latencies.push(await firstByte(to, timeoutMs));
    } catch (err) {
      r.failed++;
      if (r.errors.length < 5) r.errors.push((err as Error).message);
    }
  }
  return r;
}

let pool = Buffer.alloc(0);
const echoHashes = new Map<string, string>();

/** Connection i's payload: a window of the random pool at offset i * ECHO_STRIDE. */
function echoPayload(i: number, bytes: number, verify: Verify): { payload: Buffer; hash?: string } {
  const need = bytes + (i + 1) * ECHO_STRIDE;
  if (pool.length < need) pool = crypto.randomBytes(Math.max(need, bytes + 256 * ECHO_STRIDE));
  const payload = pool.subarray(i * ECHO_STRIDE, i * ECHO_STRIDE + bytes);
  if (verify === 'bytes') return { payload };
  const key = `${pool.length}:${i}:${bytes}`;
  let hash = echoHashes.get(key);
  if (!hash) echoHashes.set(key, (hash = crypto.createHash('sha256').update(payload).digest('hex')));
  return { payload, hash };
}

type EchoOutcome = { kind: 'ok' } | { kind: 'failed' | 'corrupted'; error: string };

/** Sends `payload`, reads as many bytes back and checks them: byte for byte, or by sha256 when `hash`. */
function echoOne(
  to: Endpoint,
  payload: Buffer,
  hash: string | undefined,
  deadline: number,
): Promise<EchoOutcome> {
  return new Promise((resolve) => {
    const digest = hash ? crypto.createHash('sha256') : undefined;
    let got = 0;
    let done = false;
    const s = connect(to);
    const finish = (o: EchoOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(o);
    };
    const timer = setTimeout(
      () => finish({ kind: 'failed', error: `${got} of ${payload.length} bytes back by the deadline` }),
      Math.max(0, deadline - Date.now()),
    );
    s.on('connect', () => s.write(payload));
    s.on('data', (c: Buffer) => {
      if (got + c.length > payload.length) {
        finish({ kind: 'corrupted', error: `${got + c.length} bytes back, ${payload.length} sent` });
        return;
      }
      if (digest) digest.update(c);
      else if (payload.compare(c, 0, c.length, got, got + c.length) !== 0) {
        finish({ kind: 'corrupted', error: `the bytes at ${got} differ from those sent` });
        return;
      }
      got += c.length;
      if (got === payload.length) {
        if (digest && digest.digest('hex') !== hash)
          finish({ kind: 'corrupted', error: 'sha256 of the echo differs' });
        else finish({ kind: 'ok' });
      }
    });
    s.on('error', (err) => finish({ kind: 'failed', error: `${err.message} after ${got} bytes back` }));
    s.on('close', () =>
      finish({ kind: 'failed', error: `closed after ${got} of ${payload.length} bytes back` }),
    );
  });
}

async function echoes(
  to: Endpoint,
  concurrency: number,
  bytes: number,
  verify: Verify,
  timeoutMs: number,
): Promise<EchoesResult> {
  const conns = Array.from({ length: concurrency }, (_, i) => echoPayload(i, bytes, verify)); // before t0
  const t0 = now();
  const deadline = Date.now() + timeoutMs;
  const outcomes = await Promise.all(conns.map((c) => echoOne(to, c.payload, c.hash, deadline)));
  const r: EchoesResult = { ms: msSince(t0), ok: 0, failed: 0, corrupted: 0, errors: [] };
  for (const o of outcomes) {
    if (o.kind === 'ok') r.ok++;
    else {
      r[o.kind]++;
      if (r.errors.length < 5) r.errors.push(`${o.kind}: ${o.error}`);
    }
  }
  return r;
}

function handle(req: ClientRequest): Promise<ClientResult> {
  switch (req.op) {
    case 'pull':
      return pull(req.to, req.bytes, req.timeoutMs);
    case 'push':
      return push(req.to, req.bytes, req.verify, req.timeoutMs);
    case 'connects':
      return connects(req.to, req.count, req.timeoutMs);
    case 'echoes':
      return echoes(req.to, req.concurrency, req.bytes, req.verify, req.timeoutMs);
  }
}

process.on('message', (msg: ClientRequest & { id: number }) => {
  handle(msg).then(
    (result) => process.send!({ id: msg.id, ok: true, result } satisfies ClientReply),
    (err: unknown) =>
      process.send!({ id: msg.id, ok: false, error: (err as Error).message } satisfies ClientReply),
  );
});
process.on('disconnect', () => process.exit(0));
