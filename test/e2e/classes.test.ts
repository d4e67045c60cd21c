// End to end: two operators on one control plane, one started with --class alice, each serving only
// the PortForwards of its class (spec.className): listeners, status and Events; a PortForward moved
// from one class to the other is handed over within 5 s, the time the issue allows.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { freePort, httpGet } from '../../tools/testenv/procs';
import { connectRefused, echoRoundTrip, EchoServer, randomPayload, sha256 } from '../support/net';
import { freshPortRange, OperatorProcess, startOperator } from '../support/operator';
import type { PortForward, PortForwardSpec } from '../../src/api/v1alpha1';
import { applyPortForward, getPortForward, patchSpec, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

const HANDOVER_MS = 5_000;

describe('operator classes: --class and spec.className', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let plainOp: OperatorProcess;
  let aliceOp: OperatorProcess;
  const metricsPort = new Map<OperatorProcess, number>();

  const inRange = (op: OperatorProcess, port: number): boolean =>
    port >= op.portRange.min && port <= op.portRange.max;

  /** The PortForwards of `ns` whose listeners the operator's relay holds, from its per-session metrics. */
  async function sessions(op: OperatorProcess): Promise<string[]> {
    const body = (await httpGet(`http://127.0.0.1:${metricsPort.get(op)}/metrics`)).body;
    const names = new Set<string>();
    for (const m of body.matchAll(/^portforward_bytes_total\{namespace="([^"]+)",name="([^"]+)"/gm))
      if (m[1] === ns) names.add(m[2]);
    return [...names].sort();
  }

  /** The field managers that wrote the PortForward's status, with when each last did. */
  async function statusWriters(name: string): Promise<Map<string, number>> {
    const pf = (await getPortForward(cluster, ns, name)) as PortForward & {
      metadata: { managedFields?: { manager: string; subresource?: string; time?: string }[] };
    };
    return new Map(
      (pf.metadata.managedFields ?? [])
        .filter((f) => f.subresource === 'status')
        .map((f) => [f.manager, Date.parse(f.time ?? '')]),
    );
  }

  async function statusManagers(name: string): Promise<string[]> {
    return [...(await statusWriters(name)).keys()];
  }

  async function eventsAbout(name: string): Promise<k8s.EventsV1Event[]> {
    const events = await cluster.kc.makeApiClient(k8s.EventsV1Api).listNamespacedEvent({ namespace: ns });
    return events.items.filter((e) => e.regarding?.name === name);
  }

  async function echoes(port: number): Promise<boolean> {
    const payload = randomPayload(16 * 1024);
    return sha256(await echoRoundTrip(port, payload, 5_000)) === sha256(payload);
  }

  const spec = (extra: Partial<PortForwardSpec> = {}): PortForwardSpec => ({
    target: { pod: 'echo' },
    ports: [{ port: 8080 }],
    ...extra,
  });

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-class');
    echo = await cluster.createEchoPod(ns);
    const start = async (extra: string[]): Promise<OperatorProcess> => {
      const port = await freePort();
      const op = await startOperator({
        kubeconfig: cluster.state.kubeconfig,
        namespaces: [ns],
        portRange: freshPortRange(),
        extraArgs: [`--metrics-bind-address=127.0.0.1:${port}`, ...extra],
      });
      metricsPort.set(op, port);
      return op;
    };
    plainOp = await start([]);
    aliceOp = await start(['--class=alice']);
    // A forward of a class nobody serves, applied first: both operators see it before the others.
    await applyPortForward(cluster, ns, 'bobs', spec({ className: 'bob' }));
    await applyPortForward(cluster, ns, 'plain', spec());
    await applyPortForward(cluster, ns, 'alices', spec({ className: 'alice' }));
    await applyPortForward(cluster, ns, 'plain-missing', { ...spec(), target: { pod: 'nope' } });
    await applyPortForward(cluster, ns, 'alice-missing', {
      ...spec({ className: 'alice' }),
      target: { pod: 'nope' },
    });
  });

  after(async function () {
    const codes = [await plainOp?.stop(), await aliceOp?.stop()];
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
    assert.deepEqual(codes, [0, 0], 'both operators exit 0 on SIGTERM');
  });

  afterEach(function () {
    for (const op of [plainOp, aliceOp])
      assert.ok(op.alive(), `an operator died; its log:\n${op.logs().slice(-4000)}`);
  });

  it('each operator binds, and writes the status of, only the PortForwards of its class', async function () {
    const plain = await waitForStatus(
      cluster,
      ns,
      'plain',
      'Ready',
      (p) => p.status?.phase === 'Ready',
      20_000,
    );
    const alices = await waitForStatus(
      cluster,
      ns,
      'alices',
      'Ready',
      (p) => p.status?.phase === 'Ready',
      20_000,
    );
    const plainMissing = await waitForStatus(
      cluster,
      ns,
      'plain-missing',
      'Degraded',
      (p) => p.status?.phase === 'Degraded',
    );
    const aliceMissing = await waitForStatus(
      cluster,
      ns,
      'alice-missing',
      'Degraded',
      (p) => p.status?.phase === 'Degraded',
    );
    const port = (pf: PortForward): number => pf.status!.endpoints![0].localPort;
    assert.ok(inRange(plainOp, port(plain)), 'plain is bound by the operator without --class');
    assert.ok(inRange(aliceOp, port(alices)), 'alices is bound by the operator with --class alice');
    assert.equal(await echoes(port(plain)), true);
    assert.equal(await echoes(port(alices)), true);
    // Listeners: each operator's relay holds sessions for the forwards of its class only.
    assert.deepEqual(await sessions(plainOp), ['plain', 'plain-missing']);
    assert.deepEqual(await sessions(aliceOp), ['alice-missing', 'alices']);
    assert.ok(inRange(plainOp, port(plainMissing)) && inRange(aliceOp, port(aliceMissing)));
    // Status: written by each class's field manager only; a class nobody serves gets none.
    assert.deepEqual(await statusManagers('plain'), ['portforward-operator']);
    assert.deepEqual(await statusManagers('alices'), ['portforward-operator-alice']);
    const bobs = await getPortForward(cluster, ns, 'bobs');
    assert.equal(bobs.status, undefined, `no status for class bob: ${JSON.stringify(bobs.status)}`);
  });

  it('each operator records Events about the PortForwards of its class only', async function () {
    let plainEvents: k8s.EventsV1Event[] = [];
    let aliceEvents: k8s.EventsV1Event[] = [];
    await poll('a Warning Event about each forward without a pod', 15_000, async () => {
      plainEvents = await eventsAbout('plain-missing');
      aliceEvents = await eventsAbout('alice-missing');
      return plainEvents.length > 0 && aliceEvents.length > 0;
    });
    for (const e of plainEvents)
      assert.doesNotMatch(e.reportingInstance ?? '', /\/alice$/, 'plain-missing: not alice');
    for (const e of aliceEvents)
      assert.match(e.reportingInstance ?? '', /\/alice$/, 'alice-missing: alice only');
    assert.deepEqual(await eventsAbout('bobs'), [], 'no Event about a class nobody serves');
  });

  it('hands a PortForward over within 5 s when its class changes, and back', async function () {
    const ready = await waitForStatus(cluster, ns, 'plain', 'Ready', (p) => p.status?.phase === 'Ready');
    let port = ready.status!.endpoints![0].localPort;
    for (const [className, from, to] of [
      ['alice', plainOp, aliceOp],
      [null, aliceOp, plainOp],
    ] as const) {
      const generation = (await getPortForward(cluster, ns, 'plain')).metadata.generation! + 1;
      const t0 = Date.now();
      // A JSON merge patch: null removes spec.className.
      await patchSpec(cluster, ns, 'plain', { className } as Partial<PortForwardSpec>);
      let next = 0;
      let last: PortForward | undefined;
      await poll(`the handover to ${className ?? 'no class'}`, HANDOVER_MS, async () => {
        const pf = (last = await getPortForward(cluster, ns, 'plain'));
        const ep = pf.status?.endpoints?.[0];
        if (pf.status?.observedGeneration !== generation || pf.status.phase !== 'Ready' || !ep) return false;
        if (!inRange(to, ep.localPort)) return false;
        next = ep.localPort;
        return (await connectRefused(port)) && (await echoes(next));
      }).catch((err: Error) => {
        throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status)}`, { cause: err });
      });
      console.log(`      handed over to ${className ?? 'no class'} in ${Date.now() - t0} ms`);
      assert.ok(inRange(from, port), 'the old listener was the old operator’s');
      // managedFields keep seconds: the new operator wrote status in the second of the move or later.
      const wrote = (await statusWriters('plain')).get(
        className ? 'portforward-operator-alice' : 'portforward-operator',
      );
      assert.ok(
        wrote !== undefined && wrote >= Math.floor(t0 / 1000) * 1000,
        'the new operator wrote status',
      );
      port = next;
    }
    for (const op of [plainOp, aliceOp])
      assert.match(op.logs(), /PortForward moved to another class: closing its listeners/);
    assert.deepEqual(await sessions(aliceOp), ['alice-missing', 'alices'], 'alice let plain go');
    assert.deepEqual(await sessions(plainOp), ['plain', 'plain-missing']);
  });
});
