// The writer of correlated Events: carries out an EventCorrelator's decisions (event-correlator.ts,
// whose header states the guarantees and the cost of a storm) against an injected backend, one write in
// flight per Event, series counts coalesced on a doubling interval, must-deliver creates retried.
import { ConfigError } from '../config/errors';
import { EventCorrelator, EventOccurrence, CorrelatedEvent } from './event-correlator';

import type {
  EventBackend,
  EventSeriesWrite,
  EventSinkLogger,
  EventSinkOptions,
  EventSinkStats,
  SinkTimers,
} from './event-sink-types';

export type * from './event-sink-types';

interface Delivery<S> {
  readonly event: CorrelatedEvent;
  readonly subject: S;
  readonly eventTime: Date;
  lastObserved: Date;
  /** Set once the create landed. */
  name: string | undefined;
  /** The count of the latest attempt, landed or not. */
  sent: number;
  busy: boolean;
  queued: boolean;
  timer: unknown;
  /** No write before this (monotonic ms), except in flush(). */
  notBefore: number;
  gapMs: number;
  failures: number;
  gaveUp: boolean;
  forgotten: boolean;
}

const defaultTimers: SinkTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** An HTTP status from client-node's errors (ApiException's numeric `code`, HttpError's `statusCode`). */
function httpStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } } | undefined;
  return [e?.code, e?.statusCode, e?.response?.statusCode].find((c): c is number => typeof c === 'number');
}

/** Records Events through an EventCorrelator, coalescing their writes. */
export class EventSink<S> {
  readonly correlator: EventCorrelator;
  private readonly backend: EventBackend<S>;
  private readonly logger: EventSinkLogger;
  private readonly seriesIntervalMs: number;
  private readonly maxSeriesIntervalMs: number;
  private readonly maxInFlight: number;
  private readonly maxPending: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly mustDeliverMaxAgeMs: number;
  private readonly logIntervalMs: number;
  private readonly isNotFound: (err: unknown) => boolean;
  private readonly errorMessage: (err: unknown) => string;
  private readonly now: () => number;
  private readonly wallClock: () => Date;
  private readonly timers: SinkTimers;
  private readonly random: () => number;

  private readonly deliveries = new Map<CorrelatedEvent, Delivery<S>>();
  private readonly queue: Delivery<S>[] = [];
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly logged = new Map<string, { at: number; suppressed: number }>();
  private readonly counters = { occurrences: 0, creates: 0, patches: 0, failures: 0, shed: 0, abandoned: 0 };
  private flushing = 0;
  private closing: Promise<void> | undefined;
  private closed = false;

  constructor(opts: EventSinkOptions<S>) {
    this.backend = opts.backend;
    this.logger = opts.logger ?? { warn: () => undefined };
    this.seriesIntervalMs = opts.seriesIntervalMs ?? 15_000;
    this.maxSeriesIntervalMs = opts.maxSeriesIntervalMs ?? 5 * 60_000;
    this.maxInFlight = opts.maxInFlight ?? 4;
    this.maxPending = opts.maxPending ?? 256;
    this.retryBaseMs = opts.retryBaseMs ?? 1000;
    this.retryMaxMs = opts.retryMaxMs ?? 60_000;
    this.mustDeliverMaxAgeMs = opts.mustDeliverMaxAgeMs ?? 15 * 60_000;
    this.logIntervalMs = opts.logIntervalMs ?? 60_000;
    this.isNotFound = opts.isNotFound ?? ((err) => httpStatus(err) === 404);
    this.errorMessage = opts.errorMessage ?? ((err) => (err instanceof Error ? err.message : String(err)));
    this.now = opts.now ?? (() => performance.now());
    this.wallClock = opts.wallClock ?? (() => new Date());
    this.timers = opts.timers ?? defaultTimers;
    this.random = opts.random ?? Math.random;
    if (!(this.seriesIntervalMs > 0))
      throw new ConfigError(`seriesIntervalMs (${this.seriesIntervalMs}) must be positive`);
    if (!(this.maxSeriesIntervalMs >= this.seriesIntervalMs)) {
      throw new ConfigError(
        `maxSeriesIntervalMs (${this.maxSeriesIntervalMs}) must be at least seriesIntervalMs`,
      );
    }
    for (const [name, v] of Object.entries({ maxInFlight: this.maxInFlight, maxPending: this.maxPending })) {
      if (!(Number.isInteger(v) && v >= 1))
        throw new ConfigError(`${name} (${v}) must be a positive integer`);
    }
    this.correlator = new EventCorrelator({ ...opts, onForget: (ev) => this.forget(ev) });
  }

