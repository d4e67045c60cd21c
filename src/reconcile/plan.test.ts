import type { V1Pod } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { PortForward, PortForwardSpec } from '../api/v1alpha1';
import { plan } from './plan';
import { resolveTarget, TargetObjects } from '../targets/resolve';
import { objectsOf } from '../targets/testing/objects';
import { bindOutcome, buildStatus, countersChanged, significantChange } from './status';

const cfg = { listenAddress: '127.0.0.1', allowedListenAddresses: ['0.0.0.0'], holdMs: 30_000 };
const now = new Date('2026-11-30T10:00:00Z');

function pf(spec: Partial<PortForwardSpec>, status?: PortForward['status']): PortForward {
  return {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: {
      name: 'web',
      namespace: 'demo',
      generation: 3,
      creationTimestamp: '2026-11-30T09:00:00Z',
      uid: 'u1',
    },
    spec: { target: { pod: 'kuard' }, ports: [{ port: 8080, name: 'http' }], ...spec },
    status,
  };
}

function pod(
  opts: {
    ready?: boolean;
    phase?: string;
    deleting?: boolean;
    ports?: { name?: string; containerPort: number }[];
  } = {},
): V1Pod {
  return {
    metadata: {
      name: 'kuard',
      namespace: 'demo',
      uid: 'p1',
      deletionTimestamp: opts.deleting ? now : undefined,
    },
    spec: { containers: [{ name: 'app', ports: opts.ports ?? [{ name: 'http', containerPort: 8080 }] }] },
    status: {
      phase: opts.phase ?? 'Running',
      conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }],
    },
  };
}

/** Caches holding just `p` (or nothing). */
const lookup = (p?: V1Pod): TargetObjects => objectsOf({ Pod: p ? [p] : [] });

describe('resolveTarget', function () {
  it('maps numbered and named ports of a ready pod', function () {
    const r = resolveTarget(pf({ ports: [{ port: 9000 }, { port: 'http' }] }), lookup(pod()));
    assert.ok(r.ok);
    assert.deepEqual(
      r.pods[0].ports.map((p) => p.targetPort),
      [9000, 8080],
    );
  });

  it('reports a missing pod as not stalled (it may come back)', function () {
    const r = resolveTarget(pf({}), lookup(undefined));
    assert.ok(!r.ok);
    assert.equal(r.reason, 'PodNotFound');
    assert.equal(r.stalled, false);
  });

  it('reports a pod that is not ready, or terminating', function () {
    for (const p of [pod({ ready: false }), pod({ phase: 'Pending' }), pod({ deleting: true })]) {
      const r = resolveTarget(pf({}), lookup(p));
      assert.ok(!r.ok && r.reason === 'PodNotReady', JSON.stringify(p.status));
    }
    const r = resolveTarget(pf({}), lookup(pod({ deleting: true })));
    assert.ok(!r.ok && /terminating/.test(r.message));
  });

  it('names the ports a pod has when a named port is missing', function () {
    const r = resolveTarget(pf({ ports: [{ port: 'grpc' }] }), lookup(pod()));
    assert.ok(!r.ok);
    assert.equal(r.reason, 'NamedPortNotFound');
    assert.equal(r.stalled, true);
    assert.match(r.message, /no TCP container port named "grpc" \(it has http\)/);
  });
});

