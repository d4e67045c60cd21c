// When a PortForward's status is written: at once when anything but what moves with the traffic
// changed; a new lastError at once when none was written in the last second; counters (connections,
// bytes, refused clients, a later error, the transport) at most every --status-interval per forward,
// and at most --counter-writes-per-second across all forwards.
//
// Why a budget across forwards: the interval bounds one forward's writes, not the operator's. With
// 10,000 forwards in use the interval alone allows 2,000 writes a second, each a PATCH through
// kube-apiserver and etcd and a watch event back to every watcher. Counters are the least urgent part
// of status (the Prometheus metrics carry them live), so under the budget they wait: each forward due
// a counter write reserves the next free slot of a token bucket and writes when its slot comes, in
// the order they asked. A write for anything else never waits for the budget, takes none of it, and
// gives back the slot its forward held; so does a forward deleted while it waits.
//
// Written here rather than taken from a package: the limiter has to hand out future slots and take
// them back (Go's rate.Limiter.Reserve and Cancel), so that a key is requeued for its own slot rather
// than polling a limiter; the npm limiters in reach (limiter, bottleneck) either hold the caller in a
// promise (a reconcile worker held) or refuse.
import type { PortForward, PortForwardStatus } from '../api/v1alpha1';
import type { Logger } from '../observability/logger';
import { countersChanged, lastErrorChanged, significantChange } from './status';

/** Least time between two status writes made only for a new lastError. */
const ERROR_WRITE_INTERVAL_MS = 1000;

/** What a forward's status writes remember between passes. */
export interface WriteMemory {
  lastWrite: number;
  /** When a new lastError was last written: the first failure of an interval goes out at once. */
  lastErrorWrite: number;
  /** The budget's slot this forward's counters hold (ms since the epoch), until it is used. */
  counterSlot?: number;
}

/**
 * A token bucket that hands out slots: `reserve(now)` takes a token now if one is there, else the next
 * one to come, and says when that is. Reservations queue in order; none is refused. `cancel` gives back
 * a slot still to come, as Go's `Reservation.Cancel` does. Time is the caller's (ms); a clock that
 * went back refills nothing.
 */
export class SlotBucket {
  private tokens: number;
  private last: number | undefined;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** When the reserved token is there: `now`, or a time after it. */
  reserve(now: number): number {
    this.refill(now);
    this.tokens -= 1;
    return this.tokens >= 0 ? now : now + Math.ceil((-this.tokens * 1000) / this.perSecond);
  }

  /** Gives back the slot reserved for `at`, if it is still to come. */
  cancel(at: number, now: number): void {
    if (at <= now) return;
    this.refill(now);
    this.tokens = Math.min(this.burst, this.tokens + 1);
  }

  private refill(now: number): void {
    const elapsed = this.last === undefined ? 0 : Math.max(0, now - this.last);
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.perSecond) / 1000);
    this.last = now;
  }
}

export interface StatusWriterConfig {
  statusIntervalMs: number;
  /** Counter-only status writes a second across all forwards (0: no budget). */
  counterWritesPerSecond: number;
}

export class StatusWrites {
  private readonly budget: SlotBucket | undefined;

  constructor(
    private readonly config: StatusWriterConfig,
    private readonly write: (namespace: string, name: string, status: PortForwardStatus) => Promise<boolean>,
  ) {
    const rate = config.counterWritesPerSecond;
    // A second's worth at once: a handful of forwards in use see their counters at the interval.
    this.budget = rate > 0 ? new SlotBucket(rate, Math.max(1, rate)) : undefined;
  }

  /**
   * Writes `status` when it is due (the rules at the top of this file). Returns when to look again
   * for counters held back. A failed write throws (StatusWriteError): the handler logs it once and
   * retries the key.
   */
  async writeIfDue(
    pf: PortForward,
    status: PortForwardStatus,
    mem: WriteMemory,
    now: number,
    log: Logger,
  ): Promise<number | undefined> {
    const sinceWrite = now - mem.lastWrite;
    const interval = this.config.statusIntervalMs;
    // A new failure is news: one is written at once if none was in the last second (or status
    // interval, if shorter); the rest of a storm goes out with the counters. So failures cost at most
    // one status write a second, and one that comes alone is in status at once.
    const errorInterval = Math.min(interval, ERROR_WRITE_INTERVAL_MS);
    const errorChanged = lastErrorChanged(pf.status, status);
    const newError = errorChanged && now - mem.lastErrorWrite >= errorInterval;
    const counters = countersChanged(pf.status, status);
    const other = significantChange(pf.status, status) || newError;
    if (!other) {
      if (!counters) {
        this.release(mem, now); // nothing to write after all: the slot goes to another forward
        return undefined;
      }
      if (sinceWrite < interval) return interval - sinceWrite;
      const wait = this.slot(mem, now);
      if (wait > 0) return wait;
    }
    await this.write(pf.metadata.namespace, pf.metadata.name, status);
    mem.lastWrite = now;
    // The counters went with this write: its slot is used, or, still to come (the write was for
    // something else), given back to the budget.
    this.release(mem, now);
    if (errorChanged) mem.lastErrorWrite = now;
    log.debug('status written', { phase: status.phase, connections: status.connections });
    return undefined;
  }

  /** Gives back the forward's slot if it is still to come (deleted, written, nothing to write). */
  release(mem: WriteMemory, now: number): void {
    if (mem.counterSlot !== undefined) this.budget?.cancel(mem.counterSlot, now);
    mem.counterSlot = undefined;
  }

  /** Ms until this forward's counters may be written under the budget: its slot, reserved once. */
  private slot(mem: WriteMemory, now: number): number {
    if (!this.budget) return 0;
    if (mem.counterSlot === undefined) mem.counterSlot = this.budget.reserve(now);
    return Math.max(0, mem.counterSlot - now);
  }
}
