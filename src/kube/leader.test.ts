// LeaderElector against an in-memory Lease with the API server's write semantics (create fails when the
// Lease exists, a replace fails unless it carries the current resourceVersion), on virtual time: every
// wait, deadline and timeout runs on FakeTimers, so the durations asserted are exact and a loaded
// machine cannot change them.
import * as assert from 'node:assert/strict';
import { ConfigError } from '../config/errors';
import { FakeTimers } from '../testing/fake-timers';
import { LeaderElector, LeaderElectorOptions } from './leader';
import { LeaderRecord } from './leader-record';
import { LeaseConflictError, LeaseSnapshot, LeaseStore } from './leader-store';

class MemoryLease {
  record: LeaderRecord | undefined;
  version = 0;
  /** 'fail': every call rejects; 'hang': every call never settles. */
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  writes = 0;

  store(): LeaseStore {
    const call = <T>(fn: () => T): Promise<T> => {
      if (this.mode === 'fail') return Promise.reject(new Error('connection refused'));
      if (this.mode === 'hang') return new Promise<T>(() => undefined);
      return new Promise<T>((resolve, reject) =>
        setImmediate(() => {
          try {
            resolve(fn());
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        }),
      );
    };
    const snap = (): LeaseSnapshot => ({
      record: { ...this.record! },
      resourceVersion: String(this.version),
    });
    return {
      description: 'test/lease',
      get: () => call(() => (this.record ? snap() : undefined)),
      create: (record) =>
        call(() => {
          if (this.record) throw new LeaseConflictError('exists');
          return this.write(record, snap);
        }),
      update: (prev, record) =>
        call(() => {
          if (prev.resourceVersion !== String(this.version)) throw new LeaseConflictError('conflict');
          return this.write(record, snap);
        }),
    };
  }

  private write(record: LeaderRecord, snap: () => LeaseSnapshot): LeaseSnapshot {
    this.record = { ...record };
    this.version++;
    this.writes++;
    return snap();
  }
}

const FAST = { leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 100 };
const EPOCH = Date.parse('2026-12-02T00:00:00Z');

describe('LeaderElector', function () {
  let clock: FakeTimers;
  const running: LeaderElector[] = [];

  function elector(
    lease: MemoryLease,
    identity: string,
    extra: Partial<LeaderElectorOptions> = {},
  ): LeaderElector & { calls: string[] } {
    const calls: string[] = [];
    const e = new LeaderElector({
      namespace: 'test',
      name: 'lease',
      identity,
      store: lease.store(),
      ...FAST,
      timers: clock,
      wallClock: () => new Date(EPOCH + clock.now()),
      random: () => 0,
      onStartedLeading: () => void calls.push('started'),
      onStoppedLeading: () => void calls.push('stopped'),
      ...extra,
    });
    running.push(e);
    void e.run();
    return Object.assign(e, { calls });
  }

  /** Advances virtual time for `ms`, checking at every step that no two electors lead at once. */
  async function neverTwoLeaders(electors: LeaderElector[], ms: number): Promise<void> {
    for (let t = 0; t < ms; t += 5) {
      const leaders = electors.filter((e) => e.isLeader()).map((e) => e.identity);
      assert.ok(leaders.length <= 1, `two leaders at once at ${clock.now()} ms: ${leaders.join(', ')}`);
      await clock.advance(5);
    }
  }

  /** Runs `p` to its end, moving virtual time while it waits. */
  async function settled<T>(p: Promise<T>): Promise<T> {
    let done = false;
    void p.finally(() => (done = true)).catch(() => undefined);
    await clock.until('the call to finish', () => done);
    return p;
  }

  beforeEach(function () {
    clock = new FakeTimers();
  });
  afterEach(async function () {
    await settled(Promise.all(running.splice(0).map((e) => e.stop())));
  });

  it('refuses options that cannot be safe', function () {
    const store = new MemoryLease().store();
    const base = { namespace: 'n', name: 'l', identity: 'a', store };
    assert.throws(
      () => new LeaderElector({ ...base, identity: '' }),
      (err: unknown) => err instanceof ConfigError && /non-empty identity/.test(err.message),
    );
    assert.throws(
      () => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }),
      /leaseDurationMs \(10000\) must be greater than renewDeadlineMs \(10000\)/,
    );
    assert.throws(
      () => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
      /renewDeadlineMs \(2000\) must be greater than retryPeriodMs/,
    );
    assert.throws(
      () => new LeaderElector({ namespace: 'n', name: 'l', identity: 'a' }),
      /needs a kubeConfig or a store/,
    );
  });

