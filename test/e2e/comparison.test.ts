// The evidence behind the README's comparison with `kubectl port-forward`: the pinned kubectl and the
// operator, side by side on the same control plane and the same failures. (What the operator does on
// its own, following pods, ttl, restarts, is proven in pod-target, follow and targets.test.ts.)
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { connectAndRead, tryConnect } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';

describe('kubectl port-forward and the operator, side by side', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let ns: string;
  let op: OperatorProcess;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('compare');
    // A pod whose forward fails on the node side, as when socat is missing there.
    await cluster.createPod(ns, 'no-socat', [
      { port: 5432, command: ['socat-not-installed', '-', 'TCP4:127.0.0.1:5432'] },
    ]);
    op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns] });
  });

  after(async function () {
    await op?.stop();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it('kubectl port-forward: one connection failing on the node ends the whole session', async function () {
    const pf = await cluster.portForward(['-n', ns, 'pod/no-socat', ':5432']);
    try {
      await connectAndRead(pf.localPort, Buffer.from('x'));
      const code = await Promise.race([
        pf.exited,
        new Promise((r) => setTimeout(() => r('running'), 15_000)),
      ]);
      assert.equal(code, 1, 'kubectl exits with 1');
      assert.match(pf.stderr(), /error: lost connection to pod/);
      assert.equal(await tryConnect(pf.localPort), 'ECONNREFUSED', 'later clients are refused');
    } finally {
      await pf.stop();
    }
  });

  it('operator: a connection failing on the node ends that connection only; the forward keeps listening', async function () {
    await applyPortForward(cluster, ns, 'db', { target: { pod: 'no-socat' }, ports: [{ port: 5432 }] });
    const ready = await waitForStatus(cluster, ns, 'db', 'Ready', (p) => p.status?.phase === 'Ready');
    const port = ready.status!.endpoints![0].localPort;
    for (let i = 0; i < 2; i++) await connectAndRead(port, Buffer.from('x'));
    const after = await waitForStatus(
      cluster,
      ns,
      'db',
      'two failed connections',
      (p) => p.status?.connections?.failed === 2,
    );
    assert.equal(after.status?.phase, 'Ready');
    assert.match(after.status?.lastError?.message ?? '', /socat-not-installed/);
    assert.equal(await tryConnect(port), 'accepted', 'later clients are still accepted');
  });

  it('kubectl port-forward: refuses to start while the pod is not running', async function () {
    // No nodeName and no scheduler in the test control plane: the pod stays Pending.
    await cluster.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'pending' },
        spec: {
          containers: [{ name: 'app', image: 'registry.invalid/app', ports: [{ containerPort: 8080 }] }],
        },
      },
    });
    const res = cluster.kubectl(['port-forward', '-n', ns, 'pod/pending', ':8080']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /unable to forward port because pod is not running\. Current status=Pending/);
  });

  it('operator: a forward to a pod that is not running yet waits (Degraded) and listens', async function () {
    await applyPortForward(cluster, ns, 'pending', { target: { pod: 'pending' }, ports: [{ port: 8080 }] });
    const pf = await waitForStatus(cluster, ns, 'pending', 'Degraded', (p) => p.status?.phase === 'Degraded');
    assert.equal(pf.status?.conditions?.find((c) => c.type === 'Ready')?.reason, 'PodNotReady');
    assert.equal(await tryConnect(pf.status.endpoints![0].localPort), 'accepted', 'the listener is bound');
  });
});
