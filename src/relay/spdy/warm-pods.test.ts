import * as assert from 'node:assert/strict';
import { WarmPolicy, WarmState } from './warm-pods';

function pod(key: string): WarmState {
  return { key, retained: false, cold: false, lastUsed: 0, connections: 0 };
}

describe('WarmPolicy (which pods keep an idle pre-dialed session)', () => {
  let now = 0;
  let cooled: string[] = [];
  const policy = (idleMs: number, maxSessions: number, perPod = 1): WarmPolicy<WarmState> => {
    now = 1_000;
    cooled = [];
    return new WarmPolicy<WarmState>(
      { idleMs, maxSessions, perPod },
      (p) => cooled.push(p.key),
      () => now,
    );
  };

  it('cools a pod without a connection for idleMs, and not a moment before', () => {
    const w = policy(60_000, 0);
    const a = pod('a');
    w.retain(a);
    now += 59_999;
    w.coolIdle();
    assert.deepEqual(cooled, []);
    now += 1;
    w.coolIdle();
    assert.deepEqual(cooled, ['a']);
    assert.equal(a.cold, true);
  });

  it('never cools a pod for idleness while it has a connection open, and counts from its end', () => {
    const w = policy(1_000, 0);
    const a = pod('a');
    w.retain(a);
    w.used(a, 1);
    now += 10_000;
    w.coolIdle();
    assert.deepEqual(cooled, []);
    w.used(a, -1);
    now += 999;
    w.coolIdle();
    assert.deepEqual(cooled, []);
    now += 1;
    w.coolIdle();
    assert.deepEqual(cooled, ['a']);
  });

  it('warms a cold pod again on its next connection, not when an older one ends', () => {
    const w = policy(1_000, 0);
    const a = pod('a');
    w.retain(a);
    w.used(a, 1);
    w.used(a, -1);
    now += 1_000;
    w.coolIdle();
    assert.equal(a.cold, true);
    w.used(a, 1);
    assert.equal(a.cold, false);
    assert.equal(w.size(), 1);
  });

  it('keeps at most maxSessions idle sessions: the least recently used pods go cold first', () => {
    const w = policy(0, 4, 2);
    const [a, b, c] = ['a', 'b', 'c'].map(pod);
    w.retain(a);
    now++;
    w.retain(b);
    w.enforceCap();
    assert.deepEqual(cooled, []);
    now++;
    w.retain(c);
    w.enforceCap();
    assert.deepEqual(cooled, ['a'], '3 pods x 2 sessions > 4: the oldest goes cold');
    w.used(a, 1); // a connection to the cold pod: warm again; b is now the least recently used
    assert.deepEqual(cooled, ['a', 'b']);
    assert.equal(w.size(), 2);
  });

  it('forgets a pod that is no longer retained', () => {
    const w = policy(1_000, 1);
    const [a, b] = ['a', 'b'].map(pod);
    w.retain(a);
    w.release(a);
    w.retain(b);
    w.enforceCap();
    now += 1_000;
    w.coolIdle();
    assert.deepEqual(cooled, ['b']);
    assert.equal(a.retained, false);
  });
});
