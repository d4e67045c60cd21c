// What the Event sink (event-sink.ts) is given and reports: the backend it writes through, its options
// and its counters. Kept apart so that backends and tests read the contract without the machinery.
import type { EventCorrelatorOptions, EventType } from './event-correlator';
import type { Timers } from './timers';

/** The timers the sink arms; it reads time from `now`. */
export type SinkTimers = Pick<Timers, 'setTimeout' | 'clearTimeout'>;

export interface EventSeriesWrite {
  /** Occurrences so far, the first included; >= 2 in a patch. */
  count: number;
  lastObservedTime: Date;
}

export interface EventToCreate<S> {
  /** What the caller passed to record(): the regarding object, in the backend's terms. */
  subject: S;
  type: EventType;
  reason: string;
  note: string;
  /** Wall time of the first occurrence. */
  eventTime: Date;
  /** Present when the Event already counts more than one occurrence (a retried or re-created create). */
  series?: EventSeriesWrite;
}

/** The API server, as the sink needs it. */
export interface EventBackend<S> {
  create(ev: EventToCreate<S>): Promise<{ name: string }>;
  patchSeries(name: string, series: EventSeriesWrite, subject: S): Promise<void>;
}

export interface EventSinkLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
}

export interface EventSinkOptions<S> extends Omit<EventCorrelatorOptions, 'onForget'> {
  backend: EventBackend<S>;
  logger?: EventSinkLogger;
  /** Gap between an Event's create and its first series patch; it doubles after each patch. Default 15 s. */
  seriesIntervalMs?: number;
  /** The longest gap between two series patches of one Event. Default 5 min. */
  maxSeriesIntervalMs?: number;
  /** Event writes in flight at once, all Events together. Default 4. */
  maxInFlight?: number;
  /** Event writes waiting for a slot; beyond that, ordinary ones are shed. Default 256. */
  maxPending?: number;
  /** First retry delay of a failed must-deliver create; it doubles, with up to 25 % jitter. Default 1 s. */
  retryBaseMs?: number;
  /** Longest retry delay of a must-deliver create. Default 60 s. */
  retryMaxMs?: number;
  /** How long after its first occurrence a must-deliver Event is still retried. Default 15 min. */
  mustDeliverMaxAgeMs?: number;
  /** Backend failures are logged at most once per reason per logIntervalMs. Default 60 s. */
  logIntervalMs?: number;
  /** Whether a patch failed because the Event is gone (the API server's TTL); it is then created again. Default: an HTTP 404 (`code` or `statusCode`). */
  isNotFound?: (err: unknown) => boolean;
  /** A log message from a backend error. Default: the error's message. */
  errorMessage?: (err: unknown) => string;
  /** Monotonic clock in ms (tests). Default performance.now. */
  now?: () => number;
  /** Wall clock for eventTime and lastObservedTime (tests). Default new Date(). */
  wallClock?: () => Date;
  /** Default: Node's, unref'd, so that pending series never keep the process alive. */
  timers?: SinkTimers;
  /** Jitter source in [0, 1) (tests). Default Math.random. */
  random?: () => number;
}

export interface EventSinkStats {
  occurrences: number;
  /** Occurrences the spam filter refused. */
  dropped: number;
  creates: number;
  patches: number;
  failures: number;
  /** Writes refused because maxPending were waiting. */
  shed: number;
  /** Must-deliver Events given up after mustDeliverMaxAgeMs. */
  abandoned: number;
  inFlight: number;
  pending: number;
  /** Events whose write state is held. */
  tracked: number;
}
