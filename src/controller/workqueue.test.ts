import * as assert from 'node:assert/strict';
import { waitFor } from '../../test/support/wait';
import { FakeTimers } from '../testing/fake-timers';
import { Priority, WorkQueue, WorkQueueOptions } from './workqueue';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A one-worker queue whose first key, 'block' (added at `blockAt`), runs until `release()`: keys added
 * meanwhile wait, and `runs` lists every key in the order the worker ran them.
 */
async function blockedQueue(
  opts: WorkQueueOptions = {},
  blockAt: Priority = 'normal',
): Promise<{ q: WorkQueue; runs: string[]; release: () => void }> {
  const q = new WorkQueue({ ...opts, workers: 1 });
  const runs: string[] = [];
  const gate = deferred();
  q.start(async (key) => {
    if (key === 'block') await gate.promise;
    runs.push(key);
  });
  q.add('block', blockAt);
  await waitFor('block to start', () => q.depth === 0, 2000, 2);
  return { q, runs, release: gate.resolve };
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

  it('queues a key of addAfter at the priority it was given when its time comes', async function () {
    const clock = new FakeTimers();
    const waits: string[] = [];
    const { q, runs, release } = await blockedQueue({ timers: clock, onDequeue: (_ms, p) => waits.push(p) });
    q.addAfter('counters', 10, 'low');
    q.addAfter('ttl', 20);
    await clock.advance(30); // both timers fired while the worker is held: both wait in the queue
    release();
    await waitFor('both to run', () => runs.length === 3, 2000, 2);
    await q.shutdown();
    assert.deepEqual(
      runs,
      ['block', 'ttl', 'counters'],
      'the normal key first, though its timer fired later',
    );
    assert.deepEqual(waits.slice(1), ['normal', 'low']);
  });

  it('runs normal keys before low ones, first in first out within each, and reports each wait', async function () {
    const clock = new FakeTimers();
    const waits: [number, string][] = [];
    const { q, runs, release } = await blockedQueue({
      timers: clock,
      onDequeue: (ms, p) => waits.push([ms, p]),
    });
    for (let i = 0; i < 2000; i++) q.add(`restored-${i}`, 'low');
    await clock.advance(7);
    q.add('applied');
    q.add('restored-1500'); // asked again at normal: moves up, keeps its time
    q.add('restored-3', 'low'); // already waiting: nothing changes
    assert.equal(q.depth, 2001);
    release();
    await waitFor('all to run', () => runs.length === 2002, 2000, 2);
    await q.shutdown();
    const restored = Array.from({ length: 2000 }, (_, i) => `restored-${i}`).filter(
      (k) => k !== 'restored-1500',
    );
    assert.deepEqual(runs, ['block', 'applied', 'restored-1500', ...restored]);
    assert.deepEqual(waits.slice(0, 3), [
      [0, 'normal'],
      [0, 'normal'],
      [7, 'normal'],
    ]);
    assert.deepEqual(waits[3], [7, 'low']);
    assert.equal(waits.length, 2002, 'a raised key is taken once');
  });

  it('runs a key added during its run again at the highest priority asked meanwhile', async function () {
    const q = new WorkQueue({ workers: 1 });
    const runs: string[] = [];
    const gate = deferred();
    q.start(async (key) => {
      runs.push(key);
      if (runs.length === 1) await gate.promise;
    });
    q.add('k');
    await waitFor('k to start', () => runs.length === 1, 2000, 2);
    q.add('k', 'low');
    q.add('other', 'low');
    q.add('k'); // normal: the rerun goes before 'other', queued low meanwhile
    gate.resolve();
    await waitFor('the rest to run', () => runs.length === 3, 2000, 2);
    await q.shutdown();
    assert.deepEqual(runs, ['k', 'k', 'other']);
  });

  it('takes a low key after every three normal ones while both wait: restored forwards are not starved', async function () {
    const { q, runs, release } = await blockedQueue({}, 'low');
    for (let i = 0; i < 3; i++) q.add(`restored-${i}`, 'low');
    for (let i = 0; i < 8; i++) q.add(`change-${i}`);
    release();
    await waitFor('all to run', () => runs.length === 12, 2000, 2);
    await q.shutdown();
    assert.deepEqual(runs, [
      'block',
      'change-0',
      'change-1',
      'change-2',
      'restored-0',
      'change-3',
      'change-4',
      'change-5',
      'restored-1',
      'change-6',
      'change-7',
      'restored-2',
    ]);
  });

  it('keeps first-in first-out order for a key queued low again while its moved-up run goes on', async function () {
    const q = new WorkQueue({ workers: 1 });
    const runs: string[] = [];
    const gate = deferred();
    q.start(async (key) => {
      if (key === 'block') await gate.promise;
      // Its first run asks for another, at low: queued behind 'a', not at its first entry's place.
      if (key === 'k' && !runs.includes('k')) q.add('k', 'low');
      runs.push(key);
    });
    q.add('block');
    await waitFor('block to start', () => q.depth === 0, 2000, 2);
    q.add('k', 'low');
    q.add('a', 'low');
    q.add('k'); // moves up: runs first
    gate.resolve();
    await waitFor('the rest to run', () => runs.length === 4, 2000, 2);
    await q.shutdown();
    assert.deepEqual(runs, ['block', 'k', 'a', 'k']);
  });

  it('never hands a key to a second worker between its take and its run, and survives a throwing onDequeue', async function () {
    let dequeues = 0;
    const q: WorkQueue = new WorkQueue({
      workers: 2,
      onDequeue: () => {
        if (++dequeues === 1) q.add('k'); // added while taken, before its worker started
        if (dequeues === 2) throw new Error('a broken metric');
      },
    });
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    q.start(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await new Promise((r) => setTimeout(r, 5));
      runs++;
      active--;
    });
    q.add('k');
    await waitFor('two runs', () => runs === 2, 2000, 2);
    await q.shutdown();
    assert.equal(maxActive, 1, 'one key, one worker at a time');
    assert.equal(dequeues, 2);
  });
});
