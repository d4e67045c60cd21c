// The clock and timers that time-driven code takes as a dependency, so that its unit tests run on
// virtual time (src/testing/fake-timers.ts) instead of sleeping and measuring the wall clock.
import { performance } from 'node:perf_hooks';

export interface Timers {
  /** A monotonic clock, ms. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** `promise`, or a rejection after `ms`; the late outcome of `promise` is then ignored. */
export function withTimeout<T>(timers: Timers, promise: Promise<T>, ms: number, what: string): Promise<T> {
  if (ms <= 0) {
    promise.catch(() => undefined);
    return Promise.reject(new Error(`${what}: no time left before the renew deadline`));
  }
  return new Promise<T>((resolve, reject) => {
    const timer = timers.setTimeout(
      () => reject(new Error(`${what} timed out after ${Math.round(ms)} ms`)),
      ms,
    );
    promise.then(
      (v) => {
        timers.clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        timers.clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
