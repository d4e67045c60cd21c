// The relay's worker thread: the relay engine and its transports, on an event loop and a V8 heap of
// their own (ADR 8). Started by host.ts with a WorkerInit; it answers calls, and sends events,
// counters, log lines and requests for credentials to the main thread.
//
// Guarantees
// - Each call gets exactly one reply, in the engine's order for its key; an error crosses as name and
//   message (RelaySpecError, PortForwardError, Error).
// - Every relay event is sent with its session's counters as they are after it; every session's
//   counters are also sent every `statsIntervalMs` while any session exists.
// - Credentials are asked for on every dial: what the kubeconfig says at that moment.
import { parentPort, workerData } from 'node:worker_threads';
import type * as https from 'node:https';
import type { ApiServerAccess } from '../access';
import { ClusterTransport } from '../cluster-transport';
import { createRelayEngine } from '../engine/engine';
import { kubeTransport } from '../kube-transports';
import type { RelayLogger } from '../logger';
import type { ClusterRef, RelayEngine } from '../types';
import { applyCredentials, workerAgent } from './credentials';
import {
  Call,
  DialCredentials,
  FromWorker,
  LOG_LEVELS,
  LogLevel,
  StatsEntry,
  ToWorker,
  WorkerInit,
} from './protocol';

const port = parentPort;
if (!port) throw new Error('relay/worker/thread.js runs as a worker thread (host.ts starts it)');
const init = workerData as WorkerInit;
const send = (m: FromWorker): void => port.postMessage(m);

function threadLogger(level: LogLevel): RelayLogger {
  const min = LOG_LEVELS.indexOf(level);
  const at =
    (l: LogLevel) =>
    (message: string, meta?: Record<string, unknown>): void => {
      if (LOG_LEVELS.indexOf(l) >= min) send({ type: 'log', level: l, message, meta });
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Credentials from the main thread, one request per dial. */
const pending = new Map<number, { resolve(c: DialCredentials): void; reject(e: Error): void }>();
let nextId = 1;
/** The API server at `server`, with credentials asked of the main thread (of `cluster`, if remote). */
function accessTo(server: string, proxyUrl: string | undefined, cluster?: string): ApiServerAccess {
  const agent = workerAgent(server, proxyUrl);
  return {
    server,
    applyToHTTPSOptions: async (opts: https.RequestOptions) => {
      const id = nextId++;
      const creds = await new Promise<DialCredentials>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        send({ type: 'credentials', id, ...(cluster !== undefined ? { cluster } : {}) });
      });
      applyCredentials(opts, creds, agent);
    },
  };
}

const logger = threadLogger(init.logLevel);
const tuning = init.tuning ?? {};
const transportOn = (access: ApiServerAccess): ReturnType<typeof kubeTransport> =>
  kubeTransport(init.transport, access, {
    logger,
    spdy: init.spdy,
    session: { streamHighWaterMark: tuning.streamHighWaterMark, maxFrameBytes: tuning.maxFrameBytes },
  });
const engine: RelayEngine = createRelayEngine({
  // Pods of remote clusters (spec.kubeConfig) through their own API servers, each on its own pool.
  transport: new ClusterTransport(transportOn(accessTo(init.server, init.proxyUrl)), (c: ClusterRef) =>
    transportOn(accessTo(c.server, c.proxyUrl, c.id)),
  ),
  logger,
  socketBufferBytes: tuning.socketBufferBytes,
});

// The counters of an event or a reply leave bufferedBytes out (it walks every connection, and
// events, and the ensure calls they lead to, come per connection); the periodic stats carry it.
engine.onEvent((event) =>
  send({ type: 'event', event, stats: engine.stats(event.key, { buffered: false }) }),
);

const statsTimer = setInterval(() => {
  const keys = engine.keys();
  if (keys.length > 0) send({ type: 'stats', entries: keys.map((k): StatsEntry => [k, engine.stats(k)]) });
}, init.statsIntervalMs);
statsTimer.unref();

async function run(call: Call): Promise<{ result?: Awaited<ReturnType<RelayEngine['ensure']>> }> {
  switch (call.op) {
    case 'ensure':
      return { result: await engine.ensure(call.key, call.spec) };
    case 'stop':
      await engine.stop(call.key);
      return {};
    case 'stopAccepting':
      await engine.stopAccepting();
      return {};
    case 'close':
      await engine.close(call.graceMs);
      clearInterval(statsTimer);
      return {};
  }
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'credentials') {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (!p) return;
    if (m.credentials) p.resolve(m.credentials);
    else p.reject(new Error(m.error ?? 'no credentials'));
    return;
  }
  const { id, call } = m;
  const keyOf = 'key' in call ? call.key : undefined;
  run(call).then(
    ({ result }) => {
      const stats: StatsEntry[] | undefined = keyOf
        ? [[keyOf, engine.stats(keyOf, { buffered: false })]]
        : undefined;
      send({ type: 'reply', id, result, stats });
    },
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      send({ type: 'reply', id, error: { name: e.name, message: e.message } });
    },
  );
});

send({ type: 'ready' });
