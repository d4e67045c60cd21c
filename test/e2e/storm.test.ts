// A failure storm costs the API server a bounded number of writes (issue 11): 600 connections to a pod
// port that fails on the node, 20 at a time, each failing with its own node-side error. Every write
// is counted from watches (each successful Event create or patch, and each status write, is one watch
// event), and the operator must not have seen one of them fail.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { connectAndRead } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

describe('operator: a storm of failing connections', function () {
  this.timeout(180_000);
  let cluster: TestCluster;
  let ns: string;
  let op: OperatorProcess;
  const aborts: (() => void)[] = [];

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-storm');
    await cluster.createPod(ns, 'broken', [
      { port: 5432, command: ['socat-not-installed', '-', 'TCP4:127.0.0.1:5432'] },
    ]);
    op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      extraArgs: ['--status-interval=5s', '--log-level=info'],
    });
  });

  after(async function () {
    for (const a of aborts) a();
    const code = await op?.stop();
    if (ns) await cluster.deleteNamespace(ns);
    assert.equal(code, 0);
  });

  it('costs at most 60 Event and status writes for 600 failures, none of them failing', async function () {
    await applyPortForward(cluster, ns, 'storm', { target: { pod: 'broken' }, ports: [{ port: 5432 }] });
    const pf = await waitForStatus(cluster, ns, 'storm', 'Ready', (p) => p.status?.phase === 'Ready', 15_000);
    const port = pf.status!.endpoints![0].localPort;

    const writes = { eventCreates: 0, eventPatches: 0, status: 0 };
    const watch = new k8s.Watch(cluster.kc);
    const eventsWatch = await watch.watch(
      `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
      { resourceVersion: '0' },
      (type: string, obj: k8s.EventsV1Event) => {
        if (obj.regarding?.name !== 'storm' || obj.reason !== 'TunnelFailed') return;
        if (type === 'ADDED') writes.eventCreates++;
        if (type === 'MODIFIED') writes.eventPatches++;
      },
      () => undefined,
    );
    aborts.push(() => eventsWatch.abort());
    const pfWatch = await watch.watch(
      `/apis/portforward.dev/v1alpha1/namespaces/${ns}/portforwards`,
      { fieldSelector: 'metadata.name=storm', resourceVersion: pf.metadata.resourceVersion },
      (type: string) => {
        if (type === 'MODIFIED') writes.status++;
      },
      () => undefined,
    );
    aborts.push(() => pfWatch.abort());

    const t0 = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < 600) {
          next++;
          await connectAndRead(port, Buffer.from('x')); // a failing connection
        }
      }),
    );
    const stormMs = Date.now() - t0;
    // The last counts reach status within a status interval; the last series patch within its gap.
    const final = await waitForStatus(
      cluster,
      ns,
      'storm',
      'all 600 failures counted',
      (p) => (p.status?.connections?.failed ?? 0) >= 600,
      30_000,
    );
    // The Event's series carries the count: its patch comes within the sink's first interval (15 s).
    let counted = 0;
    await poll('the TunnelFailed Event to count the storm', 40_000, async () => {
      const list = await cluster.kc.makeApiClient(k8s.EventsV1Api).listNamespacedEvent({ namespace: ns });
      counted = list.items
        .filter((e) => e.regarding?.name === 'storm' && e.reason === 'TunnelFailed')
        .reduce((n, e) => n + (e.series?.count ?? 1), 0);
      return counted >= 600;
    });
    const total = writes.eventCreates + writes.eventPatches + writes.status;
    console.log(
      `      (600 failures in ${(stormMs / 1000).toFixed(1)} s: ${writes.eventCreates} Event creates, ` +
        `${writes.eventPatches} Event patches, ${writes.status} status writes; ${total} writes in all; ` +
        `the Events count ${counted} occurrences)`,
    );
    assert.ok(total <= 60, `${total} writes for 600 failures`);
    assert.ok(writes.eventCreates >= 1, 'the failures are reported as an Event');
    assert.match(final.status?.lastError?.message ?? '', /socat-not-installed/);
    assert.doesNotMatch(op.logs(), /could not record an Event|reconcile failed/);
  });
});