  /** Counts an occurrence and schedules what it costs. Never throws; a no-op once close() was called. */
  record(occ: EventOccurrence, subject: S): void {
    if (this.closing) return;
    this.counters.occurrences++;
    const decision = this.correlator.observe(occ, this.now());
    if (decision.action === 'drop') return;
    if (decision.action === 'create') {
      const d: Delivery<S> = {
        event: decision.event,
        subject,
        eventTime: this.wallClock(),
        lastObserved: this.wallClock(),
        name: undefined,
        sent: 0,
        busy: false,
        queued: false,
        timer: undefined,
        notBefore: 0,
        gapMs: this.seriesIntervalMs,
        failures: 0,
        gaveUp: false,
        forgotten: false,
      };
      this.deliveries.set(d.event, d);
      this.schedule(d);
      return;
    }
    const d = this.deliveries.get(decision.event);
    if (!d) return;
    d.lastObserved = this.wallClock();
    this.schedule(d);
  }

  /** Writes every pending count now, ignoring gaps; resolves when nothing is queued or in flight. */
  async flush(): Promise<void> {
    this.flushing++;
    try {
      for (const d of this.deliveries.values()) {
        if (d.busy || d.queued || !this.pending(d)) continue;
        if (d.timer !== undefined) this.timers.clearTimeout(d.timer);
        d.timer = undefined;
        this.enqueue(d);
      }
      if (this.inFlight > 0 || this.queue.length > 0)
        await new Promise<void>((r) => this.idleWaiters.push(r));
    } finally {
      this.flushing--;
    }
  }

  /**
   * Must-deliver creates waiting to be retried go out now (the API server is reachable again), instead
   * of at the end of a backoff that grew while it was down.
   */
  retryNow(): void {
    for (const d of this.deliveries.values()) {
      if (d.busy || d.queued || d.failures === 0 || d.name !== undefined || !this.pending(d)) continue;
      if (d.timer !== undefined) this.timers.clearTimeout(d.timer);
      d.timer = undefined;
      d.notBefore = 0;
      this.enqueue(d);
    }
  }

  /** Stops recording, flushes once, and cancels every retry. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.flush();
      this.closed = true;
      for (const d of this.deliveries.values()) {
        if (d.timer !== undefined) this.timers.clearTimeout(d.timer);
        d.timer = undefined;
        if (this.pending(d) && d.event.mustDeliver) {
          this.logger.warn('an Event was not delivered before shutdown', { reason: d.event.reason });
        }
      }
      this.deliveries.clear();
    })();
    return this.closing;
  }

  stats(): EventSinkStats {
    return {
      ...this.counters,
      dropped: this.correlator.stats().dropped,
      inFlight: this.inFlight,
      pending: this.queue.length,
      tracked: this.deliveries.size,
    };
  }

  private pending(d: Delivery<S>): boolean {
    return d.event.count > d.sent || (d.event.mustDeliver && d.name === undefined && !d.gaveUp);
  }

  /** Queues the Event's next write, now or when its gap has passed, unless one is already coming. */
  private schedule(d: Delivery<S>): void {
    if (this.closed || d.busy || d.queued || d.timer !== undefined || !this.pending(d)) return;
    const wait = this.flushing > 0 && d.failures === 0 ? 0 : d.notBefore - this.now();
    if (wait <= 0) {
      this.enqueue(d);
      return;
    }
    d.timer = this.timers.setTimeout(() => {
      d.timer = undefined;
      this.enqueue(d);
    }, wait);
  }

