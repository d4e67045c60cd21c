// Kubernetes Events without storms, after client-go's tools/record (EventCorrelator: aggregator, series
// logger, spam filter) and tools/events (EventSeries written on an interval, not per occurrence). An
// EventCorrelator decides, from what it has seen, whether an occurrence creates an Event, joins the
// series of one, or is dropped by the spam filter; an EventSink carries those decisions out against an
// injected backend. Nothing here knows Kubernetes: the backend maps EventToCreate onto events.k8s.io/v1.
//
// Guarantees
// - One write in flight per Event, the create included: occurrences that arrive while an Event is being
//   created join it, so one (object, type, reason, note) never gets a second create within its window.
// - At most `maxInFlight` Event writes in flight for the whole process and `maxPending` waiting; beyond
//   that ordinary writes are shed (counted, logged), never buffered without bound.
// - Series counts are absolute: a failed or shed patch is repaired by the next one, and `flush()` writes
//   every pending count at once. `record()` never throws and never returns a promise.
// - A must-deliver Event (e.g. `Expired`) bypasses the token bucket and its create is retried with backoff
//   (1 s doubling to 60 s) until it lands or `mustDeliverMaxAgeMs` after its first occurrence.
// - Backend failures are logged at most once per reason per `logIntervalMs`, with the number suppressed.
// - Memory: at most `maxGroups` (object, type, reason) groups of at most `aggregateAfter + 1` Events each,
//   plus writes that are in flight, queued (<= maxPending) or awaiting a must-deliver retry.
// - What is written passes API server validation: notes cut to 1024 bytes of UTF-8, series.count >= 2.
//
// Cost of a storm, with the defaults (I = seriesIntervalMs 15 s, gaps doubling to C = 5 min,
// A = aggregateAfter 4, a bucket of 25 creates refilled 1 per 5 min), for N occurrences of one
// (object, type, reason) over T seconds:
// - Events created: <= min(N, A + 1) per window (A notes of their own, then one combined Event), and
//   <= 25 + T/300 in all. Other objects and reasons have their own budget.
// - Writes per Event: its create, then a series patch at I, 3I, 7I, ... after it (the gap doubles up to
//   C), only when the count moved: <= 1 + floor(log2(T/I + 1)) patches while gaps double, then 1 per C.
// - So 600 identical failures within 10 s cost 2 writes (a create, a patch with count 600 at 15 s); 600
//   with every note different cost <= 6 (A creates of count 1, the combined create and its one patch), at
//   most 10 if the A individual notes repeat too; 600 identical spread over 5 min cost 6; over 1 h, 17.
// - In an outage an ordinary Event is not retried on its own: its next occurrence tries again no sooner
//   than its (doubling) gap, so a storm costs no more attempts than without one. A must-deliver create
//   costs about 21 attempts over its 15 min.
//
// Caveats
// - events.k8s.io/v1 makes `note` immutable: a combined Event keeps the note of the occurrence that
//   opened it; later notes only count (`latestNote` keeps the newest in memory).
// - A create the API server applied but answered with an error (a 504 after the write) is retried for a
//   must-deliver Event: a duplicate Event is possible, a lost one is not.
// - Spam-filtered occurrences are counted in `stats().dropped`, not on the API server.
// - A group forgotten (over maxGroups, least recently used first; or silent for max(window,
//   burst x refill)) starts again with a full bucket, and its next occurrence creates a new Event.
// - Counts are per process; only the leader should record.
import { ConfigError } from '../config/errors';

export type EventType = 'Normal' | 'Warning';

/** One thing that happened to an object, worth an Event. */
export interface EventOccurrence {
  /** The regarding object's uid: Events of different objects never merge, and each has its own budget. */
  objectKey: string;
  type: EventType;
  reason: string;
  note: string;
  /** The Event must reach the API server (bypasses the bucket, create retried until max age). Default false. */
  mustDeliver?: boolean;
}

/** The prefix of a combined Event's note, as client-go writes it. */
export const COMBINED_PREFIX = '(combined from similar events): ';
/** events.k8s.io/v1 refuses longer notes. */
export const NOTE_MAX_BYTES = 1024;

/** An Event as the correlator remembers it. Times are on the monotonic clock given to observe(). */
export interface CorrelatedEvent {
  readonly objectKey: string;
  readonly type: EventType;
  readonly reason: string;
  /** The note to create it with (immutable once written), at most NOTE_MAX_BYTES. */
  readonly note: string;
  /** Whether it stands for many different notes. */
  readonly combined: boolean;
  readonly mustDeliver: boolean;
  /** The note of the latest occurrence counted in it. */
  readonly latestNote: string;
  /** Occurrences counted, the first included. */
  readonly count: number;
  readonly firstAt: number;
  readonly lastAt: number;
}

export type Decision =
  | { action: 'create'; event: CorrelatedEvent }
  | { action: 'series'; event: CorrelatedEvent }
  | { action: 'drop' };

export interface EventCorrelatorOptions {
  /** Silence after which an Event's series ends; the next occurrence creates a new Event. Default 10 min. */
  windowMs?: number;
  /** Distinct notes of one (object, type, reason) that get an Event each within a window; later notes share one combined Event. Default 4. */
  aggregateAfter?: number;
  /** Creates of new Events one (object, type, reason) may make at once (token bucket size). Default 25. */
  burst?: number;
  /** One create token comes back per refillMs. Default 5 min. */
  refillMs?: number;
  /** (object, type, reason) groups remembered; the least recently used is forgotten first. Default 1024. */
  maxGroups?: number;
  /** Called when an Event is forgotten, so that whoever writes it can let go of its state. */
  onForget?: (event: CorrelatedEvent) => void;
}

type Entry = { -readonly [K in keyof CorrelatedEvent]: CorrelatedEvent[K] };

