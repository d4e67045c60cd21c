// EventCorrelator's decisions: series, aggregation, the token bucket, memory.
import * as assert from 'node:assert/strict';
import {
  COMBINED_PREFIX,
  CorrelatedEvent,
  Decision,
  EventCorrelator,
  EventOccurrence,
  NOTE_MAX_BYTES,
  truncateUtf8,
} from './event-correlator';

const occ = (note: string, objectKey = 'uid-a', reason = 'TunnelFailed'): EventOccurrence => ({
  objectKey,
  type: 'Warning',
  reason,
  note,
});

function created(d: Decision): CorrelatedEvent {
  assert.equal(d.action, 'create');
  return (d as { event: CorrelatedEvent }).event;
}

describe('EventCorrelator', () => {
  it('joins identical occurrences within the window into one series', () => {
    const c = new EventCorrelator();
    const ev = created(c.observe(occ('refused'), 0));
    for (let i = 2; i <= 5; i++) {
      const d = c.observe(occ('refused'), i * 1000);
      assert.deepEqual(d, { action: 'series', event: ev });
      assert.equal(ev.count, i);
    }
  });

  it('starts a new Event after a window of silence', () => {
    const c = new EventCorrelator({ windowMs: 60_000 });
    const first = created(c.observe(occ('refused'), 0));
    assert.equal(c.observe(occ('refused'), 60_000).action, 'series');
    const second = created(c.observe(occ('refused'), 120_001));
    assert.notEqual(second, first);
    assert.equal(second.count, 1);
  });

  it('combines distinct notes beyond aggregateAfter into one Event that keeps the newest note', () => {
    const c = new EventCorrelator({ aggregateAfter: 2 });
    const a = created(c.observe(occ('dial 10.0.0.1'), 0));
    created(c.observe(occ('dial 10.0.0.2'), 1));
    const combined = created(c.observe(occ('dial 10.0.0.3'), 2));
    assert.equal(combined.combined, true);
    assert.equal(combined.note, `${COMBINED_PREFIX}dial 10.0.0.3`);
    for (let i = 4; i < 100; i++) assert.equal(c.observe(occ(`dial 10.0.0.${i}`), i).action, 'series');
    assert.equal(combined.count, 97);
    assert.equal(combined.latestNote, 'dial 10.0.0.99');
    assert.deepEqual(c.observe(occ('dial 10.0.0.1'), 100), { action: 'series', event: a });
    assert.equal(c.stats().events, 3);
  });

  it('refuses creates beyond the burst, counts them, and refills one token per refillMs', () => {
    const c = new EventCorrelator({ burst: 2, refillMs: 60_000, aggregateAfter: 100 });
    created(c.observe(occ('a'), 0));
    created(c.observe(occ('b'), 0));
    assert.deepEqual(c.observe(occ('c'), 1000), { action: 'drop' });
    assert.equal(c.observe(occ('a'), 1000).action, 'series', 'joining a series costs no token');
    assert.equal(c.observe(occ('d'), 59_000).action, 'drop');
    created(c.observe(occ('d'), 61_000));
    assert.equal(c.observe(occ('e'), 61_000).action, 'drop');
    created(c.observe({ ...occ('expired', 'uid-a'), mustDeliver: true }, 61_000));
    assert.equal(c.stats().dropped, 3);
  });

  it('keeps distinct objects and reasons apart, each with its own budget', () => {
    const c = new EventCorrelator({ burst: 1, aggregateAfter: 100 });
    const a = created(c.observe(occ('refused', 'uid-a'), 0));
    assert.equal(c.observe(occ('timeout', 'uid-a'), 0).action, 'drop');
    const b = created(c.observe(occ('refused', 'uid-b'), 0));
    created(c.observe(occ('refused', 'uid-a', 'Degraded'), 0));
    assert.notEqual(a, b);
    assert.equal(c.observe(occ('refused', 'uid-b'), 1).action, 'series');
    assert.equal(a.count, 1);
  });

  it('forgets the least recently used groups beyond maxGroups', () => {
    const forgotten: CorrelatedEvent[] = [];
    const c = new EventCorrelator({ maxGroups: 10, onForget: (ev) => forgotten.push(ev) });
    for (let i = 0; i < 1000; i++) c.observe(occ('refused', `uid-${i}`), i);
    assert.deepEqual(c.stats(), { groups: 10, events: 10, dropped: 0, evicted: 990 });
    assert.equal(forgotten.length, 990);
    assert.equal(forgotten[0].objectKey, 'uid-0');
  });

  it('cuts notes to 1024 bytes of UTF-8, the combined prefix included', () => {
    const long = '€'.repeat(2000);
    assert.ok(Buffer.byteLength(truncateUtf8(long, NOTE_MAX_BYTES)) <= NOTE_MAX_BYTES);
    assert.equal(truncateUtf8('short', NOTE_MAX_BYTES), 'short');
    const c = new EventCorrelator({ aggregateAfter: 0 });
    const ev = created(c.observe(occ(long), 0));
    assert.ok(ev.note.startsWith(COMBINED_PREFIX) && ev.note.endsWith('…'));
    assert.ok(Buffer.byteLength(ev.note) <= NOTE_MAX_BYTES);
  });
});