  private enqueue(d: Delivery<S>): void {
    if (d.queued || d.busy) return;
    if (this.queue.length >= this.maxPending) {
      const i = d.event.mustDeliver ? this.queue.findIndex((q) => !q.event.mustDeliver) : -1;
      const victim = i >= 0 ? this.queue.splice(i, 1)[0] : d;
      victim.queued = false;
      this.counters.shed++;
      this.warn(victim.event.reason, 'Event writes shed', { pending: this.queue.length });
      if (victim.event.mustDeliver) {
        this.failed(victim, new Error('too many Event writes pending'), victim.name === undefined);
        this.schedule(victim);
      }
      this.release(victim);
      if (victim === d) return;
    }
    d.queued = true;
    this.queue.push(d);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const d = this.queue.shift()!;
      d.queued = false;
      void this.write(d);
    }
    if (this.inFlight === 0 && this.queue.length === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private async write(d: Delivery<S>): Promise<void> {
    d.busy = true;
    this.inFlight++;
    const ev = d.event;
    const series: EventSeriesWrite = { count: ev.count, lastObservedTime: d.lastObserved };
    const creating = d.name === undefined;
    try {
      if (creating) {
        const res = await this.backend.create({
          subject: d.subject,
          type: ev.type,
          reason: ev.reason,
          note: ev.note,
          eventTime: d.eventTime,
          ...(series.count > 1 ? { series } : {}),
        });
        d.name = res.name;
        this.counters.creates++;
      } else {
        await this.backend.patchSeries(d.name!, series, d.subject);
        this.counters.patches++;
        d.gapMs = Math.min(d.gapMs * 2, this.maxSeriesIntervalMs);
      }
      d.sent = series.count;
      d.failures = 0;
      d.notBefore = this.now() + d.gapMs;
    } catch (err) {
      d.sent = series.count;
      if (!creating && this.isNotFound(err)) {
        // The API server let the Event expire while its series went on: create it again, count included.
        d.name = undefined;
        d.sent = 0;
        d.notBefore = 0;
      } else {
        this.failed(d, err, creating);
      }
    } finally {
      d.busy = false;
      this.inFlight--;
      this.schedule(d);
      this.release(d);
      this.pump();
    }
  }

  /** A failed attempt: a must-deliver create retries with backoff, anything else waits for its next occurrence. */
  private failed(d: Delivery<S>, err: unknown, creating: boolean): void {
    this.counters.failures++;
    d.failures++;
    const now = this.now();
    const meta = { event: creating ? 'create' : 'series', error: this.errorMessage(err) };
    if (creating && d.event.mustDeliver && !d.gaveUp) {
      if (now - d.event.firstAt < this.mustDeliverMaxAgeMs) {
        const backoff = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** (d.failures - 1));
        d.notBefore = now + backoff * (1 + 0.25 * this.random());
        this.warn(d.event.reason, 'could not record an Event, will retry', meta);
        return;
      }
      d.gaveUp = true;
      this.counters.abandoned++;
      this.warn(d.event.reason, 'gave up recording an Event', meta);
    } else {
      this.warn(d.event.reason, 'could not record an Event', meta);
    }
    d.gapMs = Math.min(d.gapMs * 2, this.maxSeriesIntervalMs);
    d.notBefore = now + d.gapMs;
  }

  /** The correlator forgot the Event: write a pending count now, and drop the state once idle. */
  private forget(ev: CorrelatedEvent): void {
    const d = this.deliveries.get(ev);
    if (!d) return;
    d.forgotten = true;
    if (d.timer !== undefined && d.failures === 0) {
      this.timers.clearTimeout(d.timer);
      d.timer = undefined;
      this.enqueue(d);
    }
    this.release(d);
  }

  private release(d: Delivery<S>): void {
    if (d.forgotten && !d.busy && !d.queued && d.timer === undefined) this.deliveries.delete(d.event);
  }

  private warn(reason: string, message: string, meta: Record<string, unknown>): void {
    const now = this.now();
    const seen = this.logged.get(reason);
    if (seen && now - seen.at < this.logIntervalMs) {
      seen.suppressed++;
      return;
    }
    if (!seen && this.logged.size >= 256) this.logged.clear();
    this.logged.set(reason, { at: now, suppressed: 0 });
    this.logger.warn(message, {
      reason,
      ...meta,
      ...(seen?.suppressed ? { suppressed: seen.suppressed } : {}),
    });
  }
}
