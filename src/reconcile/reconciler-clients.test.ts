// The reconciler and who may connect: the addresses it sends the relay with ensure, re-sent when the
// pods change, and refused clients counted into status.
import type { V1Pod } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import * as winston from 'winston';
import { PortForward, PortForwardStatus } from '../api/v1alpha1';
import { PodAddressIndex } from './pod-addresses';
import type { ListenerState, RelayEngine, SessionSpec } from '../relay';
import type { ClientDirectory } from './clients';
import { PortAllocator } from './ports';
import { Reconciler } from './reconciler';
import { objectsOf } from '../targets/testing/objects';

function pod(name: string, ip: string): V1Pod {
  return {
    metadata: { name, namespace: 'ns', uid: `uid-${name}` },
    spec: { containers: [{ name: 'c' }] },
    status: { phase: 'Running', podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

function setup() {
  const pods = [pod('target', '10.0.0.1'), pod('client', '10.0.0.2')];
  const index = new PodAddressIndex();
  let version = 0;
  const reindex = (): void => {
    for (const p of pods) index.update('ns', p.metadata!.name!, p);
    version++;
  };
  reindex();
  const clients: ClientDirectory = {
    namespaceLabels: (n) => (n === 'ns' ? {} : undefined),
    namespaceNames: () => ['ns'],
    pods: (ns) => (ns === 'ns' ? pods : []),
    podAt: (a) => index.podAt(a),
    version: () => version,
  };
  const specs: SessionSpec[] = [];
  const relay: RelayEngine = {
    ensure: (_key, spec) => {
      specs.push(spec);
      return Promise.resolve(
        spec.listeners.map((l): ListenerState => ({
          id: l.id,
          state: 'bound',
          address: l.address,
          localPort: l.localPort,
        })),
      );
    },
    stop: () => Promise.resolve(),
    stats: () => undefined,
    keys: () => [],
    onEvent: () => undefined,
    stopAccepting: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  let pf: PortForward | undefined;
  const writes: PortForwardStatus[] = [];
  const rec = new Reconciler({
    getPortForward: () => pf,
    caches: objectsOf({ Pod: pods }),
    clients,
    relay,
    allocator: new PortAllocator({ min: 20000, max: 20009 }),
    writeStatus: (_ns, _name, status) => {
      writes.push(status);
      if (pf) pf = { ...pf, status };
      return Promise.resolve(true);
    },
    events: { record: () => undefined },
    config: {
      listenAddress: '0.0.0.0',
      allowedListenAddresses: ['127.0.0.1'],
      holdMs: 0,
      advertiseAddress: '127.0.0.1',
      statusIntervalMs: 0,
      counterWritesPerSecond: 0,
    },
    logger: winston.createLogger({ silent: true }),
  });
  const apply = (spec: Partial<PortForward['spec']> = {}): void => {
    pf = {
      apiVersion: 'portforward.dev/v1alpha1',
      kind: 'PortForward',
      metadata: { name: 'a', namespace: 'ns', generation: 1 },
      spec: { target: { pod: 'target' }, ports: [{ port: 8080 }], ...spec },
      status: pf?.status,
    };
  };
  return { rec, specs, writes, pods, reindex, apply, current: () => pf! };
}

describe('Reconciler: who may connect', function () {
  it('sends the addresses of its namespace’s pods with ensure on a wildcard listener, again when pods change', async function () {
    const t = setup();
    t.apply();
    await t.rec.reconcile('ns/a');
    assert.deepEqual(t.specs.at(-1)?.allowedClientAddresses, ['10.0.0.1', '10.0.0.2']);
    t.pods.push(pod('late', '10.0.0.3'));
    t.reindex();
    await t.rec.reconcile('ns/a');
    assert.deepEqual(t.specs.at(-1)?.allowedClientAddresses, ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('sends no address list for a loopback-only listener, nor for allowedSourceRanges alone', async function () {
    const t = setup();
    t.apply({ listenAddress: '127.0.0.1' });
    await t.rec.reconcile('ns/a');
    assert.equal(t.specs.at(-1)?.allowedClientAddresses, undefined);
    t.apply({ allowedSourceRanges: ['10.0.0.0/8'] });
    await t.rec.reconcile('ns/a');
    assert.equal(t.specs.at(-1)?.allowedClientAddresses, undefined);
    assert.deepEqual(t.specs.at(-1)?.allowedSourceRanges, ['10.0.0.0/8']);
  });

  it('counts refused clients into status.refusedClients by reason', async function () {
    const t = setup();
    t.apply();
    await t.rec.reconcile('ns/a');
    assert.equal(t.writes.at(-1)?.refusedClients, undefined, 'nothing before a refusal');
    assert.deepEqual(t.rec.clientRefused(t.current(), '10.9.9.9', 'clients'), { reason: 'notAPod' });
    await t.rec.reconcile('ns/a');
    assert.equal(t.writes.at(-1)?.refusedClients?.notAPod, 1);
    assert.equal(t.writes.at(-1)?.refusedClients?.last?.address, '10.9.9.9');
    assert.equal(t.rec.holds('ns/a'), true);
  });
});
