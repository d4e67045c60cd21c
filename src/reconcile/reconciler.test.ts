// The reconciler against fakes of its effects (relay, status writer, events): what it writes, when,
// and what it asks the work queue to do next.
import type { V1Pod } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { PortForwardStatus } from '../api/v1alpha1';
import { RelayClosedError, RelaySpecError, SessionStats } from '../relay';
import { TerminalError } from './result';
import { ReconcilerHarness, reconcilerHarness } from './testing/harness';

function pod(name: string): V1Pod {
  return {
    metadata: { name, namespace: 'ns', uid: `uid-${name}` },
    spec: { containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

function setup(opts: { pods?: V1Pod[]; statusIntervalMs?: number } = {}): ReconcilerHarness {
  return reconcilerHarness({ pods: opts.pods ?? [pod('p')], statusIntervalMs: opts.statusIntervalMs });
}

const stats = (total: number, bytes: number): SessionStats => ({
  active: 0,
  total,
  failed: 0,
  refused: 0,
  bytesSent: bytes,
  bytesReceived: bytes,
});

describe('Reconciler', function () {
  it("writes a new forward's outcome as its first status: Ready with the endpoint, one write", async function () {
    const t = setup();
    t.apply('a');
    await t.rec.reconcile('ns/a');
    assert.deepEqual(
      t.writes.map((w) => [w.phase, w.conditions?.find((c) => c.type === 'Ready')?.status]),
      [['Ready', 'True']],
    );
    assert.equal(t.writes[0].endpoints?.[0].localPort, 20000);
    assert.deepEqual(
      t.relay.specs.get('ns/a')?.targets.map((x) => x.name),
      ['p'],
    );
  });

  it('coalesces counter-only changes to one write per status interval, and writes phase changes at once', async function () {
    const t = setup({ statusIntervalMs: 5000 });
    t.apply('a');
    await t.rec.reconcile('ns/a');
    const base = t.writes.length;

    t.relay.statsByKey.set('ns/a', stats(1, 10));
    t.advance(1000);
    const r1 = await t.rec.reconcile('ns/a');
    assert.equal(t.writes.length, base, 'no write 1 s after the last one');
    assert.equal(r1.requeueAfterMs, 4000, 'comes back when the interval is over');
    assert.equal(r1.requeuePriority, 'low', 'behind changes: it only refreshes counters');

    t.relay.statsByKey.set('ns/a', stats(2, 20));
    t.advance(4000);
    await t.rec.reconcile('ns/a');
    assert.equal(t.writes.length, base + 1, 'one write once the interval passed');
    assert.equal(t.writes.at(-1)?.connections?.total, 2);

    t.advance(100);
    t.pods.splice(0, 1); // the pod goes away: a phase change
    await t.rec.reconcile('ns/a');
    assert.equal(t.writes.at(-1)?.phase, 'Degraded', 'written at once');
  });

  it('writes a lone failure at once and holds a storm to one status write a second', async function () {
    const t = setup({ statusIntervalMs: 5000 });
    t.apply('a');
    await t.rec.reconcile('ns/a');
    const base = t.writes.length;
    const failing = (n: number): SessionStats => ({
      ...stats(n, 0),
      failed: n,
      lastError: {
        message: `failure ${n}`,
        time: new Date(Date.UTC(2026, 10, 30, 10, 0, n)),
        kind: 'nodeError',
      },
    });

    t.advance(100); // right after the Ready write: a first failure still goes out at once
    t.relay.statsByKey.set('ns/a', failing(1));
    await t.rec.reconcile('ns/a');
    assert.equal(t.writes.length, base + 1);
    assert.equal(t.writes.at(-1)?.lastError?.message, 'failure 1');

    for (let n = 2; n <= 50; n++) {
      t.advance(10); // 49 failures within half a second
      t.relay.statsByKey.set('ns/a', failing(n));
      await t.rec.reconcile('ns/a');
    }
    assert.equal(t.writes.length, base + 1, '49 more failures within a second: no write');
    t.advance(1000);
    await t.rec.reconcile('ns/a');
    assert.equal(t.writes.length, base + 2, 'then one write with the latest');
    assert.equal(t.writes.at(-1)?.lastError?.message, 'failure 50');
    assert.equal(t.writes.at(-1)?.connections?.failed, 50);
  });

  it('throws when the status write fails, so the work queue retries', async function () {
    const t = setup();
    t.apply('a');
    t.failWrites(true);
    await assert.rejects(t.rec.reconcile('ns/a'), /409 conflict/);
    t.failWrites(false);
    await t.rec.reconcile('ns/a');
    assert.equal(t.writes.at(-1)?.phase, 'Ready');
  });

  it('turns the relay refusing a spec, or closed at shut-down, into a TerminalError (not retried)', async function () {
    for (const err of [
      new RelaySpecError('listener id "a" appears twice'),
      new RelayClosedError('the relay is closed'),
    ]) {
      const t = setup();
      t.apply('a');
      t.relay.ensure = () => Promise.reject(err);
      await assert.rejects(t.rec.reconcile('ns/a'), (got: unknown) => {
        assert.ok(got instanceof TerminalError, `${err.name}: a TerminalError`);
        assert.equal(got.cause, err);
        assert.equal(got.message, err.message);
        return true;
      });
      // The pass never got to its status write: the new forward says Pending (Ready=False), so that
      // kstatus does not read it as Current.
      assert.deepEqual(
        t.writes.map((w) => [w.phase, w.conditions?.map((c) => `${c.type}=${c.status}`)]),
        [['Pending', ['Ready=False', 'Reconciling=True']]],
      );
      await assert.rejects(t.rec.reconcile('ns/a'));
      assert.equal(t.writes.length, 1, 'only a forward without conditions gets the Pending write');
    }
  });

  it('never writes Pending over a status it wrote that the cache does not show yet', async function () {
    const t = setup();
    t.apply('a');
    await t.rec.reconcile('ns/a');
    assert.equal(t.writes.at(-1)?.phase, 'Ready');
    t.apply('a'); // the watch cache has not caught up with that write: no conditions yet
    t.relay.ensure = () => Promise.reject(new Error('the relay worker died'));
    await assert.rejects(t.rec.reconcile('ns/a'), /worker died/);
    assert.deepEqual(
      t.writes.map((w) => w.phase),
      ['Ready'],
      'no Pending over the Ready just written',
    );
  });

  it('gives ports recorded in status back after a restart, whatever order keys run in', async function () {
    const t = setup();
    const recorded = (port: number): PortForwardStatus => ({
      phase: 'Ready',
      conditions: [
        { type: 'Ready', status: 'True', reason: 'Forwarding', message: '', lastTransitionTime: '' },
      ],
      endpoints: [{ port: 8080, address: '127.0.0.1', localPort: port, url: '' }],
    });
    t.apply('first', {}, recorded(20005));
    t.apply('second', {}, recorded(20000));
    t.rec.restoreRecordedPorts([...t.pfs.values()]);
    await t.rec.reconcile('ns/first');
    await t.rec.reconcile('ns/second');
    assert.equal(t.relay.specs.get('ns/first')?.listeners[0].localPort, 20005);
    assert.equal(t.relay.specs.get('ns/second')?.listeners[0].localPort, 20000);
  });

  it('stops the session and frees its ports when the PortForward is gone', async function () {
    const t = setup();
    t.apply('a');
    await t.rec.reconcile('ns/a');
    t.pfs.delete('ns/a');
    await t.rec.reconcile('ns/a');
    assert.equal(t.relay.specs.has('ns/a'), false);
    t.apply('b');
    await t.rec.reconcile('ns/b');
    assert.equal(
      t.relay.specs.get('ns/b')?.listeners[0].localPort,
      20001,
      'the allocator moves on, 20000 is free again',
    );
  });

  it('counts a retarget when the preferred pod changes', async function () {
    const t = setup({ pods: [pod('p')] });
    t.apply('a', { target: { selector: { matchLabels: {} } } });
    await t.rec.reconcile('ns/a');
    t.pods.splice(0, 1, pod('q'));
    await t.rec.reconcile('ns/a');
    assert.equal(t.writes.at(-1)?.retargets, 1);
    assert.equal(t.writes.at(-1)?.pod?.name, 'q');
  });

  describe('edits of unnamed port entries (issue 11, point 4)', function () {
    /** The listeners the relay was last asked for, as [id, localPort, remotePort]. */
    const listeners = (t: ReturnType<typeof setup>, key = 'ns/a'): [string, number, number][] =>
      (t.relay.specs.get(key)?.listeners ?? []).map((l) => [l.id, l.localPort, l.remotePort]);

    it('keeps the listener and its allocated port when port: 8080 becomes the name of that container port', async function () {
      const t = setup();
      t.apply('a', { ports: [{ port: 8080 }] });
      await t.rec.reconcile('ns/a');
      const [[id, port]] = listeners(t);
      t.apply('a', { ports: [{ port: 'http' }] }, t.pfs.get('ns/a')?.status);
      await t.rec.reconcile('ns/a');
      assert.deepEqual(listeners(t), [[id, port, 8080]], 'same id (the relay keeps it bound), same port');
    });

    it('keeps the listener of an entry with a localPort when its port is renamed', async function () {
      const t = setup();
      t.apply('a', { ports: [{ port: 8080, localPort: 18080 }] });
      await t.rec.reconcile('ns/a');
      const [[id]] = listeners(t);
      t.apply('a', { ports: [{ port: 'http', localPort: 18080 }] }, t.pfs.get('ns/a')?.status);
      await t.rec.reconcile('ns/a');
      assert.deepEqual(listeners(t), [[id, 18080, 8080]]);
    });

    it('keeps the listeners and ports of existing entries when an entry is prepended', async function () {
      const t = setup();
      t.apply('a', { ports: [{ port: 8080 }, { port: 9090, localPort: 19090 }] });
      await t.rec.reconcile('ns/a');
      const before = listeners(t);
      t.apply(
        'a',
        { ports: [{ port: 7070 }, { port: 8080 }, { port: 9090, localPort: 19090 }] },
        t.pfs.get('ns/a')?.status,
      );
      await t.rec.reconcile('ns/a');
      const after = listeners(t);
      assert.deepEqual(after.slice(1), before, 'the two old entries: same ids, same ports');
      assert.ok(!before.some(([id, port]) => id === after[0][0] || port === after[0][1]), 'a new one');
      assert.equal(
        t.writes.at(-1)?.endpoints?.find((e) => e.port === 8080)?.localPort,
        before[0][1],
        'status shows the allocated port where it was',
      );
    });

    it('gives a prepended forward its allocated ports back after an operator restart (from status)', async function () {
      const t = setup();
      t.apply('a', { ports: [{ port: 8080 }] });
      await t.rec.reconcile('ns/a');
      const [[, port]] = listeners(t);
      const status = t.pfs.get('ns/a')?.status;
      // A new process: no memory, the allocator has moved on (another forward took the next ports).
      const u = setup();
      u.apply('other', { ports: [{ port: 8080 }] });
      u.apply('a', { ports: [{ port: 7070 }, { port: 8080 }] }, status);
      u.rec.restoreRecordedPorts([...u.pfs.values()]);
      await u.rec.reconcile('ns/other');
      await u.rec.reconcile('ns/a');
      assert.equal(listeners(u)[1][1], port, 'entry 1 (was entry 0) keeps its recorded port');
      assert.notEqual(listeners(u)[0][1], port);
    });

    it('gives up an allocated port another program holds for another one, and keeps that', async function () {
      const t = setup();
      t.relay.taken.add(20000);
      t.apply('a', { ports: [{ port: 8080 }] });
      const r = await t.rec.reconcile('ns/a');
      assert.deepEqual(
        listeners(t).map(([, port]) => port),
        [20000],
      );
      assert.equal(r.requeueAfterMs, 0, 'tried again at once');
      await t.rec.reconcile('ns/a');
      const [[id, port]] = listeners(t);
      assert.equal(port, 20001, 'another port, not the busy one again');
      await t.rec.reconcile('ns/a');
      assert.deepEqual(listeners(t)[0].slice(0, 2), [id, port], 'and then it stays');
      assert.equal(t.writes.at(-1)?.phase, 'Ready');
    });

    it('allocates from the range for an entry whose localPort was removed (found by the spec fuzzer)', async function () {
      const t = setup();
      t.apply('a', { ports: [{ port: 8080, name: 'web', localPort: 30000 }] });
      await t.rec.reconcile('ns/a');
      assert.equal(listeners(t)[0][1], 30000);
      t.apply('a', { ports: [{ port: 8080, name: 'web' }] }, t.pfs.get('ns/a')?.status);
      await t.rec.reconcile('ns/a');
      assert.equal(listeners(t)[0][1], 20000, 'a port of --port-range, not the one it once asked for');
      // Nor after a restart, from the endpoint recorded in status.
      const u = setup();
      u.apply(
        'a',
        { ports: [{ port: 8080, name: 'web' }] },
        {
          endpoints: [{ name: 'web', port: 8080, address: '127.0.0.1', localPort: 30000, url: '' }],
        },
      );
      u.rec.restoreRecordedPorts([...u.pfs.values()]);
      await u.rec.reconcile('ns/a');
      assert.equal(listeners(u)[0][1], 20000);
    });

    it('keeps an allocated port when a name is added to the entry', async function () {
      const t = setup();
      t.apply('a', { ports: [{ port: 8080 }] });
      await t.rec.reconcile('ns/a');
      const [[, port]] = listeners(t);
      t.apply('a', { ports: [{ port: 8080, name: 'web' }] }, t.pfs.get('ns/a')?.status);
      await t.rec.reconcile('ns/a');
      assert.equal(listeners(t)[0][1], port);
    });
  });
});
