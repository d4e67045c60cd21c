// EventCorrelator's decisions, and EventSink's writes against an in-memory backend, on a fake clock and
// fake timers: storms, creates in flight, series gaps, the token bucket, retries, shedding, memory.
import * as assert from 'node:assert/strict';
import {
  COMBINED_PREFIX,
  CorrelatedEvent,
  Decision,
  EventCorrelator,
  EventOccurrence,
  NOTE_MAX_BYTES,
  truncateUtf8,
} from './event-correlator';
import {
  EventBackend,
  EventSeriesWrite,
  EventSink,
  EventSinkOptions,
  EventToCreate,
  Timers,
} from './event-sink';

class FakeClock {
  t = 0;
  /** Whether promises started by the code under test are still on their way (settle waits for them). */
  busy: () => boolean = () => false;
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void }>();
  readonly now = (): number => this.t;
  readonly wallClock = (): Date => new Date(Date.UTC(2025, 0, 1) + this.t);
  readonly timers: Timers = {
    setTimeout: (fn, ms) => {
      this.due.set(++this.seq, { at: this.t + Math.max(0, ms), fn });
      return this.seq;
    },
    clearTimeout: (handle) => void this.due.delete(handle as number),
  };

  get timerCount(): number {
    return this.due.size;
  }

  async settle(): Promise<void> {
    for (let i = 0; i < 10 || (this.busy() && i < 1_000_000); i++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Moves time forward, running each timer at its own time and letting the promises it starts settle. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await this.settle();
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.due) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.due.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
      await this.settle();
    }
    this.t = end;
    await this.settle();
  }
}

/** An API server for Events: answers on the next turn, or holds every call, or is down. */
class FakeBackend implements EventBackend<string> {
  readonly creates: (EventToCreate<string> & { name: string; at: number })[] = [];
  readonly patches: { name: string; series: EventSeriesWrite; at: number }[] = [];
  /** Names the API server has let expire: patches of them answer 404. */
  readonly gone = new Set<string>();
  attempts = 0;
  down = false;
  hold = false;
  inFlight = 0;
  maxInFlight = 0;
  /** Writes of one Event that overlapped another write of it. */
  overlaps = 0;
  private readonly busy = new Set<string>();
  private held: (() => void)[] = [];
  private n = 0;

  constructor(private readonly clock: FakeClock) {}

  create(ev: EventToCreate<string>): Promise<{ name: string }> {
    return this.call(`${ev.subject}/${ev.reason}/${ev.note}`, () => {
      const name = `${ev.subject}.${++this.n}`;
      this.creates.push({ ...ev, name, at: this.clock.t });
      return { name };
    });
  }

  patchSeries(name: string, series: EventSeriesWrite): Promise<void> {
    return this.call(name, () => {
      if (this.gone.has(name)) throw Object.assign(new Error('events not found'), { statusCode: 404 });
      this.patches.push({ name, series, at: this.clock.t });
    });
  }

  get writes(): number {
    return this.creates.length + this.patches.length;
  }

  /** Calls answered but not held. */
  get running(): number {
    return this.inFlight - this.held.length;
  }

  release(): void {
    const held = this.held;
    this.held = [];
    for (const resolve of held) resolve();
  }

  /** The count the API server holds for each Event, by name. */
  counts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const c of this.creates) counts.set(c.name, c.series?.count ?? 1);
    for (const p of this.patches) counts.set(p.name, p.series.count);
    return counts;
  }

  private async call<T>(key: string, fn: () => T): Promise<T> {
    this.attempts++;
    if (this.busy.has(key)) this.overlaps++;
    this.busy.add(key);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
      else await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.down) throw new Error('the server was unable to return a response in the time allotted (504)');
      return fn();
    } finally {
      this.inFlight--;
      this.busy.delete(key);
    }
  }
}

interface Rig {
  clock: FakeClock;
  backend: FakeBackend;
  sink: EventSink<string>;
  logs: { message: string; meta?: Record<string, unknown> }[];
  /** Records an occurrence on object `obj` (its uid and the subject handed to the backend). */
  fail: (obj: string, note?: string, more?: Partial<EventOccurrence>) => void;
}

