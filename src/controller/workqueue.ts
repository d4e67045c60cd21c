// A work queue keyed by namespace/name, after client-go's: a key added while queued is queued once;
// a key added while it is being processed runs again afterwards, never twice at once; N workers
// drain it. It is machinery only: what a run's outcome means (retry, give up, run again later) is
// decided by the handler (handler.ts), which calls addRateLimited, addAfter and forget.
//
// Two priorities, after controller-runtime's priority queue: `normal` keys (a change someone made, an
// error to report) run before `low` ones (every key of a new serving term, counters to refresh), first
// in first out within each. So a forward applied while 10,000 restored ones wait is not behind them.
// A key added again at a higher priority than it waits at goes to the back of that FIFO (its wait is
// still counted from its first add). Low keys are never starved: while both wait, every LOW_SHARE-th
// key a worker takes is a low one, so restored forwards get their listeners back under a storm of
// changes too.
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

/** While both priorities have keys waiting, one key in this many taken is a low one. */
const LOW_SHARE = 4;

interface Entry {
  key: string;
  /** Which add of the key this entry is: an entry of an earlier add (the key moved up) is skipped. */
  seq: number;
}

/** A FIFO with a moving head, so taking the first of 10,000 does not move the rest. */
class Fifo {
  private items: Entry[] = [];
  private head = 0;

  push(entry: Entry): void {
    this.items.push(entry);
  }

  shift(): Entry | undefined {
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
  /** Queued keys: the priority they wait at, since when, and their current entry (a FIFO may hold older ones). */
  private readonly queued = new Map<string, { priority: Priority; since: number; seq: number }>();
  private seq = 0;
  /** Keys taken since the last low one. */
  private sinceLow = 0;
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
      waiting.seq = ++this.seq;
      this.fifos.get(priority)!.push({ key, seq: waiting.seq });
      return;
    }
    const seq = ++this.seq;
    this.queued.set(key, { priority, since: this.timers.now(), seq });
    this.fifos.get(priority)!.push({ key, seq });
    this.waiters.shift()?.();
  }

  /**
   * Adds the key after `ms`, at `priority`; an earlier pending timer for the same key wins, with its
   * own priority (the reconciler asks again when that run comes, so a later normal re-run is only as
   * late as the low one waits in the queue).
   */
  addAfter(key: string, ms: number, priority: Priority = 'normal'): void {
    if (this.stopped) return;
    if (ms <= 0) return this.add(key, priority);
    const at = this.timers.now() + ms;
    const pending = this.pending.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.timers.clearTimeout(pending.timer);
    const timer = this.timers.setTimeout(() => {
      this.pending.delete(key);
      this.add(key, priority);
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

  /**
   * The next key to run, marked as processing at once (so an add before its worker starts waits as
   * dirty instead of queuing it for a second worker): normal first, but a low one when LOW_SHARE - 1
   * keys in a row were normal.
   */
  private take(): string | undefined {
    const order: Priority[] = this.sinceLow >= LOW_SHARE - 1 ? ['low', 'normal'] : ['normal', 'low'];
    for (const priority of order) {
      const fifo = this.fifos.get(priority)!;
      for (let entry = fifo.shift(); entry !== undefined; entry = fifo.shift()) {
        const waiting = this.queued.get(entry.key);
        if (waiting?.seq !== entry.seq) continue; // moved up to the normal FIFO, or already taken
        this.queued.delete(entry.key);
        this.processing.add(entry.key);
        this.sinceLow = priority === 'low' ? 0 : this.sinceLow + 1;
        try {
          this.onDequeue?.(this.timers.now() - waiting.since, priority);
        } catch {
          // a metric that fails must not lose the key
        }
        return entry.key;
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
      const key = await this.next(); // marked as processing by take()
      if (key === undefined) return;
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