interface Group {
  /** Events with a note of their own, by note. */
  readonly events: Map<string, Entry>;
  combined: Entry | undefined;
  lastAt: number;
  tokens: number;
  refilledAt: number;
}

/** Decides what each occurrence costs on the API server. Synchronous and deterministic given `now`. */
export class EventCorrelator {
  readonly windowMs: number;
  readonly aggregateAfter: number;
  readonly burst: number;
  readonly refillMs: number;
  readonly maxGroups: number;
  private readonly groupTtlMs: number;
  private readonly onForget: (event: CorrelatedEvent) => void;
  /** In order of last use, oldest first. */
  private readonly groups = new Map<string, Group>();
  private dropped = 0;
  private evicted = 0;

  constructor(opts: EventCorrelatorOptions = {}) {
    this.windowMs = opts.windowMs ?? 10 * 60_000;
    this.aggregateAfter = opts.aggregateAfter ?? 4;
    this.burst = opts.burst ?? 25;
    this.refillMs = opts.refillMs ?? 5 * 60_000;
    this.maxGroups = opts.maxGroups ?? 1024;
    this.onForget = opts.onForget ?? (() => undefined);
    for (const [name, v] of Object.entries({ windowMs: this.windowMs, refillMs: this.refillMs })) {
      if (!(v > 0)) throw new ConfigError(`${name} (${v}) must be positive`);
    }
    for (const [name, v] of Object.entries({ burst: this.burst, maxGroups: this.maxGroups })) {
      if (!(Number.isInteger(v) && v >= 1))
        throw new ConfigError(`${name} (${v}) must be a positive integer`);
    }
    if (!(Number.isInteger(this.aggregateAfter) && this.aggregateAfter >= 0)) {
      throw new ConfigError(`aggregateAfter (${this.aggregateAfter}) must be a non-negative integer`);
    }
    // A group is kept while its bucket is not full again, so that silence cannot buy a fresh burst early.
    this.groupTtlMs = Math.max(this.windowMs, this.burst * this.refillMs);
  }

  observe(occ: EventOccurrence, now: number): Decision {
    this.prune(now);
    const g = this.touch(occ, now);
    this.expire(g, now);
    g.lastAt = now;
    const joined = g.events.get(occ.note) ?? g.combined;
    if (joined) {
      joined.count++;
      joined.lastAt = now;
      joined.latestNote = occ.note;
      joined.mustDeliver ||= occ.mustDeliver === true;
      return { action: 'series', event: joined };
    }
    if (!this.take(g, now) && !occ.mustDeliver) {
      this.dropped++;
      return { action: 'drop' };
    }
    const combined = g.events.size >= this.aggregateAfter;
    const ev: Entry = {
      objectKey: occ.objectKey,
      type: occ.type,
      reason: occ.reason,
      note: truncateUtf8(combined ? COMBINED_PREFIX + occ.note : occ.note, NOTE_MAX_BYTES),
      combined,
      mustDeliver: occ.mustDeliver === true,
      latestNote: occ.note,
      count: 1,
      firstAt: now,
      lastAt: now,
    };
    if (combined) g.combined = ev;
    else g.events.set(occ.note, ev);
    return { action: 'create', event: ev };
  }

  stats(): { groups: number; events: number; dropped: number; evicted: number } {
    let events = 0;
    for (const g of this.groups.values()) events += g.events.size + (g.combined ? 1 : 0);
    return { groups: this.groups.size, events, dropped: this.dropped, evicted: this.evicted };
  }

  /** The occurrence's group, created if new, moved to the most recently used end. */
  private touch(occ: EventOccurrence, now: number): Group {
    const key = JSON.stringify([occ.objectKey, occ.type, occ.reason]);
    let g = this.groups.get(key);
    if (g) this.groups.delete(key);
    else g = { events: new Map(), combined: undefined, lastAt: now, tokens: this.burst, refilledAt: now };
    this.groups.set(key, g);
    while (this.groups.size > this.maxGroups) {
      const [oldest, victim] = this.groups.entries().next().value as [string, Group];
      this.groups.delete(oldest);
      this.evicted++;
      this.forgetAll(victim);
    }
    return g;
  }

  /** Forgets the groups that have been silent for groupTtlMs; they are the oldest, so this stops early. */
  private prune(now: number): void {
    for (const [key, g] of this.groups) {
      if (now - g.lastAt < this.groupTtlMs) return;
      this.groups.delete(key);
      this.forgetAll(g);
    }
  }

  /** Ends the series that have been silent for a window. */
  private expire(g: Group, now: number): void {
    for (const [note, ev] of g.events) {
      if (now - ev.lastAt > this.windowMs) {
        g.events.delete(note);
        this.onForget(ev);
      }
    }
    if (g.combined && now - g.combined.lastAt > this.windowMs) {
      this.onForget(g.combined);
      g.combined = undefined;
    }
  }

  private forgetAll(g: Group): void {
    for (const ev of g.events.values()) this.onForget(ev);
    if (g.combined) this.onForget(g.combined);
  }

  private take(g: Group, now: number): boolean {
    g.tokens = Math.min(this.burst, g.tokens + (now - g.refilledAt) / this.refillMs);
    g.refilledAt = now;
    if (g.tokens < 1) return false;
    g.tokens--;
    return true;
  }
}

/** `s` cut to at most `maxBytes` of UTF-8 on a code point boundary, with an ellipsis when cut. */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= maxBytes) return s;
  const ellipsis = '…';
  let budget = maxBytes - Buffer.byteLength(ellipsis, 'utf8');
  let out = '';
  for (const ch of s) {
    budget -= Buffer.byteLength(ch, 'utf8');
    if (budget < 0) break;
    out += ch;
  }
  return out + ellipsis;
}
