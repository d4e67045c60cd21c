// Reliability: pods replaced under steady traffic. A forward to a Service whose Deployment is rolled
// again and again, and a forward to a pod that is gone for a while (connections are held, then
// served). A ready pod is there throughout the first, so not one connection may fail; in the second,
// connections wait for the pod instead of failing.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { NODE_NAME } from '../../tools/testenv/controlplane';
import { EchoServer, startEchoServer } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, getPortForward, waitForStatus } from '../support/portforward';
import { describeReport, SteadyTraffic } from '../support/traffic';
import { poll } from '../support/wait';
import { assertAlive, figure, size } from './support';

const PER_SECOND = 8;

describe('reliability: pods replaced under steady traffic', function () {
  this.timeout(size(900_000, 240_000));
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('rel-rollout');
    echo = await startEchoServer();
    await cluster.forwardNamespacePods(ns, 8080, echo.port);
    op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      extraArgs: ['--hold-timeout=30s', '--log-level=info'],
    });
  });

  after(async function () {
    await op?.stop();
    await cluster.deleteNamespacePodForwards(ns, 8080);
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  afterEach(function () {
    assertAlive(op);
  });

  it(`loses no connection while the pods behind a Service are rolled ${size(20, 3)} times`, async function () {
    const rounds = size(20, 3);
    const apps = cluster.kc.makeApiClient(k8s.AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 2,
          minReadySeconds: 1,
          selector: { matchLabels: { app: 'web' } },
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: {
              nodeName: NODE_NAME,
              containers: [{ name: 'c', image: 'registry.invalid/web', ports: [{ containerPort: 8080 }] }],
            },
          },
        },
      },
    });
    await cluster.core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'web' },
        spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    });
    await applyPortForward(cluster, ns, 'web', { target: { service: 'web' }, ports: [{ port: 80 }] });
    const pf = await waitForStatus(cluster, ns, 'web', 'Ready', (p) => p.status?.phase === 'Ready', 60_000);
    const port = pf.status!.endpoints![0].localPort;

    const traffic = new SteadyTraffic({ port, perSecond: PER_SECOND }).start();
    const seen = new Set<string>();
    const t0 = Date.now();
    for (let round = 1; round <= rounds; round++) {
      await apps.patchNamespacedDeployment(
        {
          name: 'web',
          namespace: ns,
          body: { spec: { template: { metadata: { annotations: { round: String(round) } } } } },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      await poll(`rollout ${round} to finish`, 120_000, async () => {
        const d = await apps.readNamespacedDeployment({ name: 'web', namespace: ns });
        const pods = (await cluster.core.listNamespacedPod({ namespace: ns, labelSelector: 'app=web' }))
          .items;
        return (
          (d.status?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) &&
          d.status?.updatedReplicas === 2 &&
          d.status?.availableReplicas === 2 &&
          pods.length === 2
        );
      });
      // The forward moved on with the pods: status names a pod of this round.
      await poll(`the forward to follow rollout ${round}`, 30_000, async () => {
        const pods = (await cluster.core.listNamespacedPod({ namespace: ns, labelSelector: 'app=web' }))
          .items;
        const current = (await getPortForward(cluster, ns, 'web')).status?.pod?.name;
        return !!current && pods.some((p) => p.metadata?.name === current);
      });
      seen.add((await getPortForward(cluster, ns, 'web')).status!.pod!.name);
    }
    const r = await traffic.stop();
    const final = await getPortForward(cluster, ns, 'web');
    figure(
      `${describeReport(`${rounds} rolling replacements in ${((Date.now() - t0) / 1000).toFixed(0)} s`, r)}; ` +
        `${seen.size} pods served in turn, status.retargets ${final.status?.retargets}`,
    );
    assert.ok(r.attempted >= rounds * PER_SECOND, `${r.attempted} connections attempted`);
    assert.equal(r.corrupted, 0);
    assert.deepEqual(r.reasons, {}, 'no connection failed: a ready pod was there throughout');
    assert.ok((final.status?.retargets ?? 0) >= rounds, 'the forward moved with every rollout');
    assert.equal(final.status?.endpoints?.[0].localPort, port, 'on the same local port');
  });

  it(`holds connections while no pod is ready and serves them when one is (${size(5, 2)} windows)`, async function () {
    const rounds = size(5, 2);
    await cluster.createPod(ns, 'solo', [{ port: 8080, targetPort: echo.port }]);
    await applyPortForward(cluster, ns, 'solo', { target: { pod: 'solo' }, ports: [{ port: 8080 }] });
    const pf = await waitForStatus(cluster, ns, 'solo', 'Ready', (p) => p.status?.phase === 'Ready', 30_000);
    const port = pf.status!.endpoints![0].localPort;

    const traffic = new SteadyTraffic({ port, perSecond: PER_SECOND }).start();
    const windows: { from: number; to: number }[] = [];
    try {
      for (let round = 1; round <= rounds; round++) {
        const from = Date.now();
        await cluster.core.deleteNamespacedPod({ name: 'solo', namespace: ns, gracePeriodSeconds: 0 });
        await poll('the pod to be gone', 30_000, () =>
          cluster.core.readNamespacedPod({ name: 'solo', namespace: ns }).then(
            () => false,
            () => true,
          ),
        );
        await waitForStatus(cluster, ns, 'solo', 'Degraded', (p) => p.status?.phase === 'Degraded', 15_000);
        await new Promise((r) => setTimeout(r, 2000)); // the fault: two seconds without any pod
        await cluster.createPod(ns, 'solo', [{ port: 8080, targetPort: echo.port }]);
        await waitForStatus(cluster, ns, 'solo', 'Ready', (p) => p.status?.phase === 'Ready', 30_000);
        windows.push({ from, to: Date.now() });
      }
    } catch (err) {
      await traffic.stop(); // else its timers keep mocha from exiting
      throw err;
    }
    const r = await traffic.stop();
    const held = r.attempts.filter((a) => windows.some((w) => a.start >= w.from && a.start <= w.to));
    const longest = Math.max(...held.map((a) => a.end - a.start));
    figure(
      `${describeReport(`${rounds} windows without a ready pod (${windows.map((w) => `${((w.to - w.from) / 1000).toFixed(1)} s`).join(', ')})`, r)}; ` +
        `${held.length} connections began in a window and waited up to ${(longest / 1000).toFixed(1)} s`,
    );
    assert.ok(held.length >= rounds * PER_SECOND, `${held.length} connections began while no pod was ready`);
    assert.equal(r.corrupted, 0);
    assert.deepEqual(
      r.reasons,
      {},
      `every connection was held and then served; the operator's warnings:\n${warnings(op.logs())}`,
    );
  });
});

/** The operator's lines at warn and error, and its refusals: what a failed connection left in its log. */
function warnings(log: string): string {
  return log
    .split('\n')
    .filter((l) => /"level":"(warn|error)"|refused/.test(l))
    .slice(-60)
    .join('\n');
}
