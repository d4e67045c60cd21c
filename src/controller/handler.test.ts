// reconcileHandler: the one place that decides what a reconcile's outcome means, with the work queue
// it drives on virtual time.
import * as assert from 'node:assert/strict';
import { Result, TerminalError } from '../reconcile/result';
import { FakeTimers } from '../testing/fake-timers';
import { errorPolicy, reconcileHandler } from './handler';
import { WorkQueue } from './workqueue';

describe('reconcileHandler', function () {
  let clock: FakeTimers;
  let queue: WorkQueue;
  let lines: { level: string; message: string; meta?: Record<string, unknown> }[];
  let results: string[];
  let timed: number;

  function start(reconcile: (key: string, run: number) => Promise<Result>): number[] {
    const runsAt: number[] = [];
    queue.start(
      reconcileHandler({
        reconcile: (key) => {
          runsAt.push(clock.now());
          return reconcile(key, runsAt.length);
        },
        queue,
        log: {
          warn: (message, meta) => lines.push({ level: 'warn', message, meta }),
          error: (message, meta) => lines.push({ level: 'error', message, meta }),
        },
        metrics: {
          startTimer: () => () => void timed++,
          result: (r) => void results.push(r),
          queueDepth: () => undefined,
        },
      }),
    );
    return runsAt;
  }

  beforeEach(function () {
    clock = new FakeTimers();
    queue = new WorkQueue({ workers: 1, baseDelayMs: 10, maxDelayMs: 1000, timers: clock });
    lines = [];
    results = [];
    timed = 0;
  });
  afterEach(async function () {
    await queue.shutdown();
  });

  it('re-runs a successful reconcile after its requeueAfterMs, and not otherwise', async function () {
    const runsAt = start((_k, run) => Promise.resolve(run === 1 ? { requeueAfterMs: 250 } : {}));
    queue.add('ns/a');
    await clock.advance(5000);
    assert.deepEqual(runsAt, [0, 250]);
    assert.deepEqual(results, ['success', 'success']);
    assert.equal(timed, 2, 'every run is timed');
    assert.deepEqual(lines, [], 'a success logs nothing here');
  });

  it('re-runs at the priority the result asks for: low for counters, normal otherwise', async function () {
    const asked: [string, number, string | undefined][] = [];
    const addAfter = queue.addAfter.bind(queue);
    queue.addAfter = (key, ms, priority) => {
      asked.push([key, ms, priority]);
      addAfter(key, ms, priority);
    };
    start((key) =>
      Promise.resolve(
        key === 'ns/counters' ? { requeueAfterMs: 250, requeuePriority: 'low' } : { requeueAfterMs: 100 },
      ),
    );
    queue.add('ns/counters');
    queue.add('ns/expiry');
    await clock.advance(50);
    assert.deepEqual(asked, [
      ['ns/counters', 250, 'low'],
      ['ns/expiry', 100, 'normal'],
    ]);
  });

  it("retries an error with the key's backoff, logs one warning per failure, and forgets it after a success", async function () {
    const runsAt = start((_k, run) =>
      run <= 3 ? Promise.reject(new Error('connection refused')) : Promise.resolve({}),
    );
    queue.add('ns/a');
    await clock.advance(5000);
    assert.deepEqual(runsAt, [0, 10, 30, 70], 'backoff 10, 20, 40 ms');
    assert.deepEqual(results, ['error', 'error', 'error', 'success']);
    assert.equal(lines.length, 3);
    assert.equal(lines[0].message, 'reconcile failed; retrying');
    assert.deepEqual(
      lines.map((l) => l.meta?.retryInMs),
      [10, 20, 40],
    );
    assert.equal(lines[0].meta?.portforward, 'ns/a');
    assert.match(String(lines[0].meta?.error), /connection refused/);
    assert.equal(queue.backoffMs('ns/a'), 10, 'forgotten after the success');
  });

  it('gives up on a TerminalError (also what the reconciler makes of the relay refusing a spec), logging an error once', async function () {
    for (const err of [
      new TerminalError('cannot work'),
      new TerminalError('listener id "a" appears twice', { cause: new Error('RelaySpecError') }),
    ]) {
      lines = [];
      const runsAt = start(() => Promise.reject(err));
      queue.add('ns/b');
      await clock.advance(5000);
      assert.equal(runsAt.length, 1, `${err.name}: no retry`);
      assert.equal(lines.length, 1);
      assert.equal(lines[0].level, 'error');
      assert.match(lines[0].message, /not retried/);
      await queue.shutdown();
      queue = new WorkQueue({ workers: 1, baseDelayMs: 10, timers: clock });
    }
  });

  it('decides retry or give-up in one function', function () {
    assert.equal(errorPolicy(new Error('ECONNREFUSED')), 'retry');
    assert.equal(errorPolicy('a string'), 'retry');
    assert.equal(errorPolicy(new TerminalError('x')), 'giveUp');
    // The relay's errors reach the loop as TerminalErrors (reconciler.test.ts).
    assert.equal(errorPolicy(new TerminalError('the relay is closed', { cause: new Error('x') })), 'giveUp');
  });
});
