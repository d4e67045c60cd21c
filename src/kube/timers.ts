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
