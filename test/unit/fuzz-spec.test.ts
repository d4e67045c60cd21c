// Fuzz of the controller's pure side with random PortForward specs that pass the schema, edited again
// and again while pods, services and workloads come and go: the reconciler (resolve, plan, listener
// ids, the port allocator, status) never throws, and every status it writes has a phase, a Ready
// condition with a reason and a message, the latest observedGeneration, and local ports that no two
// listeners share.
import type { V1Deployment, V1Pod, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import * as winston from 'winston';
import { PortForward, PortForwardStatus } from '../../src/api/v1alpha1';
import { PortAllocator } from '../../src/reconcile/ports';
import { Reconciler } from '../../src/reconcile/reconciler';
import { fuzzCases, fuzzReport, fuzzSeed, Random } from '../support/fuzz';
import { randomSpec, World } from '../support/spec-gen';
import { FakeRelay } from '../../src/reconcile/testing/fake-relay';
import { objectsOf } from '../../src/targets/testing/objects';

const PHASES = new Set(['Pending', 'Ready', 'Degraded', 'Suspended', 'Expired', 'Failed']);
const RANGE = { min: 20000, max: 20063 };

/** A relay that binds what it is asked to, except ports "another program" holds. */
function pod(rnd: Random, name: string, labels: Record<string, string>, portNames: string[]): V1Pod {
  const ready = rnd.bool(0.7);
  return {
    metadata: {
      name,
      namespace: 'ns',
      uid: `uid-${name}-${rnd.int(0, 1e6)}`,
      labels,
      ...(rnd.bool(0.05) ? { deletionTimestamp: new Date() } : {}),
    },
    spec: {
      containers: [
        {
          name: 'c',
          ports: portNames.filter(() => rnd.bool(0.6)).map((n, i) => ({ name: n, containerPort: 8000 + i })),
        },
      ],
    },
    status: {
      phase: rnd.pick(['Running', 'Running', 'Pending', 'Failed']),
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    },
  };
}

describe('fuzz: random PortForward specs through the reconciler', function () {
  this.timeout(300_000);

  it('gives every spec a phase and a reason, and never throws, through edits and target changes', async function () {
    const seed = fuzzSeed();
    const rnd = new Random(seed);
    const cases = fuzzCases(1_000);
    const silent = winston.createLogger({ silent: true });
    const reasons = new Map<string, number>();
    let reconciles = 0;
    for (let i = 0; i < cases; i++) {
      const portNames = ['http', 'grpc', 'metrics'];
      const labels: Record<string, string>[] = [{ app: 'web' }, { app: 'db', tier: 'back' }];
      const world: World = {
        pods: ['web-0', 'web-1', 'db-0'],
        services: ['web', 'db'],
        deployments: ['web'],
        statefulSets: ['db'],
        labels,
        portNames,
        portNumbers: [80, 8080, 5432],
        localPorts: { min: RANGE.min - 8, max: RANGE.max + 8 },
      };
      const pods = world.pods.map((n, k) => pod(rnd, n, labels[k % 2], portNames));
      const services: V1Service[] = world.services.map((n, k) => ({
        metadata: { name: n, namespace: 'ns' },
        spec: {
          selector: rnd.bool(0.9) ? labels[k] : undefined,
          ports: [
            {
              name: 'http',
              port: 80,
              targetPort: rnd.pick([8080, 'http', 'grpc'] as (number | string)[]) as never,
            },
            { port: 5432 },
          ],
        },
      }));
      const workload = (n: string, k: number): V1Deployment & V1StatefulSet => ({
        metadata: { name: n, namespace: 'ns' },
        spec: { selector: { matchLabels: labels[k] }, template: {}, serviceName: n },
      });
      const pfs = new Map<string, PortForward>();
      const writes: PortForwardStatus[] = [];
      const relay = new FakeRelay(new Set([RANGE.min + rnd.int(0, 3), RANGE.max + rnd.int(1, 8)]));
      let now = new Date('2026-12-01T00:00:00Z');
      const rec = new Reconciler({
        getPortForward: (ns, name) => pfs.get(`${ns}/${name}`),
        caches: objectsOf({
          Pod: pods,
          Service: services,
          Deployment: world.deployments.map((n) => workload(n, 0)),
          StatefulSet: world.statefulSets.map((n) => workload(n, 1)),
        }),
        relay,
        allocator: new PortAllocator(RANGE),
        writeStatus: (ns, name, status) => {
          const pf = pfs.get(`${ns}/${name}`);
          if (pf) pfs.set(`${ns}/${name}`, { ...pf, status });
          writes.push(status);
          return Promise.resolve(true);
        },
        events: { record: () => undefined },
        config: {
          listenAddress: '127.0.0.1',
          allowedListenAddresses: ['0.0.0.0', '::1'],
          holdMs: 30_000,
          advertiseAddress: '127.0.0.1',
          statusIntervalMs: 1000,
          counterWritesPerSecond: 0,
        },
        logger: silent,
        now: () => now,
      });
      const names = ['a', 'b', 'c'].slice(0, rnd.int(1, 3));
      for (const name of names) {
        pfs.set(`ns/${name}`, {
          apiVersion: 'portforward.dev/v1alpha1',
          kind: 'PortForward',
          metadata: {
            name,
            namespace: 'ns',
            generation: 1,
            uid: `pf-${name}`,
            creationTimestamp: now.toISOString(),
          },
          spec: randomSpec(rnd, world),
        });
      }
      for (let step = 0; step < 6; step++) {
        for (const name of names) {
          const key = `ns/${name}`;
          const pf = pfs.get(key);
          if (pf && step > 0 && rnd.bool(0.4)) {
            const edited = rnd.bool(0.5)
              ? randomSpec(rnd, world)
              : { ...pf.spec, ports: [...pf.spec.ports].reverse() };
            pfs.set(key, {
              ...pf,
              metadata: { ...pf.metadata, generation: (pf.metadata.generation ?? 1) + 1 },
              spec: edited,
            });
          }
          if (rnd.bool(0.05)) pfs.delete(key);
          const before = writes.length;
          const what = `case ${i} step ${step} ${key} (seed ${seed}): ${JSON.stringify(pfs.get(key)?.spec)}`;
          try {
            await rec.reconcile(key);
          } catch (err) {
            assert.fail(`${what}: reconcile threw ${String(err)}`);
          }
          reconciles++;
          const cur = pfs.get(key);
          if (!cur) continue;
          const st = cur.status;
          assert.ok(writes.length > before || st, `${what}: no status`);
          assert.ok(st?.phase && PHASES.has(st.phase), `${what}: phase ${st?.phase}`);
          const ready = st.conditions?.find((c) => c.type === 'Ready');
          // Closed on purpose (Suspended, Expired): no Ready condition, so kstatus reads it reconciled (ADR 11).
          const closed = st.phase === 'Suspended' || st.phase === 'Expired';
          if (closed) assert.equal(ready, undefined, `${what}: Ready condition on a ${st.phase} forward`);
          else assert.ok(ready?.reason && ready.message, `${what}: Ready condition ${JSON.stringify(ready)}`);
          assert.equal(st.observedGeneration, cur.metadata.generation, what);
          const reason = ready?.reason ?? st.phase;
          reasons.set(`${st.phase}/${reason}`, (reasons.get(`${st.phase}/${reason}`) ?? 0) + 1);
          for (const e of st.endpoints ?? []) {
            const asked: boolean = cur.spec.ports.some((p) => p.localPort === e.localPort);
            assert.ok(
              asked || (e.localPort >= RANGE.min && e.localPort <= RANGE.max),
              `${what}: port ${e.localPort}`,
            );
          }
        }
        // Between steps: time passes (ttls run out), pods flip, one may go away.
        now = new Date(now.getTime() + rnd.int(0, 2_000_000));
        if (rnd.bool(0.3))
          pods.splice(
            rnd.int(0, pods.length - 1),
            1,
            pod(rnd, rnd.pick(world.pods), rnd.pick(labels), portNames),
          );
        const bound = relay.boundPorts();
        assert.equal(
          new Set(bound).size,
          bound.length,
          `case ${i} (seed ${seed}): two listeners share a local port: ${JSON.stringify(
            [...relay.specs].map(([k, v]) => [k, v.listeners, pfs.get(k)?.spec, pfs.get(k)?.status?.phase]),
          )}`,
        );
      }
    }
    const top = [...reasons.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
    fuzzReport(
      'PortForward specs through the reconciler',
      cases,
      seed,
      `${reconciles} reconciles; ${top.join(', ')}`,
    );
  });
});