describe('plan', function () {
  it('plans one listener per port, targeting the resolved pod', function () {
    const p = plan(
      pf({ ports: [{ port: 8080, name: 'http', localPort: 18080 }, { port: 9000 }] }),
      resolveTarget(
        pf({ ports: [{ port: 8080, name: 'http', localPort: 18080 }, { port: 9000 }] }),
        lookup(pod()),
      ),
      cfg,
      now,
    );
    assert.equal(p.phase, 'Ready');
    assert.deepEqual(p.targets, [
      { namespace: 'demo', name: 'kuard', uid: 'p1', ports: { http: 8080, '1/9000': 9000 } },
    ]);
    assert.equal(p.holdMs, 30_000, 'a connection whose pod is gone at its dial waits for the next');
    assert.deepEqual(
      p.listeners.map((l) => [l.id, l.address, l.requestedPort, l.remotePort]),
      [
        ['http', '127.0.0.1', 18080, 8080],
        ['1/9000', '127.0.0.1', undefined, 9000],
      ],
    );
    assert.match(p.message, /forwarding 2 ports to pod demo\/kuard/);
  });

  it('keeps listeners but no target while the pod is missing (Degraded)', function () {
    const spec = pf({});
    const p = plan(spec, resolveTarget(spec, lookup(undefined)), cfg, now);
    assert.equal(p.phase, 'Degraded');
    assert.equal(p.reason, 'PodNotFound');
    assert.equal(p.listeners.length, 1);
    assert.deepEqual(p.targets, []);
    assert.equal(p.holdMs, 30_000, 'new connections wait for the pod');
  });

  it('tells the relay why there is no target: the missing named port, not readiness', function () {
    const spec = pf({ ports: [{ port: 'grpc' }] });
    const p = plan(spec, resolveTarget(spec, lookup(pod())), cfg, now);
    assert.equal(p.reason, 'NamedPortNotFound');
    assert.equal(p.listeners.length, 1, 'the port stays bound');
    assert.equal(p.holdMs, 0, 'refused at once');
    assert.match(p.noTargetReason ?? '', /no TCP container port named "grpc" \(it has http\)/);
    const ready = pf({});
    assert.equal(plan(ready, resolveTarget(ready, lookup(pod())), cfg, now).noTargetReason, undefined);
  });

  it('reuses the local port recorded in status for a port without localPort', function () {
    const spec = pf(
      {},
      { endpoints: [{ name: 'http', port: 8080, address: '127.0.0.1', localPort: 20042, url: '' }] },
    );
    const p = plan(spec, resolveTarget(spec, lookup(pod())), cfg, now);
    assert.equal(p.listeners[0].recordedPort, 20042);
    const moved = pf({ listenAddress: '0.0.0.0' }, spec.status);
    assert.equal(
      plan(moved, resolveTarget(moved, lookup(pod())), cfg, now).listeners[0].recordedPort,
      undefined,
    );
  });

  it('keeps the recorded port of a wildcard listener whose endpoint another replica advertised', function () {
    // In a cluster the listener is on 0.0.0.0 and status advertises the leader's pod IP; the standby
    // that takes over has another pod IP, and must still bind the port clients were given.
    const wild = { ...cfg, listenAddress: '0.0.0.0', allowedListenAddresses: [] };
    const taken = pf({}, { endpoints: [{ port: 8080, address: '198.18.0.22', localPort: 20002, url: '' }] });
    assert.equal(
      plan(taken, resolveTarget(taken, lookup(pod())), wild, now).listeners[0].recordedPort,
      20002,
    );
  });

  it('fails (stalled) on a listen address the operator does not allow', function () {
    const spec = pf({ listenAddress: '10.1.2.3' });
    const p = plan(spec, resolveTarget(spec, lookup(pod())), cfg, now);
    assert.equal(p.phase, 'Failed');
    assert.equal(p.reason, 'ListenAddressNotAllowed');
    assert.equal(p.stalled, true);
    assert.equal(p.listeners.length, 0);
    assert.match(p.message, /allowed: 127\.0\.0\.1, 0\.0\.0\.0/);
  });

  it('suspends: no listeners, phase Suspended', function () {
    const spec = pf({ suspend: true });
    const p = plan(spec, resolveTarget(spec, lookup(pod())), cfg, now);
    assert.equal(p.phase, 'Suspended');
    assert.equal(p.listeners.length, 0);
  });

  it('expires after ttl from startTime and requeues until then', function () {
    const live = pf({ ttl: '1h30m' }, { startTime: '2026-11-30T09:00:00Z' });
    const p = plan(live, resolveTarget(live, lookup(pod())), cfg, now);
    assert.equal(p.phase, 'Ready');
    assert.equal(p.expiryTime, '2026-11-30T10:30:00.000Z');
    assert.equal(p.requeueAfterMs, 30 * 60_000);
    const old = pf({ ttl: '30m' }, { startTime: '2026-11-30T09:00:00Z' });
    const e = plan(old, resolveTarget(old, lookup(pod())), cfg, now);
    assert.equal(e.phase, 'Expired');
    assert.equal(e.listeners.length, 0);
  });
});

