// The Expired Event is not lost when kube-apiserver is down at the moment of expiry (issue 11, point
// 5): the listener closes on time all the same, and the Event and the status are written once the API
// server is back (the Event sink retries a must-deliver create with backoff).
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { componentRunning, startComponent, stopComponent } from '../../tools/testenv/components';
import { connectRefused, EchoServer } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

describe('operator: expiry while kube-apiserver is down', function () {
  this.timeout(240_000);
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-expiry-down');
    echo = await cluster.createEchoPod(ns);
    op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns] });
  });

  after(async function () {
    if (!componentRunning('kube-apiserver')) await startComponent('kube-apiserver');
    await op?.stop();
    // kwok's watches come back after the API server with a backoff of their own: leave the node
    // forwarding new pods' ports to the next test.
    await cluster.waitNodeForwards();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it('closes the listener at expiry and delivers the Expired Event once the API server is back', async function () {
    await applyPortForward(cluster, ns, 'brief', {
      target: { pod: 'echo' },
      ports: [{ port: 8080 }],
      ttl: '15s',
    });
    const live = await waitForStatus(
      cluster,
      ns,
      'brief',
      'Ready with an expiryTime',
      (p) => p.status?.phase === 'Ready' && !!p.status.expiryTime,
      20_000,
    );
    const port = live.status!.endpoints![0].localPort;
    const expiry = Date.parse(live.status!.expiryTime!);

    await stopComponent('kube-apiserver');
    const downAt = Date.now();
    assert.ok(downAt < expiry - 2000, 'the API server went down before the expiry');
    // The listener closes at expiry, though nothing can be written.
    await poll('the listener to close at expiry', expiry - Date.now() + 10_000, () => connectRefused(port));
    const closedAt = Date.now();
    assert.ok(closedAt >= expiry, 'not before the expiry');
    await new Promise((r) => setTimeout(r, 3000)); // a few Event retries fail meanwhile
    await startComponent('kube-apiserver');
    const upAt = Date.now();

    const expired = await waitForStatus(
      cluster,
      ns,
      'brief',
      'Expired',
      (p) => p.status?.phase === 'Expired',
      60_000,
    );
    assert.equal(expired.status?.phase, 'Expired');
    let eventAt = 0;
    await poll('the Expired Event', 120_000, async () => {
      const events = (await cluster.core.listNamespacedEvent({ namespace: ns })).items;
      eventAt = Date.now();
      return events.some((e) => e.reason === 'Expired' && e.involvedObject.name === 'brief');
    });
    const lines = op.logs().split('\n');
    const phaseLine = lines.find((l) => l.includes('"message":"phase Expired') && l.includes(`${ns}/brief`));
    assert.ok(phaseLine, 'the operator logged the phase change');
    const loggedAt = Date.parse((JSON.parse(phaseLine) as { timestamp: string }).timestamp);
    assert.ok(loggedAt < upAt, 'the expiry was acted on while the API server was down');
    console.log(
      `      (API server down ${((upAt - downAt) / 1000).toFixed(1)} s; listener closed ${((closedAt - expiry) / 1000).toFixed(1)} s after the expiry; ` +
        `the Expired Event seen ${((eventAt - upAt) / 1000).toFixed(1)} s after the API server was back)`,
    );
  });
});