function rig(opts: Partial<EventSinkOptions<string>> = {}): Rig {
  const clock = new FakeClock();
  const backend = new FakeBackend(clock);
  clock.busy = () => backend.running > 0;
  const logs: Rig['logs'] = [];
  const sink = new EventSink<string>({
    backend,
    logger: { warn: (message, meta) => logs.push({ message, meta }) },
    now: clock.now,
    wallClock: clock.wallClock,
    timers: clock.timers,
    random: () => 0,
    ...opts,
  });
  const fail: Rig['fail'] = (obj, note = 'connection refused', more = {}) =>
    sink.record({ objectKey: obj, type: 'Warning', reason: 'TunnelFailed', note, ...more }, obj);
  return { clock, backend, sink, logs, fail };
}

const occ = (note: string, objectKey = 'uid-a', reason = 'TunnelFailed'): EventOccurrence => ({
  objectKey,
  type: 'Warning',
  reason,
  note,
});

function created(d: Decision): CorrelatedEvent {
  assert.equal(d.action, 'create');
  return (d as { event: CorrelatedEvent }).event;
}

describe('EventCorrelator', () => {
  it('joins identical occurrences within the window into one series', () => {
    const c = new EventCorrelator();
    const ev = created(c.observe(occ('refused'), 0));
    for (let i = 2; i <= 5; i++) {
      const d = c.observe(occ('refused'), i * 1000);
      assert.deepEqual(d, { action: 'series', event: ev });
      assert.equal(ev.count, i);
    }
  });

  it('starts a new Event after a window of silence', () => {
    const c = new EventCorrelator({ windowMs: 60_000 });
    const first = created(c.observe(occ('refused'), 0));
    assert.equal(c.observe(occ('refused'), 60_000).action, 'series');
    const second = created(c.observe(occ('refused'), 120_001));
    assert.notEqual(second, first);
    assert.equal(second.count, 1);
  });

  it('combines distinct notes beyond aggregateAfter into one Event that keeps the newest note', () => {
    const c = new EventCorrelator({ aggregateAfter: 2 });
    const a = created(c.observe(occ('dial 10.0.0.1'), 0));
    created(c.observe(occ('dial 10.0.0.2'), 1));
    const combined = created(c.observe(occ('dial 10.0.0.3'), 2));
    assert.equal(combined.combined, true);
    assert.equal(combined.note, `${COMBINED_PREFIX}dial 10.0.0.3`);
    for (let i = 4; i < 100; i++) assert.equal(c.observe(occ(`dial 10.0.0.${i}`), i).action, 'series');
    assert.equal(combined.count, 97);
    assert.equal(combined.latestNote, 'dial 10.0.0.99');
    assert.deepEqual(c.observe(occ('dial 10.0.0.1'), 100), { action: 'series', event: a });
    assert.equal(c.stats().events, 3);
  });

  it('refuses creates beyond the burst, counts them, and refills one token per refillMs', () => {
    const c = new EventCorrelator({ burst: 2, refillMs: 60_000, aggregateAfter: 100 });
    created(c.observe(occ('a'), 0));
    created(c.observe(occ('b'), 0));
    assert.deepEqual(c.observe(occ('c'), 1000), { action: 'drop' });
    assert.equal(c.observe(occ('a'), 1000).action, 'series', 'joining a series costs no token');
    assert.equal(c.observe(occ('d'), 59_000).action, 'drop');
    created(c.observe(occ('d'), 61_000));
    assert.equal(c.observe(occ('e'), 61_000).action, 'drop');
    created(c.observe({ ...occ('expired', 'uid-a'), mustDeliver: true }, 61_000));
    assert.equal(c.stats().dropped, 3);
  });

  it('keeps distinct objects and reasons apart, each with its own budget', () => {
    const c = new EventCorrelator({ burst: 1, aggregateAfter: 100 });
    const a = created(c.observe(occ('refused', 'uid-a'), 0));
    assert.equal(c.observe(occ('timeout', 'uid-a'), 0).action, 'drop');
    const b = created(c.observe(occ('refused', 'uid-b'), 0));
    created(c.observe(occ('refused', 'uid-a', 'Degraded'), 0));
    assert.notEqual(a, b);
    assert.equal(c.observe(occ('refused', 'uid-b'), 1).action, 'series');
    assert.equal(a.count, 1);
  });

  it('forgets the least recently used groups beyond maxGroups', () => {
    const forgotten: CorrelatedEvent[] = [];
    const c = new EventCorrelator({ maxGroups: 10, onForget: (ev) => forgotten.push(ev) });
    for (let i = 0; i < 1000; i++) c.observe(occ('refused', `uid-${i}`), i);
    assert.deepEqual(c.stats(), { groups: 10, events: 10, dropped: 0, evicted: 990 });
    assert.equal(forgotten.length, 990);
    assert.equal(forgotten[0].objectKey, 'uid-0');
  });

  it('cuts notes to 1024 bytes of UTF-8, the combined prefix included', () => {
    const long = '€'.repeat(2000);
    assert.ok(Buffer.byteLength(truncateUtf8(long, NOTE_MAX_BYTES)) <= NOTE_MAX_BYTES);
    assert.equal(truncateUtf8('short', NOTE_MAX_BYTES), 'short');
    const c = new EventCorrelator({ aggregateAfter: 0 });
    const ev = created(c.observe(occ(long), 0));
    assert.ok(ev.note.startsWith(COMBINED_PREFIX) && ev.note.endsWith('…'));
    assert.ok(Buffer.byteLength(ev.note) <= NOTE_MAX_BYTES);
  });
});