  it('creates the Lease, leads, and renews it every retry period', async function () {
    const lease = new MemoryLease();
    const a = elector(lease, 'a');
    await clock.until('a to lead', () => a.isLeader());
    assert.deepEqual(a.calls, ['started']);
    assert.equal(lease.record?.holderIdentity, 'a');
    assert.equal(lease.record?.leaseDurationSeconds, 1);
    assert.equal(lease.record?.leaseTransitions, 0);
    assert.match(lease.record?.renewTime ?? '', /\.\d{6}Z$/);
    const writes = lease.writes;
    await clock.advance(350);
    assert.equal(lease.writes - writes, 3, 'one renewal per 100 ms');
    assert.equal(a.leader(), 'a');
  });

  it('lets exactly one of three candidates lead, never two at once', async function () {
    const lease = new MemoryLease();
    const all = ['a', 'b', 'c'].map((id) => elector(lease, id));
    await clock.until('a leader', () => all.some((e) => e.isLeader()));
    await neverTwoLeaders(all, 1500);
    const leaders = all.filter((e) => e.isLeader());
    assert.equal(leaders.length, 1);
    assert.equal(lease.record?.holderIdentity, leaders[0].identity);
    for (const e of all) assert.equal(e.leader(), leaders[0].identity, `${e.identity} sees the leader`);
  });

  it('hands over at the next attempt on stop({ release: true }), after the old leader stopped leading', async function () {
    const lease = new MemoryLease();
    let holderDuringStop: string | undefined;
    const a = elector(lease, 'a', {
      onStoppedLeading: () => void (holderDuringStop = lease.record?.holderIdentity),
    });
    await clock.until('a to lead', () => a.isLeader());
    const b = elector(lease, 'b');
    await clock.advance(300);
    assert.equal(b.isLeader(), false);

    const t0 = clock.now();
    await settled(a.stop({ release: true }));
    assert.equal(holderDuringStop, 'a', 'onStoppedLeading ran before the Lease was released');
    assert.equal(a.isLeader(), false);
    await clock.until('b to lead', () => b.isLeader());
    const took = clock.now() - t0;
    assert.ok(took <= FAST.retryPeriodMs, `b led ${took} ms after the release, at its next attempt`);
    assert.equal(lease.record?.holderIdentity, 'b');
    assert.equal(lease.record?.leaseTransitions, 1, 'one change of holder; releasing is none');
  });

  it('takes over a holder that vanished only after the lease duration', async function () {
    const lease = new MemoryLease();
    const a = elector(lease, 'a');
    await clock.until('a to lead', () => a.isLeader());
    const b = elector(lease, 'b');
    await clock.advance(150); // b has seen a's Lease
    await settled(a.stop()); // no release: a crash, as far as the Lease knows
    const t0 = clock.now();
    await clock.until('b to lead', () => b.isLeader(), 3000);
    const took = clock.now() - t0;
    // a renewed at most one retry period before it stopped; b counts the lease from when it saw that.
    assert.ok(took >= FAST.leaseDurationMs - FAST.retryPeriodMs, `b waited out the lease (${took} ms)`);
    assert.ok(
      took <= FAST.leaseDurationMs + FAST.retryPeriodMs,
      `and took over at once after it (${took} ms)`,
    );
  });

