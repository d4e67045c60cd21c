// A work queue keyed by namespace/name, after client-go's: a key added while queued is queued once;
// a key added while it is being processed runs again afterwards, never twice at once; N workers
// drain it. It is machinery only: what a run's outcome means (retry, give up, run again later) is
// decided by the handler (handler.ts), which calls addRateLimited, addAfter and forget.
//
// Two priorities, after controller-runtime's priority queue: `normal` keys (a change someone made, an
// error to report) run before `low` ones (every key of a new serving term, counters to refresh), first
// in first out within each. So a forward applied while 10,000 restored ones wait is not behind them.
// A key added again at a higher priority than it waits at moves up, keeping its place in time.
import { realTimers, Timers } from '../kube/timers';

export type Priority = 'normal' | 'low';
const PRIORITIES: readonly Priority[] = ['normal', 'low'];

export interface WorkQueueOptions {
  /** Workers running keys at once. Default 4. */
  workers?: number;
  /** First delay of addRateLimited. Default 5 ms. */
  baseDelayMs?: number;
  /** Longest delay of addRateLimited. Default 5 minutes. */
  maxDelayMs?: number;
  /** Clock and timers (tests: virtual time). Default real. */
  timers?: Timers;
  /** Told, as a worker takes a key, how long it waited since it was queued (the metric). */
  onDequeue?: (waitedMs: number, priority: Priority) => void;
}

/** A FIFO of keys with a moving head, so taking the first of 10,000 does not move the rest. */
class Fifo {
  private items: string[] = [];
  private head = 0;

  push(key: string): void {
    this.items.push(key);
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const key = this.items[this.head++];
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return key;
  }
}

/** Runs one key; it decides the key's future through the queue and never throws. */
export type Worker = (key: string) => Promise<void>;

export class WorkQueue {
  private readonly fifos = new Map<Priority, Fifo>(PRIORITIES.map((p) => [p, new Fifo()]));
  /** Queued keys: the priority they wait at (a FIFO may hold stale entries of raised keys) and since when. */
  private readonly queued = new Map<string, { priority: Priority; since: number }>();
  private readonly processing = new Set<string>();
  /** Keys added while processing, with the highest priority asked: they run again when the run ends. */
  private readonly dirty = new Map<string, Priority>();
  private readonly failures = new Map<string, number>();
  private readonly pending = new Map<string, { at: number; timer: unknown }>();
  private readonly waiters: (() => void)[] = [];
  private stopped = false;
  private running: Promise<void>[] = [];
  private readonly workers: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timers: Timers;
  private readonly onDequeue: WorkQueueOptions['onDequeue'];

  constructor(opts: WorkQueueOptions = {}) {
    this.workers = opts.workers ?? 4;
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 300_000;
    this.timers = opts.timers ?? realTimers;
    this.onDequeue = opts.onDequeue;
  }

  /** Keys waiting to run (not counting those in progress). */
  get depth(): number {
    return this.queued.size;
  }

  add(key: string, priority: Priority = 'normal'): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      const asked = this.dirty.get(key);
      this.dirty.set(key, asked ? higher(asked, priority) : priority);
      return;
    }
    const waiting = this.queued.get(key);
    if (waiting) {
      if (higher(waiting.priority, priority) === waiting.priority) return;
      waiting.priority = priority; // its entry in the lower FIFO is skipped when reached
      this.fifos.get(priority)!.push(key);
      return;
    }
    this.queued.set(key, { priority, since: this.timers.now() });
    this.fifos.get(priority)!.push(key);
    this.waiters.shift()?.();
  }

  /** Adds the key after `ms`; an earlier pending timer for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) return this.add(key);
    const at = this.timers.now() + ms;
    const pending = this.pending.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.timers.clearTimeout(pending.timer);
    const timer = this.timers.setTimeout(() => {
      this.pending.delete(key);
      this.add(key);
    }, ms);
    (timer as { unref?: () => void }).unref?.();
    this.pending.set(key, { at, timer });
  }

  /** Adds the key after its backoff (base * 2^failures, capped) and counts one more failure; the delay. */
  addRateLimited(key: string): number {
    const delay = this.backoffMs(key);
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
    this.addAfter(key, delay);
    return delay;
  }

  /** Forgets the key's failures: its next failure waits the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** The delay the next addRateLimited of `key` waits. */
  backoffMs(key: string): number {
    const n = this.failures.get(key) ?? 0;
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(n, 40));
  }

  start(worker: Worker): void {
    this.running = Array.from({ length: this.workers }, () => this.work(worker));
  }

  /** Stops taking keys and resolves once the runs in progress ended. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.pending.values()) this.timers.clearTimeout(timer);
    this.pending.clear();
    for (const w of this.waiters.splice(0)) w();
    await Promise.all(this.running);
  }

  private take(): string | undefined {
    for (const priority of PRIORITIES) {
      const fifo = this.fifos.get(priority)!;
      for (let key = fifo.shift(); key !== undefined; key = fifo.shift()) {
        const waiting = this.queued.get(key);
        if (waiting?.priority !== priority) continue; // raised to a higher FIFO, or already taken
        this.queued.delete(key);
        this.onDequeue?.(this.timers.now() - waiting.since, priority);
        return key;
      }
    }
    return undefined;
  }

  private async next(): Promise<string | undefined> {
    while (!this.stopped) {
      const key = this.take();
      if (key !== undefined) return key;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return undefined;
  }

  private async work(worker: Worker): Promise<void> {
    for (;;) {
      const key = await this.next();
      if (key === undefined) return;
      this.processing.add(key);
      try {
        await worker(key);
      } finally {
        this.processing.delete(key);
        const again = this.dirty.get(key);
        if (again) {
          this.dirty.delete(key);
          this.add(key, again);
        }
      }
    }
  }
}

function higher(a: Priority, b: Priority): Priority {
  return PRIORITIES.indexOf(a) <= PRIORITIES.indexOf(b) ? a : b;
}
