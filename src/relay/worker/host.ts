// The relay engine on a worker thread, behind the same RelayEngine interface (ADR 8). The bytes of
// every forward move on the worker's event loop and V8 heap; the controller, its watch caches and
// client-node stay on the main thread. Why: a relay allocates a buffer for every chunk it reads, V8
// answers that with full garbage collections of the heap that holds them, and on the main thread
// that heap is the controller's (tens of MB, growing with the caches): most of the relay's CPU went
// to marking it. The worker's heap holds only the relay (a few MB), and its young generation is
// sized for buffers that die young.
//
// Guarantees
// - ensure/stop/stopAccepting/close are the engine's, in the engine's order per key.
// - keys() and stats() answer at once from the worker's last word: the reply of every call and
//   every relay event carry their session's counters, and all counters come every `statsIntervalMs`.
// - Credentials are read from `access` on the main thread for every dial.
// - A worker that dies (a bug, an out-of-memory) is replaced: calls waiting on it fail, every session
//   it held is reported once as `sessionLost` (the controller re-ensures them on the new worker), and
//   the error is logged. Nothing is thrown at the caller's event loop. The counters of a lost session
//   are carried over to its successor under the same key: totals never count back.
//
// Caveats
// - stats() may lag the worker by up to `statsIntervalMs` for byte counters; connection counts move
//   with the events.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ApiServerAccess } from '../access';
import { PortForwardError, RelayClosedError, RelaySpecError } from '../errors';
import type { TransportChoice } from '../kube-transports';
import type { RelayLogger } from '../logger';
import type { ListenerState, RelayEngine, RelayEvent, SessionSpec, SessionStats } from '../types';
import { readCredentials } from './credentials';
import type {
  Call,
  FromWorker,
  LogLevel,
  RelayTuning,
  StatsEntry,
  ToWorker,
  WireError,
  WorkerInit,
} from './protocol';

export interface RelayWorkerOptions {
  transport: TransportChoice;
  access: ApiServerAccess;
  /**
   * The credentials of a remote cluster (PodTarget.cluster) by its id, asked on every dial to it;
   * undefined: the id is no longer in use (the dial fails). Default: no remote cluster.
   */
  clusterAccess?: (id: string) => ApiServerAccess | undefined;
  /** The kubeconfig's proxy-url, if any. */
  proxyUrl?: string;
  logger: RelayLogger;
  /** Lines below this level are not sent across. Default 'info'. */
  logLevel?: LogLevel;
  /** Default 1000 ms. */
  statsIntervalMs?: number;
  spdy?: WorkerInit['spdy'];
  /** Buffer limits; defaults in the engine and the SPDY session. */
  tuning?: RelayTuning;
  /**
   * The worker's V8 young generation, MB (Worker resourceLimits.maxYoungGenerationSizeMb). Default
   * 1: scavenges often enough that the relay's read buffers die young and V8 seldom starts a
   * mark-compact for their external memory (ADR 8: with 8, one every 15-25 MiB relayed; with 1, none
   * in most transfers, and relay CPU per GiB about 0.6x).
   */
  youngGenerationMb?: number;
  /** First delay before a dead worker is replaced; doubles up to 30 s while it keeps dying. Default 100 ms. */
  restartDelayMs?: number;
}

/** Starts the worker; resolves once it is ready for calls. */
export async function startRelayWorker(options: RelayWorkerOptions): Promise<RelayWorker> {
  const relay = new RelayWorker(options);
  await relay.ready();
  return relay;
}

export class RelayWorker implements RelayEngine {
  private worker: Worker | undefined;
  private starting: Promise<Worker>;
  private readonly calls = new Map<number, { resolve(r: FromWorkerReply): void; reject(e: Error): void }>();
  private readonly counters = new Map<string, SessionStats>();
  /** Counters of sessions a dead worker held: added to their successors', so status never counts back. */
  private readonly carried = new Map<string, SessionStats>();
  private readonly subscribers: ((event: RelayEvent) => void)[] = [];
  private nextId = 1;
  private closed = false;
  private deaths = 0;
  /** A worker answered 'ready' once: later deaths are replaced; a first start that fails is not. */
  private everStarted = false;

  constructor(private readonly options: RelayWorkerOptions) {
    this.starting = this.spawn();
  }

  /** Resolves once a worker is up (after a restart, the new one). */
  async ready(): Promise<void> {
    await this.starting;
  }

  async ensure(key: string, spec: SessionSpec): Promise<ListenerState[]> {
    return (await this.call({ op: 'ensure', key, spec })).result ?? [];
  }

  async stop(key: string): Promise<void> {
    await this.call({ op: 'stop', key });
    this.carried.delete(key);
  }

  keys(): string[] {
    return [...this.counters.keys()];
  }

  stats(key: string): SessionStats | undefined {
    const now = this.counters.get(key);
    const before = this.carried.get(key);
    return before ? addStats(before, now) : now;
  }

  onEvent(listener: (event: RelayEvent) => void): void {
    this.subscribers.push(listener);
  }

  async stopAccepting(): Promise<void> {
    await this.call({ op: 'stopAccepting' });
  }

  async close(graceMs = 0): Promise<void> {
    if (this.closed) return;
    try {
      await this.call({ op: 'close', graceMs });
    } finally {
      this.closed = true;
      await this.worker?.terminate();
      this.counters.clear();
    }
  }

