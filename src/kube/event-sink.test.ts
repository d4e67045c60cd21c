// EventSink's writes against an in-memory backend, on a fake clock and fake timers: storms, creates in
// flight, series gaps, retries, shedding.
import * as assert from 'node:assert/strict';
import { rig } from './testing/event-fakes';

describe('EventSink', () => {
  it('writes a storm of 600 failures within 10 s, 20 at a time, with a handful of writes', async () => {
    const { clock, backend, sink, fail } = rig();
    for (let i = 0; i < 600; i++) {
      // One in 30 fails differently (20 distinct notes), the rest identically.
      fail('uid-a', i % 30 === 29 ? `dial tcp 10.0.0.${i}:8080: i/o timeout` : 'connection refused');
      if (i % 20 === 19) await clock.advance(333);
    }
    await clock.advance(10 * 60_000);
    await sink.flush();
    // 'connection refused' and the first 3 distinct notes get an Event each, the other 17 one combined
    // Event; the two that repeat get one series patch each.
    assert.equal(backend.creates.length, 5);
    assert.equal(backend.patches.length, 2);
    assert.equal(
      [...backend.counts().values()].reduce((a, b) => a + b, 0),
      600,
    );
    assert.equal(sink.stats().failures, 0);
    assert.ok(backend.maxInFlight <= 4);
    assert.equal(backend.overlaps, 0);
  });

  it('joins occurrences during an in-flight create: one create, then one series patch', async () => {
    const { clock, backend, fail } = rig();
    backend.hold = true;
    for (let i = 0; i < 25; i++) fail('uid-a', 'tunnel to pod web-0 failed');
    await clock.advance(100);
    assert.equal(backend.attempts, 1);
    backend.hold = false;
    backend.release();
    await clock.advance(14_000);
    assert.equal(backend.patches.length, 0, 'the series waits for its gap');
    await clock.advance(1000);
    assert.deepEqual(
      backend.patches.map((p) => p.series.count),
      [25],
    );
    await clock.advance(10 * 60_000);
    assert.equal(backend.writes, 2);
    assert.equal(backend.overlaps, 0);
  });

  it('writes a long series at gaps that double up to the cap, with the final count', async () => {
    const { clock, backend, fail } = rig({ seriesIntervalMs: 15_000, maxSeriesIntervalMs: 60_000 });
    for (let s = 0; s < 200; s++) {
      fail('uid-a');
      await clock.advance(1000);
    }
    await clock.advance(10 * 60_000);
    assert.equal(backend.creates[0].at, 0);
    assert.deepEqual(
      backend.patches.map((p) => p.at / 1000),
      [15, 45, 105, 165, 225],
    );
    assert.equal(backend.patches.at(-1)?.series.count, 200);
    assert.deepEqual(
      backend.patches.at(-1)?.series.lastObservedTime,
      new Date(Date.UTC(2025, 0, 1) + 199_000),
    );
  });

  it('writes the Events of distinct objects independently', async () => {
    const { clock, backend, fail } = rig();
    for (let i = 0; i < 30; i++) for (const obj of ['uid-a', 'uid-b', 'uid-c']) fail(obj);
    await clock.advance(60_000);
    assert.deepEqual(backend.creates.map((c) => c.subject).sort(), ['uid-a', 'uid-b', 'uid-c']);
    assert.deepEqual([...backend.counts().values()], [30, 30, 30]);
  });

  it('retries a must-deliver Event with backoff until the API server takes it', async () => {
    const { clock, backend, sink, logs } = rig();
    backend.down = true;
    sink.record(
      { objectKey: 'uid-a', type: 'Normal', reason: 'Expired', note: 'ttl passed', mustDeliver: true },
      'uid-a',
    );
    await clock.advance(1000 + 2000 + 4000 + 8000);
    assert.equal(backend.attempts, 5, 'tries at 0, 1, 3, 7 and 15 s');
    assert.equal(logs.length, 1, 'logged once per reason per minute');
    backend.down = false;
    await clock.advance(16_000);
    assert.equal(backend.creates.length, 1);
    assert.equal(backend.creates[0].reason, 'Expired');
    assert.equal(clock.timerCount, 0);
    assert.equal(sink.stats().failures, 5);
  });

  it('sends a must-deliver Event waiting on its backoff at once on retryNow (the API server is back)', async () => {
    const { clock, backend, sink } = rig();
    backend.down = true;
    sink.record(
      { objectKey: 'uid-a', type: 'Normal', reason: 'Expired', note: 'ttl passed', mustDeliver: true },
      'uid-a',
    );
    await clock.advance(1000 + 2000 + 4000 + 8000 + 100);
    assert.equal(backend.attempts, 5, 'the next try is 16 s away');
    backend.down = false;
    sink.retryNow();
    await clock.advance(0);
    assert.equal(backend.creates.length, 1, 'created at once');
    assert.equal(backend.creates[0].reason, 'Expired');
    sink.retryNow();
    await clock.advance(60_000);
    assert.equal(backend.attempts, 6, 'nothing sent twice');
    assert.equal(clock.timerCount, 0);
  });

  it('gives up a must-deliver Event after its max age, and does not retry an ordinary one', async () => {
    const { clock, backend, sink, fail } = rig({ mustDeliverMaxAgeMs: 60_000 });
    backend.down = true;
    fail('uid-a');
    await clock.advance(30 * 60_000);
    assert.equal(backend.attempts, 1);
    sink.record(
      { objectKey: 'uid-b', type: 'Normal', reason: 'Expired', note: 'ttl passed', mustDeliver: true },
      'uid-b',
    );
    await clock.advance(30 * 60_000);
    assert.ok(backend.attempts > 3 && backend.attempts < 12, `${backend.attempts} attempts`);
    assert.equal(sink.stats().abandoned, 1);
    assert.equal(clock.timerCount, 0);
  });

  it('logs failures once per reason per interval, with the number suppressed', async () => {
    const { clock, backend, logs, fail } = rig();
    backend.down = true;
    for (let i = 0; i < 100; i++) fail(`uid-${i}`);
    await clock.advance(1000);
    assert.equal(backend.attempts, 100);
    assert.equal(logs.length, 1);
    await clock.advance(60_000);
    fail('uid-100');
    await clock.advance(1000);
    assert.equal(logs.length, 2);
    assert.equal(logs[1].meta?.suppressed, 99);
  });

  it('creates an Event again, with its count, when the API server let it expire', async () => {
    const { clock, backend, fail } = rig();
    fail('uid-a');
    await clock.advance(1000);
    backend.gone.add(backend.creates[0].name);
    for (let i = 0; i < 4; i++) fail('uid-a');
    await clock.advance(20_000);
    assert.equal(backend.creates.length, 2);
    assert.equal(backend.creates[1].series?.count, 5);
  });

  it('flushes pending counts at once, and records nothing after close', async () => {
    const { clock, backend, sink, fail } = rig();
    for (let i = 0; i < 5; i++) fail('uid-a');
    await sink.flush();
    assert.equal(backend.creates.length, 1);
    assert.deepEqual(
      backend.patches.map((p) => p.series.count),
      [5],
    );
    fail('uid-a');
    await sink.close();
    assert.equal(backend.patches.at(-1)?.series.count, 6);
    fail('uid-a');
    fail('uid-z');
    await clock.advance(60 * 60_000);
    assert.equal(backend.writes, 3);
    assert.equal(clock.timerCount, 0);
  });

  it('sheds ordinary writes beyond maxPending, and keeps a place for a must-deliver one', async () => {
    const { clock, backend, sink, fail } = rig({ maxInFlight: 1, maxPending: 3 });
    backend.hold = true;
    for (let i = 0; i < 10; i++) fail(`uid-${i}`);
    assert.deepEqual([sink.stats().inFlight, sink.stats().pending, sink.stats().shed], [1, 3, 6]);
    sink.record(
      { objectKey: 'uid-x', type: 'Normal', reason: 'Expired', note: 'ttl passed', mustDeliver: true },
      'uid-x',
    );
    assert.deepEqual([sink.stats().pending, sink.stats().shed], [3, 7]);
    backend.hold = false;
    for (let i = 0; i < 5; i++) {
      backend.release();
      await clock.advance(10);
    }
    assert.deepEqual(
      backend.creates.map((c) => c.subject),
      ['uid-0', 'uid-2', 'uid-3', 'uid-x'],
    );
  });

  it('holds bounded state across 10,000 objects', async () => {
    const { clock, backend, sink, fail } = rig({ maxGroups: 100 });
    for (let i = 0; i < 10_000; i++) {
      fail(`uid-${i}`);
      fail(`uid-${i}`);
      if (i % 50 === 49) await clock.advance(10);
    }
    await clock.advance(60_000);
    await sink.flush();
    assert.ok(sink.stats().tracked <= 100, `${sink.stats().tracked} tracked`);
    assert.equal(sink.correlator.stats().groups, 100);
    assert.ok(clock.timerCount <= 100);
    assert.equal(backend.overlaps, 0);
    assert.ok(backend.maxInFlight <= 4);
  });
});
