// Virtual time for unit tests of code that takes a `Timers` (src/kube/timers.ts): timers fire when the
// test advances the clock, in the order of their due times, and every promise chain a timer starts
// runs to its next wait before the clock moves on. So a test states what happens at which virtual
// millisecond, and a loaded machine cannot make it pass or fail.
import type { Timers } from '../kube/timers';

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

export class FakeTimers implements Timers {
  private t = 0;
  private nextId = 1;
  private pending: Pending[] = [];

  now = (): number => this.t;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const p = { id: this.nextId++, at: this.t + Math.max(0, ms), fn };
    this.pending.push(p);
    return p.id;
  };

  clearTimeout = (handle: unknown): void => {
    this.pending = this.pending.filter((p) => p.id !== handle);
  };

  /** Timers waiting to fire. */
  get waiting(): number {
    return this.pending.length;
  }

  /** Moves the clock `ms` forward, firing every timer due on the way, each at its own time. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      const due = this.pending.filter((p) => p.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.pending = this.pending.filter((p) => p !== due);
      this.t = due.at;
      due.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }

  /** Advances in steps of `stepMs` until `check` holds; resolves with the virtual time it took. */
  async until(what: string, check: () => boolean, limitMs = 60_000, stepMs = 1): Promise<number> {
    const t0 = this.t;
    while (!check()) {
      if (this.t - t0 >= limitMs) throw new Error(`${what}: not within ${limitMs} virtual ms`);
      await this.advance(stepMs);
    }
    return this.t - t0;
  }
}

/** Lets promise chains and setImmediate callbacks (a fake API's replies) run before time moves on. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}