  private async call(call: Call): Promise<FromWorkerReply> {
    if (this.closed) throw new RelayClosedError('the relay is closed');
    const worker = await this.starting;
    const id = this.nextId++;
    const reply = await new Promise<FromWorkerReply>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      worker.postMessage({ type: 'call', id, call } satisfies ToWorker);
    });
    if (reply.stats) this.applyStats(reply.stats, false);
    if (reply.error) throw wireError(reply.error);
    return reply;
  }

  private spawn(): Promise<Worker> {
    const o = this.options;
    const init: WorkerInit = {
      transport: o.transport,
      server: o.access.server,
      proxyUrl: o.proxyUrl,
      logLevel: o.logLevel ?? 'info',
      statsIntervalMs: o.statsIntervalMs ?? 1000,
      spdy: o.spdy,
      tuning: o.tuning,
    };
    const worker = new Worker(path.join(__dirname, 'thread.js'), {
      workerData: init,
      resourceLimits: { maxYoungGenerationSizeMb: o.youngGenerationMb ?? 1 },
      // The operator's own flags (--cpu-prof, say) are not the worker's business.
      execArgv: process.execArgv.filter((a) => a.startsWith('--enable-source-maps')),
      stderr: false,
      stdout: false,
    });
    this.worker = worker;
    let started = false;
    return new Promise<Worker>((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          started = true;
          this.everStarted = true;
          this.deaths = 0;
          resolve(worker);
          return;
        }
        this.onMessage(worker, m);
      });
      let failure: Error | undefined;
      worker.on('error', (err: Error) => (failure = err));
      worker.on('exit', (code) => {
        const why = failure?.message ?? `exit code ${code}`;
        if (!started) reject(new Error(`the relay worker did not start: ${why}`, { cause: failure }));
        this.onExit(worker, why);
      });
    });
  }

  private onMessage(worker: Worker, m: FromWorker): void {
    switch (m.type) {
      case 'reply': {
        const c = this.calls.get(m.id);
        this.calls.delete(m.id);
        c?.resolve(m);
        return;
      }
      case 'event':
        if (m.stats) this.applyStats([[m.event.key, m.stats]], false);
        this.emit(m.event);
        return;
      case 'stats':
        this.applyStats(m.entries, true);
        return;
      case 'log':
        this.options.logger[m.level](m.message, m.meta);
        return;
      case 'credentials': {
        const access =
          m.cluster === undefined ? this.options.access : this.options.clusterAccess?.(m.cluster);
        if (!access) {
          worker.postMessage({
            type: 'credentials',
            id: m.id,
            error: 'the kubeconfig of this remote cluster is no longer in use',
          } satisfies ToWorker);
          return;
        }
        readCredentials(access).then(
          (credentials) =>
            worker.postMessage({ type: 'credentials', id: m.id, credentials } satisfies ToWorker),
          (err: unknown) =>
            worker.postMessage({
              type: 'credentials',
              id: m.id,
              error: err instanceof Error ? err.message : String(err),
            } satisfies ToWorker),
        );
        return;
      }
      case 'ready':
        return;
    }
  }

  /** `all`: the entries are every session the worker holds (others are gone). */
  private applyStats(entries: StatsEntry[], all: boolean): void {
    if (all) {
      const present = new Set(entries.map(([k]) => k));
      for (const k of [...this.counters.keys()]) if (!present.has(k)) this.counters.delete(k);
    }
    for (const [k, s] of entries) {
      // Counters sent with an event or a reply leave bufferedBytes out: the last periodic one stays.
      if (s)
        this.counters.set(k, { ...s, bufferedBytes: s.bufferedBytes ?? this.counters.get(k)?.bufferedBytes });
      else this.counters.delete(k);
    }
  }

  private onExit(worker: Worker, why: string): void {
    if (worker !== this.worker) return;
    const lost = new Error(`the relay worker stopped (${why})`);
    for (const c of this.calls.values()) c.reject(lost);
    this.calls.clear();
    if (this.closed || !this.everStarted) return;
    const keys = this.keys();
    for (const key of keys) this.carried.set(key, { ...this.stats(key)!, active: 0, bufferedBytes: 0 });
    this.counters.clear();
    this.deaths++;
    this.options.logger.error('the relay worker stopped; starting another', {
      error: why,
      sessions: keys.length,
    });
    const delay = Math.min(30_000, (this.options.restartDelayMs ?? 100) * 2 ** Math.min(this.deaths - 1, 9));
    this.starting = new Promise<void>((r) => setTimeout(r, delay)).then(() => this.spawn());
    this.starting.catch(() => undefined); // a failed start is retried by its own exit handler
    for (const key of keys) this.emit({ type: 'sessionLost', key, message: lost.message });
  }

  private emit(event: RelayEvent): void {
    for (const s of this.subscribers) {
      try {
        s(event);
      } catch (err) {
        this.options.logger.error('relay event subscriber threw', { error: (err as Error).message });
      }
    }
  }
}

type FromWorkerReply = Extract<FromWorker, { type: 'reply' }>;

function addStats(before: SessionStats, now: SessionStats | undefined): SessionStats {
  if (!now) return before;
  return {
    ...now,
    total: before.total + now.total,
    failed: before.failed + now.failed,
    refused: before.refused + now.refused,
    bytesSent: before.bytesSent + now.bytesSent,
    bytesReceived: before.bytesReceived + now.bytesReceived,
    lastError: now.lastError ?? before.lastError,
    transport: now.transport ?? before.transport,
  };
}

function wireError(e: WireError): Error {
  if (e.name === 'RelaySpecError') return new RelaySpecError(e.message);
  if (e.name === 'PortForwardError') return new PortForwardError('network', e.message);
  return new Error(e.message);
}
