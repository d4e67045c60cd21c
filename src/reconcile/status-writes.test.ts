// The budget of counter-only status writes across forwards (--counter-writes-per-second): the slot
// bucket alone, then through the reconciler with the fake relay and status writer.
import * as assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { SessionStats } from '../relay';
import { SlotBucket } from './status-writes';
import { reconcilerHarness } from './testing/harness';

const pod: V1Pod = {
  metadata: { name: 'p', namespace: 'ns', uid: 'uid-p' },
  spec: { containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }] },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
};

const stats = (total: number): SessionStats => ({
  active: 0,
  total,
  failed: 0,
  refused: 0,
  bytesSent: total,
  bytesReceived: total,
});

describe('SlotBucket', function () {
  it('hands out the burst at once, then one slot per 1/rate in the order asked, and refills with time', function () {
    const b = new SlotBucket(2, 2);
    assert.deepEqual(
      Array.from({ length: 5 }, () => b.reserve(0)),
      [0, 0, 500, 1000, 1500],
    );
    // long after the last slot: full again, no more than the burst
    assert.deepEqual(
      Array.from({ length: 3 }, () => b.reserve(10_000)),
      [10_000, 10_000, 10_500],
    );
  });

  it('takes back a slot still to come, and not one already due', function () {
    const b = new SlotBucket(1, 1);
    assert.equal(b.reserve(0), 0);
    const second = b.reserve(0);
    assert.equal(second, 1000);
    b.cancel(second, 0);
    assert.equal(b.reserve(0), 1000, 'the slot given back is the next one handed out');
    b.cancel(0, 0); // already due: used, nothing to give back
    assert.equal(b.reserve(0), 2000);
  });

  it('refills nothing when the clock goes back', function () {
    const b = new SlotBucket(1, 1);
    assert.equal(b.reserve(3_600_000), 3_600_000);
    assert.equal(b.reserve(0), 1000, 'an hour back: one slot after now, not an hour of slots');
    assert.equal(b.reserve(2000), 2000, 'and it refills from there');
  });
});

describe('counter-only status writes under --counter-writes-per-second', function () {
  it('writes the first forwards at once and the rest at their slots; other changes never wait', async function () {
    const t = reconcilerHarness({ pods: [pod], statusIntervalMs: 5000, counterWritesPerSecond: 1 });
    const keys = ['a', 'b', 'c'];
    for (const k of keys) {
      t.apply(k);
      await t.rec.reconcile(`ns/${k}`);
    }
    assert.equal(t.writes.length, 3, 'each new forward wrote its outcome, budget or not');

    t.advance(10_000);
    for (const k of keys) t.relay.statsByKey.set(`ns/${k}`, stats(1));
    const waits = [];
    for (const k of keys) waits.push((await t.rec.reconcile(`ns/${k}`)).requeueAfterMs);
    assert.equal(t.writes.length, 4, 'one counter write now: the burst of a 1/s budget');
    assert.deepEqual(waits, [undefined, 1000, 2000], 'the others come back at their own slots');

    t.advance(500);
    assert.equal((await t.rec.reconcile('ns/b')).requeueAfterMs, 500, 'an early pass keeps its slot');
    assert.equal(t.writes.length, 4);

    t.advance(500);
    await t.rec.reconcile('ns/b');
    assert.equal(t.writes.length, 5, 'b at its slot');
    assert.equal(t.writes.at(-1)?.connections?.total, 1);

    t.pods.splice(0, 1); // the pod goes away: a phase change for c, whose slot is a second away
    await t.rec.reconcile('ns/c');
    assert.equal(t.writes.length, 6, 'written at once');
    assert.equal(t.writes.at(-1)?.phase, 'Degraded');
    t.advance(1000);
    assert.equal((await t.rec.reconcile('ns/c')).requeueAfterMs, undefined, 'nothing left to write');
    assert.equal(t.writes.length, 6);
  });

  it('comes back for counters behind changes, and for an expiry among them', async function () {
    const t = reconcilerHarness({ pods: [pod], statusIntervalMs: 5000, counterWritesPerSecond: 0 });
    t.apply('a');
    t.apply('b', { ttl: '1h' });
    await t.rec.reconcile('ns/a');
    await t.rec.reconcile('ns/b');
    t.advance(1000);
    t.relay.statsByKey.set('ns/a', stats(1));
    t.relay.statsByKey.set('ns/b', stats(1));
    assert.deepEqual(await t.rec.reconcile('ns/a'), { requeueAfterMs: 4000, requeuePriority: 'low' });
    assert.deepEqual(
      await t.rec.reconcile('ns/b'),
      { requeueAfterMs: 4000 },
      'normal: the expiry must not wait',
    );
  });

  it('comes back for the bytes of open connections behind changes, and for a port retry among them', async function () {
    const t = reconcilerHarness({ pods: [pod], statusIntervalMs: 5000, counterWritesPerSecond: 0 });
    t.relay.taken.add(21000);
    t.apply('open');
    t.apply('taken', { ports: [{ port: 8080, localPort: 21000 }] });
    t.relay.statsByKey.set('ns/open', { ...stats(0), active: 1 });
    await t.rec.reconcile('ns/open'); // its outcome written
    assert.deepEqual(await t.rec.reconcile('ns/open'), { requeueAfterMs: 5000, requeuePriority: 'low' });
    const r = await t.rec.reconcile('ns/taken');
    assert.equal(t.writes.at(-1)?.phase, 'Failed');
    assert.deepEqual(r, { requeueAfterMs: 5000 }, 'normal: the port retry must not wait behind a restore');
  });

  it("gives back a waiting forward's slot when it is deleted, and when a write for something else carries its counters", async function () {
    const t = reconcilerHarness({ pods: [pod], statusIntervalMs: 5000, counterWritesPerSecond: 1 });
    const keys = ['a', 'b', 'c', 'd'];
    for (const k of keys) {
      t.apply(k);
      await t.rec.reconcile(`ns/${k}`);
    }
    t.advance(10_000);
    for (const k of keys) t.relay.statsByKey.set(`ns/${k}`, stats(1));
    const waits = [];
    for (const k of ['a', 'b', 'c']) waits.push((await t.rec.reconcile(`ns/${k}`)).requeueAfterMs);
    assert.deepEqual(waits, [undefined, 1000, 2000]);

    t.pfs.delete('ns/b'); // deleted while it waits for its slot at +1 s
    await t.rec.reconcile('ns/b');
    t.pfs.set('ns/c', {
      ...t.pfs.get('ns/c')!,
      spec: { ...t.pfs.get('ns/c')!.spec, ports: [{ port: 9090 }] },
    });
    const writes = t.writes.length;
    await t.rec.reconcile('ns/c'); // an edit: written at once, counters included; its slot at +2 s given back
    assert.equal(t.writes.length, writes + 1);
    assert.equal(
      (await t.rec.reconcile('ns/d')).requeueAfterMs,
      1000,
      'd gets the first slot given back, not the one after c',
    );
  });

  it('with no budget (0), writes every due forward at once', async function () {
    const t = reconcilerHarness({ pods: [pod], statusIntervalMs: 5000, counterWritesPerSecond: 0 });
    for (const k of ['a', 'b', 'c']) {
      t.apply(k);
      await t.rec.reconcile(`ns/${k}`);
    }
    t.advance(10_000);
    for (const k of ['a', 'b', 'c']) {
      t.relay.statsByKey.set(`ns/${k}`, stats(1));
      assert.equal((await t.rec.reconcile(`ns/${k}`)).requeueAfterMs, undefined);
    }
    assert.equal(t.writes.length, 6);
  });
});
