// Status is kstatus-compatible: sigs.k8s.io/cli-utils' kstatus rules for a custom resource (as Flux
// and `kubectl wait`-style tools apply them) give the expected result for every phase the operator
// writes. The rules, written down here from kstatus' status.Compute (cli-utils v0.37.2): a status whose
// observedGeneration lags metadata.generation is InProgress; a Reconciling=True condition is
// InProgress; a Stalled=True condition is Failed; then, for a kind kstatus has no rules of its own for,
// Ready=True is Current and Ready=False or Unknown is InProgress; without any of these, Current.
// test/integration/kstatus.test.ts runs the real library on real PortForwards; ADR 11 has the decision.
import type { V1Pod } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { PortForward, PortForwardStatus } from '../api/v1alpha1';
import { Outcome, Plan, plan } from './plan';
import { resolveTarget, TargetObjects } from '../targets/resolve';
import { objectsOf } from '../targets/testing/objects';
import { bindOutcome, buildStatus } from './status';

type KStatus = 'InProgress' | 'Failed' | 'Current';

function kstatus(generation: number, status: PortForwardStatus): KStatus {
  if (status.observedGeneration !== undefined && status.observedGeneration !== generation)
    return 'InProgress';
  const cond = (t: string): boolean => !!status.conditions?.some((c) => c.type === t && c.status === 'True');
  if (cond('Reconciling')) return 'InProgress';
  if (cond('Stalled')) return 'Failed';
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  if (ready) return ready.status === 'True' ? 'Current' : 'InProgress';
  return 'Current';
}

const pod: V1Pod = {
  metadata: { name: 'p', namespace: 'ns', uid: 'u' },
  spec: { containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80 }] }] },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
};
const caches = (pods: V1Pod[]): TargetObjects => objectsOf({ Pod: pods });
const cfg = { listenAddress: '127.0.0.1', allowedListenAddresses: [], holdMs: 1000 };
const now = new Date('2026-11-30T10:00:00Z');

function statusFor(
  spec: Partial<PortForward['spec']>,
  pods: V1Pod[],
  outcome?: (p: Plan) => Outcome,
): PortForwardStatus {
  const pf: PortForward = {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { name: 'x', namespace: 'ns', generation: 2, creationTimestamp: '2026-11-30T09:59:00Z' },
    spec: { target: { pod: 'p' }, ports: [{ port: 80 }], ...spec },
  };
  const resolution = resolveTarget(pf, caches(pods));
  const p = plan(pf, resolution, cfg, now);
  const states = p.listeners.map((l) => ({
    id: l.id,
    state: 'bound' as const,
    address: l.address,
    localPort: 20000,
  }));
  return buildStatus({
    pf,
    plan: p,
    outcome: outcome ? outcome(p) : p,
    listeners: states,
    pod: resolution.ok ? resolution.pods[0].pod : undefined,
    targetResolved: { ok: resolution.ok, reason: 'r', message: 'm' },
    baseline: { total: 0, failed: 0, refused: 0, bytesSent: 0, bytesReceived: 0 },
    retargets: 0,
    advertiseAddress: '127.0.0.1',
    now,
  });
}

describe('kstatus compatibility', function () {
  const cases: [string, PortForwardStatus, KStatus][] = [
    ['Ready', statusFor({}, [pod]), 'Current'],
    ['Degraded: the pod is gone and may come back', statusFor({}, []), 'InProgress'],
    [
      'Failed: a named port the pod lacks (stalled)',
      statusFor({ ports: [{ port: 'grpc' }] }, [pod]),
      'Failed',
    ],
    [
      'Failed: a listen address not allowed (stalled)',
      statusFor({ listenAddress: '10.0.0.1' }, [pod]),
      'Failed',
    ],
    [
      'Failed: a local port in use (stalled)',
      statusFor({ ports: [{ port: 80, localPort: 1234 }] }, [pod], (p) =>
        bindOutcome(
          p,
          [
            {
              id: '0/80',
              state: 'error',
              address: '127.0.0.1',
              localPort: 1234,
              code: 'EADDRINUSE',
              message: '',
            },
          ],
          () => undefined,
        ),
      ),
      'Failed',
    ],
    [
      'Failed and retried: the port range is full',
      statusFor({}, [pod], (p) =>
        bindOutcome(
          p,
          [
            {
              id: '0/80',
              state: 'error',
              address: '127.0.0.1',
              localPort: 0,
              code: 'RANGE_FULL',
              message: 'full',
            },
          ],
          () => undefined,
        ),
      ),
      'InProgress',
    ],
    ['Suspended (on purpose)', statusFor({ suspend: true }, [pod]), 'Current'],
    ['Expired (on purpose)', statusFor({ ttl: '30s' }, [pod]), 'Current'],
  ];
  for (const [what, status, want] of cases) {
    it(`reads ${what} as ${want}`, function () {
      assert.equal(status.observedGeneration, 2);
      assert.equal(kstatus(2, status), want, JSON.stringify(status.conditions));
    });
  }

  it('reads a status written for an older generation as InProgress', function () {
    assert.equal(kstatus(3, statusFor({}, [pod])), 'InProgress');
  });

  it('says Ready=True only when Ready, Ready=False while at work or failed, and no Ready when closed on purpose', function () {
    for (const [, status] of cases) {
      const ready = status.conditions?.find((c) => c.type === 'Ready');
      if (status.phase === 'Suspended' || status.phase === 'Expired')
        assert.equal(ready, undefined, status.phase);
      else assert.ok(ready && (ready.status === 'True') === (status.phase === 'Ready'), status.phase);
    }
  });
});
