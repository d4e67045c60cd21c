import * as assert from 'node:assert/strict';
import type { PortForward, RefusedClients } from '../api/v1alpha1';
import { EMPTY_DIRECTORY } from './clients';
import { ClientRefusals } from './refusals';

function pf(refusedClients?: RefusedClients): PortForward {
  return {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { namespace: 'home', name: 'web' },
    spec: { target: { pod: 'web' }, ports: [{ port: 80 }] },
    ...(refusedClients ? { status: { refusedClients } } : {}),
  };
}

describe('refused clients, by reason', function () {
  const now = new Date('2026-12-01T10:00:00Z');
  const dir = { ...EMPTY_DIRECTORY, podAt: (a: string) => (a === '10.0.2.1' ? 'other/o1' : undefined) };

  it('tells a pod that is not admitted from an address that is no pod, and a range-only refusal', function () {
    const r = new ClientRefusals(dir, () => now);
    assert.deepEqual(r.record(pf(), '10.0.2.1', 'clients'), { reason: 'podNotAllowed', pod: 'other/o1' });
    assert.deepEqual(r.record(pf(), '10.9.9.9', 'clients'), { reason: 'notAPod' });
    assert.deepEqual(r.record(pf(), '10.0.2.1', 'sourceRanges'), {
      reason: 'outsideSourceRanges',
      pod: 'other/o1',
    });
    assert.deepEqual(r.status(pf()), {
      notAPod: 1,
      podNotAllowed: 1,
      outsideSourceRanges: 1,
      last: { address: '10.0.2.1', reason: 'outsideSourceRanges', pod: 'other/o1', time: now.toISOString() },
    });
  });

  it('continues from the counts in status, says nothing before a refusal, and forgets', function () {
    const r = new ClientRefusals(dir, () => now);
    assert.equal(r.status(pf()), undefined);
    const recorded = { notAPod: 4, podNotAllowed: 0, outsideSourceRanges: 2 };
    assert.deepEqual(r.status(pf(recorded)), recorded, 'status as it is until a refusal');
    r.record(pf(recorded), '10.0.2.1', 'clients');
    assert.equal(r.status(pf(recorded))?.podNotAllowed, 1);
    assert.equal(r.status(pf(recorded))?.notAPod, 4);
    r.forget('home/web');
    assert.equal(r.status(pf()), undefined);
  });
});
