import * as assert from 'node:assert/strict';
import {
  claimRecord,
  LeaderRecord,
  mayAcquire,
  microTime,
  msUntilExpiry,
  observe,
  recordKey,
  releasedRecord,
} from './leader-record';

const held = (holder: string, renewTime = '2026-01-01T00:00:00.000000Z'): LeaderRecord => ({
  holderIdentity: holder,
  leaseDurationSeconds: 15,
  acquireTime: '2026-01-01T00:00:00.000000Z',
  renewTime,
  leaseTransitions: 3,
});

describe('leader election rules', function () {
  it('starts the expiry clock when the record changes, and keeps it while the record stays the same', function () {
    const first = observe(undefined, held('a'), 1000);
    assert.equal(first.at, 1000);
    assert.equal(observe(first, held('a'), 9000).at, 1000, 'unchanged record: clock keeps running');
    const renewed = observe(first, held('a', '2026-01-01T00:00:02.000000Z'), 9000);
    assert.equal(renewed.at, 9000, 'a renewal restarts the clock');
  });

  it('judges expiry by the local clock, never by the holder-written renewTime', function () {
    // The holder's clock runs an hour behind: its renewTime looks ancient, yet it renewed just now.
    const skewed = observe(undefined, held('a', '2025-12-31T23:00:00.000000Z'), 50_000);
    assert.equal(mayAcquire(skewed, 'b', 50_001, 15_000), false);
    assert.equal(msUntilExpiry(skewed, 60_000, 15_000), 5_000);
    assert.equal(mayAcquire(skewed, 'b', 65_000, 15_000), true, 'after a lease duration without change');
  });

  it('uses the Lease own duration, falling back to the local one when the Lease has none', function () {
    const obs = observe(undefined, { ...held('a'), leaseDurationSeconds: 2 }, 0);
    assert.equal(mayAcquire(obs, 'b', 1_999, 15_000), false);
    assert.equal(mayAcquire(obs, 'b', 2_000, 15_000), true);
    const none = observe(undefined, { ...held('a'), leaseDurationSeconds: 0 }, 0);
    assert.equal(msUntilExpiry(none, 0, 7_000), 7_000);
  });

  it('lets anyone take a released Lease and the holder renew its own at once', function () {
    const released = observe(undefined, releasedRecord(held('a'), new Date(0)), 0);
    assert.equal(mayAcquire(released, 'b', 0, 15_000), true);
    assert.equal(mayAcquire(observe(undefined, held('a'), 0), 'a', 0, 15_000), true);
  });

  it('keeps acquireTime and the transition count on renewal, and counts a change of holder', function () {
    const now = new Date('2026-01-01T00:00:05.123Z');
    const renewed = claimRecord(held('a'), 'a', 15, now);
    assert.equal(renewed.acquireTime, held('a').acquireTime);
    assert.equal(renewed.renewTime, '2026-01-01T00:00:05.123000Z');
    assert.equal(renewed.leaseTransitions, 3);
    const taken = claimRecord(held('a'), 'b', 15, now);
    assert.deepEqual(taken, {
      holderIdentity: 'b',
      leaseDurationSeconds: 15,
      acquireTime: '2026-01-01T00:00:05.123000Z',
      renewTime: '2026-01-01T00:00:05.123000Z',
      leaseTransitions: 4,
    });
    assert.equal(claimRecord(undefined, 'a', 15, now).leaseTransitions, 0, 'creating the Lease');
  });

  it('releases by emptying the holder and keeping the transition count', function () {
    const r = releasedRecord(held('a'), new Date('2026-01-01T00:00:09Z'));
    assert.equal(r.holderIdentity, '');
    assert.equal(r.leaseTransitions, 3);
    assert.equal(r.leaseDurationSeconds, 1);
    assert.notEqual(recordKey(r), recordKey(held('a')));
  });

  it('writes MicroTime with six fractional digits', function () {
    assert.equal(microTime(new Date('2026-03-04T05:06:07.089Z')), '2026-03-04T05:06:07.089000Z');
  });
});
