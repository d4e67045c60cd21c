// Fuzz of the v4.channel.k8s.io side of the relay (src/relay/v4/v4-framing.ts, src/relay/v4/v4-tunnel.ts): what an
// API server or node could send, well formed or not (truncated and empty messages, wrong port
// prefixes, unknown channels, error text, damaged bytes, any close). The decoder may only return data
// or raise a typed PortForwardError; a tunnel may only end, cleanly or with such an error, closing its
// client, within a deadline, and pass on exactly the data that came before the first bad message.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { PortForwardError } from '../../src/relay/errors';
import { DATA_CHANNEL, ERROR_CHANNEL, PortForwardDecoder } from '../../src/relay/v4/v4-framing';
import { silentLogger } from '../../src/relay/logger';
import { Tunnel } from '../../src/relay/v4/v4-tunnel';
import { fuzzCases, fuzzReport, fuzzSeed, Random } from '../support/fuzz';

const KINDS = new Set(['protocol', 'nodeError']);

function prefix(channel: number, port: number): Buffer {
  const b = Buffer.alloc(3);
  b[0] = channel;
  b.writeUInt16LE(port, 1);
  return b;
}

/** A server's messages for one tunnel: mostly plausible, some wrong, some damaged. */
function messages(rnd: Random, port: number): Buffer[] {
  const out: Buffer[] = [];
  const wrongPort = (): number => (port % 65535) + 1;
  if (rnd.bool(0.95)) out.push(prefix(DATA_CHANNEL, rnd.bool(0.95) ? port : wrongPort()));
  if (rnd.bool(0.95)) out.push(prefix(ERROR_CHANNEL, rnd.bool(0.95) ? port : wrongPort()));
  for (let i = rnd.int(0, 12); i > 0; i--) {
    let m = Buffer.concat([Buffer.from([DATA_CHANNEL]), rnd.bytes(rnd.int(0, 2048))]);
    if (rnd.bool(0.04)) {
      switch (rnd.int(0, 3)) {
        case 0:
          m = Buffer.alloc(0); // no channel byte
          break;
        case 1:
          m = Buffer.from([rnd.int(2, 255), ...rnd.bytes(rnd.int(0, 8))]); // an unknown channel
          break;
        case 2: // the node's error text, or an empty error message
          m = Buffer.concat([
            Buffer.from([ERROR_CHANNEL]),
            Buffer.from(rnd.pick(['', 'socat not found', '\u00ff\u0000'])),
          ]);
          break;
        default:
          m = Buffer.from([rnd.pick([DATA_CHANNEL, ERROR_CHANNEL]), rnd.int(0, 255)]); // a 1-byte prefix
      }
    }
    out.push(rnd.bool(0.02) ? rnd.mutate(m) : m);
  }
  return out;
}

/** What a decoder makes of the messages: the data before the first error, and that error. */
function expected(port: number, msgs: Buffer[]): { data: Buffer; err?: PortForwardError } {
  const d = new PortForwardDecoder(port);
  const parts: Buffer[] = [];
  for (const m of msgs) {
    try {
      parts.push(d.decode(m));
    } catch (err) {
      assert.ok(err instanceof PortForwardError, `a ${String(err)} escaped the decoder`);
      assert.ok(KINDS.has(err.kind), err.kind);
      return { data: Buffer.concat(parts), err };
    }
  }
  return { data: Buffer.concat(parts) };
}