  it('does not count a holder with a skewed wall clock as expired', async function () {
    const lease = new MemoryLease();
    const a = elector(lease, 'a', { wallClock: () => new Date(EPOCH - 3600_000 + clock.now()) });
    await clock.until('a to lead', () => a.isLeader());
    const b = elector(lease, 'b', { wallClock: () => new Date(EPOCH + 3600_000 + clock.now()) });
    await neverTwoLeaders([a, b], 1500);
    assert.equal(a.isLeader(), true, 'a kept the Lease for longer than its duration by renewing');
  });

  it('steps down when it cannot renew for the renew deadline, and leads again once the API is back', async function () {
    const lease = new MemoryLease();
    const a = elector(lease, 'a');
    await clock.until('a to lead', () => a.isLeader());
    await clock.advance(1); // just after a renewal
    lease.mode = 'fail';
    const took = await clock.until('a to step down', () => !a.isLeader(), 2000);
    assert.ok(took <= FAST.renewDeadlineMs, `stepped down within the renew deadline (${took} ms)`);
    assert.ok(took >= FAST.renewDeadlineMs - FAST.retryPeriodMs, `not before it (${took} ms)`);
    await clock.until('onStoppedLeading', () => a.calls.length === 2);
    assert.deepEqual(a.calls, ['started', 'stopped']);
    lease.mode = 'ok';
    await clock.until('a to lead again', () => a.isLeader(), 2000);
    assert.deepEqual(a.calls, ['started', 'stopped', 'started']);
  });

  it('steps down by the renew deadline even when requests hang', async function () {
    const lease = new MemoryLease();
    const a = elector(lease, 'a');
    await clock.until('a to lead', () => a.isLeader());
    lease.mode = 'hang';
    const took = await clock.until('a to step down', () => !a.isLeader(), 2000);
    assert.ok(took <= FAST.renewDeadlineMs, `within the renew deadline (${took} ms)`);
  });

  it('steps down at the next renewal when it sees another holder in the Lease', async function () {
    const lease = new MemoryLease();
    const a = elector(lease, 'a');
    await clock.until('a to lead', () => a.isLeader());
    lease.record = { ...lease.record!, holderIdentity: 'intruder' };
    lease.version++;
    const took = await clock.until('a to step down', () => !a.isLeader(), 2000);
    assert.ok(took <= FAST.retryPeriodMs, `at the next renewal (${took} ms), not at the deadline`);
    assert.equal(a.leader(), 'intruder');
  });

  it('runs the callbacks one at a time, in order, even when a slow start overlaps a loss', async function () {
    const lease = new MemoryLease();
    const log: string[] = [];
    const a = elector(lease, 'a', {
      onStartedLeading: async () => {
        log.push('start begins');
        await new Promise((r) => clock.setTimeout(() => r(undefined), 300));
        log.push('start ends');
      },
      onStoppedLeading: () => void log.push('stop'),
    });
    await clock.until('a to lead', () => a.isLeader());
    lease.record = { ...lease.record!, holderIdentity: 'intruder' };
    lease.version++;
    await clock.until('a to step down', () => !a.isLeader());
    assert.deepEqual(log, ['start begins'], 'the stop waits for the start');
    await clock.until('the stop callback', () => log.includes('stop'));
    assert.deepEqual(log, ['start begins', 'start ends', 'stop']);
  });

  it('stops a standby without touching the Lease', async function () {
    const lease = new MemoryLease();
    const a = elector(lease, 'a');
    await clock.until('a to lead', () => a.isLeader());
    const b = elector(lease, 'b');
    await clock.advance(150);
    await settled(b.stop({ release: true }));
    assert.equal(lease.record?.holderIdentity, 'a');
    assert.deepEqual(b.calls, []);
    assert.equal(a.isLeader(), true);
  });
});
