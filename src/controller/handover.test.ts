import * as assert from 'node:assert/strict';
import { FakeTimers } from '../testing/fake-timers';
import { stopThenRelease, StopOutcome } from './handover';

describe('stopThenRelease', function () {
  it('releases as soon as the listeners are closed', async function () {
    const timers = new FakeTimers();
    let close!: () => void;
    const steps: string[] = [];
    const done = stopThenRelease(
      timers,
      () => new Promise<void>((r) => (close = r)).then(() => void steps.push('closed')),
      () => Promise.resolve(void steps.push(`released at ${timers.now()}`)),
      5_000,
    );
    await timers.advance(1_200);
    assert.deepEqual(steps, []);
    close();
    assert.deepEqual(await done, { closed: true });
    assert.deepEqual(steps, ['closed', 'released at 1200']);
    assert.equal(timers.waiting, 0, 'the deadline timer is cleared');
  });

  it('releases at the deadline when closing the listeners never ends', async function () {
    const timers = new FakeTimers();
    let releasedAt = -1;
    let outcome: StopOutcome | undefined;
    void stopThenRelease(
      timers,
      () => new Promise<void>(() => undefined),
      () => Promise.resolve(void (releasedAt = timers.now())),
      5_000,
    ).then((o) => (outcome = o));
    await timers.advance(4_999);
    assert.equal(releasedAt, -1, 'not released before the deadline');
    await timers.advance(1);
    assert.equal(releasedAt, 5_000);
    assert.deepEqual(outcome, { closed: false, error: 'closing the listeners timed out after 5000 ms' });
  });

  it('releases at once when closing the listeners fails, and says why', async function () {
    const timers = new FakeTimers();
    let released = 0;
    const outcome = await stopThenRelease(
      timers,
      () => Promise.reject(new Error('the relay worker is gone')),
      () => Promise.resolve(void released++),
      5_000,
    );
    assert.equal(released, 1);
    assert.deepEqual(outcome, { closed: false, error: 'the relay worker is gone' });
  });

  it('releases at once when there is nothing to close (no serving term)', async function () {
    let released = 0;
    const outcome = await stopThenRelease(
      new FakeTimers(),
      () => undefined,
      () => Promise.resolve(void released++),
      5_000,
    );
    assert.deepEqual([outcome, released], [{ closed: true }, 1]);
  });
});