describe('EventSink', () => {
  it('writes a storm of 600 failures within 10 s, 20 at a time, with a handful of writes', async () => {
    const { clock, backend, sink, fail } = rig();
    for (let i = 0; i < 600; i++) {
      // One in 30 fails differently (20 distinct notes), the rest identically.
      fail('uid-a', i % 30 === 29 ? `dial tcp 10.0.0.${i}:8080: i/o timeout` : 'connection refused');
      if (i % 20 === 19) await clock.advance(333);
    }
    await clock.advance(10 * 60_000);
    await sink.flush();
    // 'connection refused' and the first 3 distinct notes get an Event each, the other 17 one combined
    // Event; the two that repeat get one series patch each.
    assert.equal(backend.creates.length, 5);
    assert.equal(backend.patches.length, 2);
    assert.equal(
      [...backend.counts().values()].reduce((a, b) => a + b, 0),
      600,
    );
    assert.equal(sink.stats().failures, 0);
    assert.ok(backend.maxInFlight <= 4);
    assert.equal(backend.overlaps, 0);
  });

  it('joins occurrences during an in-flight create: one create, then one series patch', async () => {
    const { clock, backend, fail } = rig();
    backend.hold = true;
    for (let i = 0; i < 25; i++) fail('uid-a', 'tunnel to pod web-0 failed');
    await clock.advance(100);
    assert.equal(backend.attempts, 1);
    backend.hold = false;
    backend.release();
    await clock.advance(14_000);
    assert.equal(backend.patches.length, 0, 'the series waits for its gap');
    await clock.advance(1000);
    assert.deepEqual(
      backend.patches.map((p) => p.series.count),
      [25],
    );
    await clock.advance(10 * 60_000);
    assert.equal(backend.writes, 2);
    assert.equal(backend.overlaps, 0);
  });

  it('writes a long series at gaps that double up to the cap, with the final count', async () => {
    const { clock, backend, fail } = rig({ seriesIntervalMs: 15_000, maxSeriesIntervalMs: 60_000 });
    for (let s = 0; s < 200; s++) {
      fail('uid-a');
      await clock.advance(1000);
    }
    await clock.advance(10 * 60_000);
    assert.equal(backend.creates[0].at, 0);
    assert.deepEqual(
      backend.patches.map((p) => p.at / 1000),
      [15, 45, 105, 165, 225],
    );
    assert.equal(backend.patches.at(-1)?.series.count, 200);
    assert.deepEqual(
      backend.patches.at(-1)?.series.lastObservedTime,
      new Date(Date.UTC(2025, 0, 1) + 199_000),
    );
  });

  it('writes the Events of distinct objects independently', async () => {
    const { clock, backend, fail } = rig();
    for (let i = 0; i < 30; i++) for (const obj of ['uid-a', 'uid-b', 'uid-c']) fail(obj);
    await clock.advance(60_000);
    assert.deepEqual(backend.creates.map((c) => c.subject).sort(), ['uid-a', 'uid-b', 'uid-c']);
    assert.deepEqual([...backend.counts().values()], [30, 30, 30]);
  });

  it('retries a must-deliver Event with backoff until the API server takes it', async () => {
    const { clock, backend, sink, logs } = rig();
    backend.down = true;
    sink.record(
      { objectKey: 'uid-a', type: 'Normal', reason: 'Expired', note: 'ttl passed', mustDeliver: true },
      'uid-a',
    );
    await clock.advance(1000 + 2000 + 4000 + 8000);
    assert.equal(backend.attempts, 5, 'tries at 0, 1, 3, 7 and 15 s');
    assert.equal(logs.length, 1, 'logged once per reason per minute');
    backend.down = false;
    await clock.advance(16_000);
    assert.equal(backend.creates.length, 1);
    assert.equal(backend.creates[0].reason, 'Expired');
    assert.equal(clock.timerCount, 0);
    assert.equal(sink.stats().failures, 5);
  });

  it('gives up a must-deliver Event after its max age, and does not retry an ordinary one', async () => {
    const { clock, backend, sink, fail } = rig({ mustDeliverMaxAgeMs: 60_000 });
    backend.down = true;
    fail('uid-a');
    await clock.advance(30 * 60_000);
    assert.equal(backend.attempts, 1);
    sink.record(
      { objectKey: 'uid-b', type: 'Normal', reason: 'Expired', note: 'ttl passed', mustDeliver: true },
      'uid-b',
    );
    await clock.advance(30 * 60_000);
    assert.ok(backend.attempts > 3 && backend.attempts < 12, `${backend.attempts} attempts`);
    assert.equal(sink.stats().abandoned, 1);
    assert.equal(clock.timerCount, 0);
  });

  it('logs failures once per reason per interval, with the number suppressed', async () => {
    const { clock, backend, logs, fail } = rig();
    backend.down = true;
    for (let i = 0; i < 100; i++) fail(`uid-${i}`);
    await clock.advance(1000);
    assert.equal(backend.attempts, 100);
    assert.equal(logs.length, 1);
    await clock.advance(60_000);
    fail('uid-100');
    await clock.advance(1000);
    assert.equal(logs.length, 2);
    assert.equal(logs[1].meta?.suppressed, 99);
  });

  it('creates an Event again, with its count, when the API server let it expire', async () => {
    const { clock, backend, fail } = rig();
    fail('uid-a');
    await clock.advance(1000);
    backend.gone.add(backend.creates[0].name);
    for (let i = 0; i < 4; i++) fail('uid-a');
    await clock.advance(20_000);
    assert.equal(backend.creates.length, 2);
    assert.equal(backend.creates[1].series?.count, 5);
  });

  it('flushes pending counts at once, and records nothing after close', async () => {
    const { clock, backend, sink, fail } = rig();
    for (let i = 0; i < 5; i++) fail('uid-a');
    await sink.flush();
    assert.equal(backend.creates.length, 1);
    assert.deepEqual(
      backend.patches.map((p) => p.series.count),
      [5],
    );
    fail('uid-a');
    await sink.close();
    assert.equal(backend.patches.at(-1)?.series.count, 6);
    fail('uid-a');
    fail('uid-z');
    await clock.advance(60 * 60_000);
    assert.equal(backend.writes, 3);
    assert.equal(clock.timerCount, 0);
  });

  it('sheds ordinary writes beyond maxPending, and keeps a place for a must-deliver one', async () => {
    const { clock, backend, sink, fail } = rig({ maxInFlight: 1, maxPending: 3 });
    backend.hold = true;
    for (let i = 0; i < 10; i++) fail(`uid-${i}`);
    assert.deepEqual([sink.stats().inFlight, sink.stats().pending, sink.stats().shed], [1, 3, 6]);
    sink.record(
      { objectKey: 'uid-x', type: 'Normal', reason: 'Expired', note: 'ttl passed', mustDeliver: true },
      'uid-x',
    );
    assert.deepEqual([sink.stats().pending, sink.stats().shed], [3, 7]);
    backend.hold = false;
    for (let i = 0; i < 5; i++) {
      backend.release();
      await clock.advance(10);
    }
    assert.deepEqual(
      backend.creates.map((c) => c.subject),
      ['uid-0', 'uid-2', 'uid-3', 'uid-x'],
    );
  });

  it('holds bounded state across 10,000 objects', async () => {
    const { clock, backend, sink, fail } = rig({ maxGroups: 100 });
    for (let i = 0; i < 10_000; i++) {
      fail(`uid-${i}`);
      fail(`uid-${i}`);
      if (i % 50 === 49) await clock.advance(10);
    }
    await clock.advance(60_000);
    await sink.flush();
    assert.ok(sink.stats().tracked <= 100, `${sink.stats().tracked} tracked`);
    assert.equal(sink.correlator.stats().groups, 100);
    assert.ok(clock.timerCount <= 100);
    assert.equal(backend.overlaps, 0);
    assert.ok(backend.maxInFlight <= 4);
  });
});
