// Fakes for the Event sink's tests: a clock with timers that run when it is advanced, and an in-memory
// API server for Events that can be slow, hold its answers, be down, or let Events expire.
import type { EventOccurrence } from '../event-correlator';
import {
  EventBackend,
  EventSeriesWrite,
  EventSink,
  EventSinkOptions,
  EventToCreate,
  SinkTimers as Timers,
} from '../event-sink';

export class FakeClock {
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
export class FakeBackend implements EventBackend<string> {
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

export interface Rig {
  clock: FakeClock;
  backend: FakeBackend;
  sink: EventSink<string>;
  logs: { message: string; meta?: Record<string, unknown> }[];
  /** Records an occurrence on object `obj` (its uid and the subject handed to the backend). */
  fail: (obj: string, note?: string, more?: Partial<EventOccurrence>) => void;
}

export function rig(opts: Partial<EventSinkOptions<string>> = {}): Rig {
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
