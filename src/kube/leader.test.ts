// LeaderElector against an in-memory Lease with the API server's write semantics (create fails when the
// Lease exists, a replace fails unless it carries the current resourceVersion), on short durations.
import * as assert from 'node:assert/strict';
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
    onStartedLeading: () => void calls.push('started'),
    onStoppedLeading: () => void calls.push('stopped'),
    ...extra,
  });
  return Object.assign(e, { calls });
}

async function until(what: string, check: () => boolean, timeoutMs = 3000): Promise<number> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - t0;
}

/** Samples every 5 ms for `ms` and fails if more than one elector leads at any sample. */
async function neverTwoLeaders(electors: LeaderElector[], ms: number): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const leaders = electors.filter((e) => e.isLeader()).map((e) => e.identity);
    assert.ok(leaders.length <= 1, `two leaders at once: ${leaders.join(', ')}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('LeaderElector', function () {
  this.timeout(10_000);
  const running: LeaderElector[] = [];
  const start = <T extends LeaderElector>(e: T): T => {
    running.push(e);
    void e.run();
    return e;
  };
  afterEach(async function () {
    await Promise.all(running.splice(0).map((e) => e.stop()));
  });

  it('refuses options that cannot be safe', function () {
    const store = new MemoryLease().store();
    const base = { namespace: 'n', name: 'l', identity: 'a', store };
    assert.throws(() => new LeaderElector({ ...base, identity: '' }), /non-empty identity/);
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

  it('creates the Lease, leads, and keeps renewing it', async function () {
    const lease = new MemoryLease();
    const a = start(elector(lease, 'a'));
    await until('a to lead', () => a.isLeader());
    assert.deepEqual(a.calls, ['started']);
    assert.equal(lease.record?.holderIdentity, 'a');
    assert.equal(lease.record?.leaseDurationSeconds, 1);
    assert.equal(lease.record?.leaseTransitions, 0);
    assert.match(lease.record?.renewTime ?? '', /\.\d{6}Z$/);
    const writes = lease.writes;
    await new Promise((r) => setTimeout(r, 350));
    assert.ok(lease.writes >= writes + 2, `renewed every retry period (${lease.writes - writes} writes)`);
    assert.equal(a.leader(), 'a');
  });

  it('lets exactly one of three candidates lead, never two at once', async function () {
    const lease = new MemoryLease();
    const all = ['a', 'b', 'c'].map((id) => start(elector(lease, id)));
    await until('a leader', () => all.some((e) => e.isLeader()));
    await neverTwoLeaders(all, 1500);
    const leaders = all.filter((e) => e.isLeader());
    assert.equal(leaders.length, 1);
    assert.equal(lease.record?.holderIdentity, leaders[0].identity);
    for (const e of all) assert.equal(e.leader(), leaders[0].identity, `${e.identity} sees the leader`);
  });

  it('hands over at once on stop({ release: true }), after the old leader stopped leading', async function () {
    const lease = new MemoryLease();
    let holderDuringStop: string | undefined;
    const a = start(
      elector(lease, 'a', { onStoppedLeading: () => void (holderDuringStop = lease.record?.holderIdentity) }),
    );
    await until('a to lead', () => a.isLeader());
    const b = start(elector(lease, 'b'));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(b.isLeader(), false);

    const t0 = Date.now();
    const sampling = neverTwoLeaders([a, b], 600);
    await a.stop({ release: true });
    assert.equal(holderDuringStop, 'a', 'onStoppedLeading ran before the Lease was released');
    assert.equal(a.isLeader(), false);
    await until('b to lead', () => b.isLeader());
    const took = Date.now() - t0;
    assert.ok(took < 600, `b led ${took} ms after the release (lease duration is 1000 ms)`);
    await sampling;
    assert.equal(lease.record?.holderIdentity, 'b');
    assert.equal(lease.record?.leaseTransitions, 1, 'one change of holder; releasing is none');
  });

  it('takes over a holder that vanished only after the lease duration', async function () {
    const lease = new MemoryLease();
    const a = start(elector(lease, 'a'));
    await until('a to lead', () => a.isLeader());
    const b = start(elector(lease, 'b'));
    await new Promise((r) => setTimeout(r, 150)); // b has seen a's Lease
    const t0 = Date.now();
    await a.stop(); // no release: a crash, as far as the Lease knows
    await until('b to lead', () => b.isLeader(), 3000);
    const took = Date.now() - t0;
    assert.ok(took >= 850, `b waited out the lease (${took} ms; a renewed up to 100 ms before stopping)`);
    assert.ok(took < 1000 + 600, `and took over promptly after it (${took} ms)`);
  });

  it('does not count a holder with a skewed wall clock as expired', async function () {
    const lease = new MemoryLease();
    const hourBehind = (): Date => new Date(Date.now() - 3600_000);
    const a = start(elector(lease, 'a', { wallClock: hourBehind }));
    await until('a to lead', () => a.isLeader());
    const b = start(elector(lease, 'b', { wallClock: () => new Date(Date.now() + 3600_000) }));
    await neverTwoLeaders([a, b], 1500);
    assert.equal(a.isLeader(), true, 'a kept the Lease for longer than its duration by renewing');
  });

  it('steps down when it cannot renew for the renew deadline, and leads again once the API is back', async function () {
    const lease = new MemoryLease();
    const a = start(elector(lease, 'a'));
    await until('a to lead', () => a.isLeader());
    lease.mode = 'fail';
    const t0 = Date.now();
    await until('a to step down', () => !a.isLeader(), 2000);
    const took = Date.now() - t0;
    assert.ok(took <= 600 + 150, `stepped down within the renew deadline (${took} ms)`);
    assert.ok(took >= 400, `not before the deadline (${took} ms)`);
    await until('onStoppedLeading', () => a.calls.length === 2);
    assert.deepEqual(a.calls, ['started', 'stopped']);
    lease.mode = 'ok';
    await until('a to lead again', () => a.isLeader(), 2000);
    assert.deepEqual(a.calls, ['started', 'stopped', 'started']);
  });

  it('steps down by the renew deadline even when requests hang', async function () {
    const lease = new MemoryLease();
    const a = start(elector(lease, 'a'));
    await until('a to lead', () => a.isLeader());
    lease.mode = 'hang';
    const t0 = Date.now();
    await until('a to step down', () => !a.isLeader(), 2000);
    assert.ok(Date.now() - t0 <= 600 + 150, `within the renew deadline (${Date.now() - t0} ms)`);
  });

  it('steps down at once when it sees another holder in the Lease', async function () {
    const lease = new MemoryLease();
    const a = start(elector(lease, 'a'));
    await until('a to lead', () => a.isLeader());
    lease.record = { ...lease.record!, holderIdentity: 'intruder' };
    lease.version++;
    const took = await until('a to step down', () => !a.isLeader(), 2000);
    assert.ok(took < 500, `at the next renewal (${took} ms), not at the deadline`);
    assert.equal(a.leader(), 'intruder');
  });

  it('runs the callbacks one at a time, in order, even when a slow start overlaps a loss', async function () {
    const lease = new MemoryLease();
    const log: string[] = [];
    const a = start(
      elector(lease, 'a', {
        onStartedLeading: async () => {
          log.push('start begins');
          await new Promise((r) => setTimeout(r, 300));
          log.push('start ends');
        },
        onStoppedLeading: () => void log.push('stop'),
      }),
    );
    await until('a to lead', () => a.isLeader());
    lease.record = { ...lease.record!, holderIdentity: 'intruder' };
    lease.version++;
    await until('a to step down', () => !a.isLeader());
    await until('the stop callback', () => log.includes('stop'));
    assert.deepEqual(log, ['start begins', 'start ends', 'stop']);
  });

  it('stops a standby without touching the Lease', async function () {
    const lease = new MemoryLease();
    const a = start(elector(lease, 'a'));
    await until('a to lead', () => a.isLeader());
    const b = start(elector(lease, 'b'));
    await new Promise((r) => setTimeout(r, 150));
    await b.stop({ release: true });
    assert.equal(lease.record?.holderIdentity, 'a');
    assert.deepEqual(b.calls, []);
    assert.equal(a.isLeader(), true);
  });
});