describe('fuzz: v4.channel.k8s.io decoder and tunnel', function () {
  this.timeout(300_000);

  it('decodes any message sequence to data or a typed protocol/nodeError', function () {
    const seed = fuzzSeed();
    const rnd = new Random(seed);
    const cases = fuzzCases(20_000);
    let errors = 0;
    for (let i = 0; i < cases; i++) {
      const port = rnd.int(1, 65535);
      if (expected(port, messages(rnd, port)).err) errors++;
    }
    fuzzReport('v4 decoder', cases, seed, `${errors} ended in a protocol or node error`);
  });

  it('ends every tunnel fed such messages, closing its client, with exactly the data before the first bad message', async function () {
    const seed = fuzzSeed();
    const rnd = new Random(seed);
    const cases = fuzzCases(1000);
    const scripts = new Map<string, { msgs: Buffer[]; close: 'close' | 'terminate' | 'code' }>();
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    wss.on('connection', (ws, req) => {
      const script = scripts.get(req.url ?? '')!;
      for (const m of script.msgs) ws.send(m, { binary: true });
      if (script.close === 'terminate') setImmediate(() => ws.terminate());
      else if (script.close === 'code') ws.close(4000 + rnd.int(0, 999));
      else ws.close(1000);
    });
    await new Promise((r) => wss.once('listening', r));
    const clients = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    await new Promise<void>((r) => clients.listen(0, '127.0.0.1', r));
    const accepted: net.Socket[] = [];
    const waiting: ((s: net.Socket) => void)[] = [];
    clients.on('connection', (s: net.Socket) => {
      const w = waiting.shift();
      if (w) w(s);
      else accepted.push(s);
    });
    const nextAccepted = (): Promise<net.Socket> =>
      new Promise((resolve) => {
        const s = accepted.shift();
        if (s) resolve(s);
        else waiting.push(resolve);
      });
    const wsPort = (wss.address() as net.AddressInfo).port;
    const listenPort = (clients.address() as net.AddressInfo).port;
    let withError = 0;
    try {
      for (let i = 0; i < cases; i++) {
        const port = rnd.int(1, 65535);
        const msgs = messages(rnd, port);
        const close = rnd.pick(['close', 'terminate', 'code'] as const);
        scripts.set(`/${i}`, { msgs, close });
        const want = expected(port, msgs);

        const client = net.connect(listenPort, '127.0.0.1');
        const got: Buffer[] = [];
        client.on('data', (c: Buffer) => got.push(c));
        client.on('error', () => undefined);
        const clientClosed = new Promise<void>((r) => client.once('close', () => r()));
        const socket = await nextAccepted();
        const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/${i}`);
        // As the dialer hands it over: paused in 'open', so nothing is emitted before the tunnel's handlers.
        await new Promise((r, j) =>
          ws
            .once('open', () => {
              ws.pause();
              r(undefined);
            })
            .once('error', j),
        );
        const tunnel = new Tunnel(socket, ws, {
          port,
          pingIntervalMs: 1000,
          pongTimeoutMs: 3000,
          halfCloseTimeoutMs: 500,
          highWaterMark: 512 * 1024,
          lowWaterMark: 128 * 1024,
          logger: silentLogger,
        });
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'hang'>((r) => (timer = setTimeout(() => r('hang'), 10_000)));
        const end = await Promise.race([tunnel.done, deadline]);
        assert.notEqual(end, 'hang', `case ${i} (seed ${seed}): the tunnel did not end`);
        client.end(); // a clean end leaves the socket half-open until the client ends too
        assert.notEqual(
          await Promise.race([clientClosed.then(() => 'closed'), deadline]),
          'hang',
          `case ${i}: client left open`,
        );
        clearTimeout(timer);
        const err = end as PortForwardError | undefined;
        if (err) {
          withError++;
          assert.ok(err instanceof PortForwardError, `case ${i}: ${String(err)}`);
        }
        const data = Buffer.concat(got);
        assert.ok(
          data.equals(want.data.subarray(0, data.length)),
          `case ${i} (seed ${seed}): only the pod's data, in order`,
        );
        // A terminated connection may lose messages still on their way; a closed one delivers them all.
        if (close === 'terminate') continue;
        if (want.err) {
          assert.equal(
            err?.message,
            want.err.message,
            `case ${i} (seed ${seed}): the first bad message ends the tunnel`,
          );
        } else if (!err) {
          assert.ok(data.equals(want.data), `case ${i} (seed ${seed}): the client got all of the pod's data`);
        }
      }
    } finally {
      wss.close();
      clients.close();
    }
    fuzzReport(
      'v4 tunnel (real WebSocket and TCP)',
      cases,
      seed,
      `${withError} ended with an error, the rest cleanly`,
    );
  });
});
