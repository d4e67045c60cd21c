// A work queue keyed by namespace/name, after client-go's: a key added while queued is queued once;
// a key added while it is being processed runs again afterwards, never twice at once; N workers
// drain it. It is machinery only: what a run's outcome means (retry, give up, run again later) is
// decided by the handler (handler.ts), which calls addRateLimited, addAfter and forget.
import { realTimers, Timers } from '../kube/timers';

export interface WorkQueueOptions {
  /** Workers running keys at once. Default 4. */
  workers?: number;
  /** First delay of addRateLimited. Default 5 ms. */
  baseDelayMs?: number;
  /** Longest delay of addRateLimited. Default 5 minutes. */
  maxDelayMs?: number;
  /** Clock and timers (tests: virtual time). Default real. */
  timers?: Timers;
}

/** Runs one key; it decides the key's future through the queue and never throws. */
export type Worker = (key: string) => Promise<void>;

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  /** Keys added while processing: they run again when the current run ends. */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly pending = new Map<string, { at: number; timer: unknown }>();
  private readonly waiters: (() => void)[] = [];
  private stopped = false;
  private running: Promise<void>[] = [];
  private readonly workers: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timers: Timers;

  constructor(opts: WorkQueueOptions = {}) {
    this.workers = opts.workers ?? 4;
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 300_000;
    this.timers = opts.timers ?? realTimers;
  }

  /** Keys waiting to run (not counting those in progress). */
  get depth(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
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

  private async next(): Promise<string | undefined> {
    while (!this.stopped) {
      const key = this.queue.shift();
      if (key !== undefined) {
        this.queued.delete(key);
        return key;
      }
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
        if (this.dirty.delete(key)) this.add(key);
      }
    }
  }
}