describe('status', function () {
  const spec = pf({});
  const p = plan(spec, resolveTarget(spec, lookup(pod())), cfg, now);
  const input = {
    pf: spec,
    plan: p,
    outcome: p,
    listeners: [{ id: 'http', state: 'bound' as const, address: '127.0.0.1', localPort: 20001 }],
    pod: pod(),
    targetResolved: { ok: true, reason: 'PodResolved', message: 'pod demo/kuard' },
    baseline: { total: 10, failed: 1, refused: 0, bytesSent: 100, bytesReceived: 200 },
    stats: { active: 2, total: 3, failed: 1, refused: 0, bytesSent: 5, bytesReceived: 6 },
    retargets: 0,
    advertiseAddress: '127.0.0.1',
    now,
  };

  it('reports Ready with endpoints, counters on top of the baseline, and kstatus conditions', function () {
    const s = buildStatus(input);
    assert.equal(s.phase, 'Ready');
    assert.equal(s.observedGeneration, 3);
    assert.deepEqual(s.endpoints, [
      {
        name: 'http',
        port: 8080,
        targetPort: 8080,
        address: '127.0.0.1',
        localPort: 20001,
        url: 'tcp://127.0.0.1:20001',
      },
    ]);
    assert.deepEqual(s.connections, { active: 2, total: 13, failed: 2, refused: 0 });
    assert.equal(s.bytesSent, 105);
    assert.equal(s.bytesReceived, 206);
    assert.deepEqual(s.pod, { name: 'kuard', uid: 'p1' });
    const types = (s.conditions ?? []).map((c) => `${c.type}=${c.status}`);
    assert.deepEqual(types, ['Ready=True', 'TargetResolved=True']);
  });

  it('adds Stalled for a bind failure that needs a spec change, naming the holder', function () {
    const outcome = bindOutcome(
      p,
      [
        {
          id: 'http',
          state: 'error',
          address: '127.0.0.1',
          localPort: 18080,
          code: 'EADDRINUSE',
          message: 'in use',
        },
      ],
      () => ({ key: 'demo/other', listenerId: 'http' }),
    );
    assert.equal(outcome.reason, 'PortInUse');
    assert.match(outcome.message, /127\.0\.0\.1:18080 is in use by PortForward demo\/other/);
    // The allocator's record for the PortForward itself: the holder is another program.
    const own = bindOutcome(
      p,
      [
        {
          id: 'http',
          state: 'error',
          address: '127.0.0.1',
          localPort: 18080,
          code: 'EADDRINUSE',
          message: 'in use',
        },
      ],
      () => ({ key: 'demo/kuard', listenerId: 'http' }),
      'demo/kuard',
    );
    assert.match(own.message, /127\.0\.0\.1:18080 is in use by another program;/);
    const s = buildStatus({ ...input, outcome, listeners: [] });
    assert.equal(s.phase, 'Failed');
    assert.ok(
      s.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True' && c.reason === 'PortInUse'),
    );
    assert.deepEqual(s.endpoints, []);
  });

  it('brackets IPv6 endpoints and advertises a wildcard listener', function () {
    const s6 = buildStatus({
      ...input,
      listeners: [{ id: 'http', state: 'bound', address: '::1', localPort: 1 }],
    });
    assert.equal(s6.endpoints?.[0].url, 'tcp://[::1]:1');
    const any = buildStatus({
      ...input,
      listeners: [{ id: 'http', state: 'bound', address: '0.0.0.0', localPort: 2 }],
      advertiseAddress: '10.0.0.7',
    });
    assert.equal(any.endpoints?.[0].url, 'tcp://10.0.0.7:2');
  });

  it('keeps lastTransitionTime while a condition keeps its status', function () {
    const first = buildStatus(input);
    const later = buildStatus({
      ...input,
      pf: { ...spec, status: first },
      now: new Date(now.getTime() + 60_000),
    });
    assert.equal(later.conditions?.[0].lastTransitionTime, first.conditions?.[0].lastTransitionTime);
  });

  it('treats counter-only changes as insignificant, and phase changes as significant', function () {
    const a = buildStatus(input);
    const b = buildStatus({ ...input, stats: { ...input.stats, total: 99, bytesSent: 999 } });
    assert.equal(significantChange(a, b), false);
    const c = buildStatus({
      ...input,
      outcome: { phase: 'Degraded', reason: 'PodNotFound', message: 'gone', stalled: false },
    });
    assert.equal(significantChange(a, c), true);
  });

  it('treats a new lastError alone as traffic (written at the status interval), not as significant', function () {
    const a = buildStatus(input);
    const b = buildStatus({
      ...input,
      stats: { ...input.stats, failed: 1, lastError: { message: 'refused', time: now, kind: 'nodeError' } },
    });
    assert.equal(significantChange(a, b), false);
    assert.equal(countersChanged(a, b), true);
  });
});

describe('significantChange', function () {
  it('does not care about the order of keys the API server returns', function () {
    const spec = pf({});
    const p = plan(spec, resolveTarget(spec, lookup(pod())), cfg, now);
    const s = buildStatus({
      pf: spec,
      plan: p,
      outcome: p,
      listeners: [{ id: 'http', state: 'bound', address: '127.0.0.1', localPort: 20001 }],
      pod: pod(),
      targetResolved: { ok: true, reason: 'PodResolved', message: 'pod demo/kuard' },
      baseline: { total: 0, failed: 0, refused: 0, bytesSent: 0, bytesReceived: 0 },
      retargets: 0,
      advertiseAddress: '127.0.0.1',
      now,
    });
    const reordered = JSON.parse(
      JSON.stringify(s, (_k, v: unknown) =>
        v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v,
      ),
    ) as typeof s;
    assert.notEqual(JSON.stringify(reordered), JSON.stringify(s));
    assert.equal(significantChange(reordered, s), false);
  });
});
