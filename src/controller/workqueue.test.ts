import * as assert from 'node:assert/strict';
import { TerminalError } from '../reconcile/result';
import { WorkQueue } from './workqueue';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

async function until(what: string, check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('WorkQueue', function () {
  it('collapses a key added many times while queued into one run', async function () {
    const q = new WorkQueue({ workers: 1 });
    const gate = deferred();
    const runs: string[] = [];
    q.start(async (key) => {
      if (key === 'block') await gate.promise;
      runs.push(key);
      return {};
    });
    q.add('block');
    await until('block to start', () => q.depth === 0);
    for (let i = 0; i < 10; i++) q.add('a');
    assert.equal(q.depth, 1);
    gate.resolve();
    await until('a to run', () => runs.includes('a'));
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
      return {};
    });
    q.add('k');
    await until('first run', () => runs === 1);
    q.add('k');
    q.add('k');
    assert.equal(runs, 1, 'the second add waits for the first run');
    gate.resolve();
    await until('second run', () => runs === 2);
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
      return {};
    });
    for (const k of ['a', 'b', 'c', 'd', 'e']) q.add(k);
    await until('three in flight', () => active === 3);
    assert.equal(q.depth, 2);
    gate.resolve();
    await until('all done', () => active === 0 && q.depth === 0);
    await q.shutdown();
    assert.equal(maxActive, 3);
  });

  it('retries a failing key with exponential backoff and resets after a success', async function () {
    const q = new WorkQueue({ workers: 1, baseDelayMs: 10, maxDelayMs: 40 });
    const times: number[] = [];
    const delays: (number | undefined)[] = [];
    q.start(
      () => {
        times.push(Date.now());
        if (times.length <= 4) return Promise.reject(new Error('boom'));
        return Promise.resolve({});
      },
      (_key, _err, retry) => delays.push(retry),
    );
    q.add('k');
    await until('five runs', () => times.length === 5);
    assert.deepEqual(delays, [10, 20, 40, 40], 'doubling, capped at maxDelayMs');
    for (let i = 1; i < times.length; i++) {
      assert.ok(times[i] - times[i - 1] >= delays[i - 1] - 2, `run ${i} waited its backoff`);
    }
    assert.equal(q.backoffMs('k'), 10, 'a success forgets the failures');
    await q.shutdown();
  });

  it('runs a key in backoff at once when added, and forget() resets its backoff (issue 11: catch-up after an outage)', async function () {
    const q = new WorkQueue({ workers: 1, baseDelayMs: 5, maxDelayMs: 300_000 });
    let down = true;
    let runs = 0;
    q.start(() => {
      runs++;
      return down ? Promise.reject(new Error('ECONNREFUSED')) : Promise.resolve({});
    });
    // Failures while the API server is down, each woken by an event: the backoff climbs to its cap.
    for (let i = 0; i < 20; i++) {
      const before = runs;
      q.add('k');
      await until(`run ${i + 1}`, () => runs > before);
    }
    assert.equal(q.backoffMs('k'), 300_000, 'the next retry would be 5 minutes away');
    down = false;
    q.forget('k');
    assert.equal(q.backoffMs('k'), 5);
    const before = runs;
    q.add('k');
    await until('the catch-up run', () => runs > before);
    await q.shutdown();
  });

  it('does not retry a TerminalError', async function () {
    const q = new WorkQueue({ workers: 1, baseDelayMs: 1 });
    let runs = 0;
    const errors: (number | undefined)[] = [];
    q.start(
      () => {
        runs++;
        return Promise.reject(new TerminalError('bad spec'));
      },
      (_k, _e, retry) => errors.push(retry),
    );
    q.add('k');
    await until('the run', () => errors.length === 1);
    await new Promise((r) => setTimeout(r, 30)); // a retry, if any, would have happened by now
    await q.shutdown();
    assert.equal(runs, 1);
    assert.deepEqual(errors, [undefined]);
  });

  it('re-runs a key after requeueAfterMs, and an earlier addAfter wins over a later one', async function () {
    const q = new WorkQueue({ workers: 1 });
    const runs: number[] = [];
    const t0 = Date.now();
    q.start(() => {
      runs.push(Date.now() - t0);
      return Promise.resolve(runs.length === 1 ? { requeueAfterMs: 30 } : {});
    });
    q.add('k');
    await until('requeued run', () => runs.length === 2);
    assert.ok(runs[1] >= 28, `second run after ${runs[1]} ms`);
    q.addAfter('x', 1000);
    q.addAfter('x', 10);
    await until('x ran early', () => runs.length === 3, 500);
    await q.shutdown();
  });
});
