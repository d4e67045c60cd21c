import * as assert from 'node:assert/strict';
import { waitFor } from '../../test/support/wait';
import { FakeTimers } from '../testing/fake-timers';
import { WorkQueue } from './workqueue';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('WorkQueue', function () {
  it('collapses a key added many times while queued into one run', async function () {
    const q = new WorkQueue({ workers: 1 });
    const gate = deferred();
    const runs: string[] = [];
    q.start(async (key) => {
      if (key === 'block') await gate.promise;
      runs.push(key);
    });
    q.add('block');
    await waitFor('block to start', () => q.depth === 0, 2000, 2);
    for (let i = 0; i < 10; i++) q.add('a');
    assert.equal(q.depth, 1);
    gate.resolve();
    await waitFor('a to run', () => runs.includes('a'), 2000, 2);
    await q.shutdown();
    assert.deepEqual(runs, ['block', 'a']);
  });

  it('never runs one key twice at once, and re-runs a key added during its run', async function () {
    const q = new WorkQueue({ workers: 4 });
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const gate = deferred();
    q.start(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs++;
      if (runs === 1) await gate.promise;
      active--;
    });
    q.add('k');
    await waitFor('first run', () => runs === 1, 2000, 2);
    q.add('k');
    q.add('k');
    assert.equal(runs, 1, 'the second add waits for the first run');
    gate.resolve();
    await waitFor('second run', () => runs === 2, 2000, 2);
    await q.shutdown();
    assert.equal(maxActive, 1);
    assert.equal(runs, 2);
  });

  it('runs different keys in parallel up to the worker count', async function () {
    const q = new WorkQueue({ workers: 3 });
    let active = 0;
    let maxActive = 0;
    const gate = deferred();
    q.start(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await gate.promise;
      active--;
    });
    for (const k of ['a', 'b', 'c', 'd', 'e']) q.add(k);
    await waitFor('three in flight', () => active === 3, 2000, 2);
    assert.equal(q.depth, 2);
    gate.resolve();
    await waitFor('all done', () => active === 0 && q.depth === 0, 2000, 2);
    await q.shutdown();
    assert.equal(maxActive, 3);
  });

  it('adds a key again after its backoff on addRateLimited, doubling to the cap; forget() resets it', async function () {
    const clock = new FakeTimers();
    const q = new WorkQueue({ workers: 1, baseDelayMs: 10, maxDelayMs: 40, timers: clock });
    const runsAt: number[] = [];
    const delays: number[] = [];
    q.start((key) => {
      runsAt.push(clock.now());
      if (runsAt.length <= 4) delays.push(q.addRateLimited(key));
      else q.forget(key);
      return Promise.resolve();
    });
    q.add('k');
    await clock.until('five runs', () => runsAt.length === 5, 1000);
    assert.deepEqual(delays, [10, 20, 40, 40], 'doubling, capped at maxDelayMs');
    assert.deepEqual(runsAt, [0, 10, 30, 70, 110], 'each run after its backoff, to the millisecond');
    assert.equal(q.backoffMs('k'), 10, 'forgotten after the success');
    await q.shutdown();
  });

  it('runs a key in backoff at once when added (issue 11: catch-up after an outage)', async function () {
    const clock = new FakeTimers();
    const q = new WorkQueue({ workers: 1, baseDelayMs: 5, maxDelayMs: 300_000, timers: clock });
    let runs = 0;
    q.start((key) => {
      runs++;
      q.addRateLimited(key);
      return Promise.resolve();
    });
    for (let i = 0; i < 20; i++) {
      const before = runs;
      q.add('k');
      await clock.until(`run ${i + 1}`, () => runs > before, 1);
    }
    assert.equal(q.backoffMs('k'), 300_000, 'the next retry would be 5 minutes away');
    q.forget('k');
    assert.equal(q.backoffMs('k'), 5);
    const before = runs;
    q.add('k');
    await clock.until('the catch-up run', () => runs > before, 1);
    await q.shutdown();
  });

  it('adds a key after addAfter, and an earlier addAfter wins over a later one', async function () {
    const clock = new FakeTimers();
    const q = new WorkQueue({ workers: 1, timers: clock });
    const runs: [string, number][] = [];
    q.start((key) => {
      runs.push([key, clock.now()]);
      return Promise.resolve();
    });
    q.addAfter('x', 1000);
    q.addAfter('x', 10);
    q.addAfter('y', 30);
    await clock.advance(2000);
    assert.deepEqual(runs, [
      ['x', 10],
      ['y', 30],
    ]);
    assert.equal(clock.waiting, 0, 'the later timer of x was dropped');
    await q.shutdown();
  });
});
