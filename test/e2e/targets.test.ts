// End to end: every target kind, resolved the way kubectl port-forward resolves it, on the real control
// plane (kube-controller-manager creates the pods of Deployments and StatefulSets; kwok runs them).
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { EchoServer, startNamedEchoServer, whoAnswers } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';

describe('operator: target kinds', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let ns: string;
  let op: OperatorProcess;
  const servers: Record<string, EchoServer> = {};

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-targets');
    for (const name of ['web-a', 'web-b', 'any']) servers[name] = await startNamedEchoServer(name);
    // Two pods behind a service; container port 8080 is named "http".
    for (const name of ['web-a', 'web-b']) {
      await cluster.createPod(ns, name, [{ port: 8080, name: 'http', targetPort: servers[name].port }], {
        app: 'web',
      });
    }
    await cluster.createService(ns, 'web', { app: 'web' }, [
      { name: 'http', port: 80, targetPort: 'http' },
      { name: 'alt', port: 81, targetPort: 8080 },
    ]);
    op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns] });
  });

  after(async function () {
    await op?.stop();
    await cluster.deleteNamespacePodForwards(ns, 9000);
    for (const s of Object.values(servers)) await s.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  afterEach(function () {
    assert.ok(op.alive(), `the operator is still running; its log:\n${op.logs().slice(-3000)}`);
  });

  async function endpointOf(name: string): Promise<number> {
    const pf = await waitForStatus(cluster, ns, name, 'Ready', (p) => p.status?.phase === 'Ready', 20_000);
    return pf.status!.endpoints![0].localPort;
  }

  it('forwards to a service by port name, through a named targetPort, like kubectl port-forward svc/web', async function () {
    await applyPortForward(cluster, ns, 'svc-name', {
      target: { service: 'web' },
      ports: [{ port: 'http' }],
    });
    const port = await endpointOf('svc-name');
    assert.match(await whoAnswers(port), /^web-[ab]$/);
    const pf = await waitForStatus(
      cluster,
      ns,
      'svc-name',
      'targetPort',
      (p) => !!p.status?.endpoints?.[0]?.targetPort,
    );
    assert.equal(pf.status!.endpoints![0].targetPort, 8080);
  });

  it('forwards to a service by port number, through a numeric targetPort', async function () {
    await applyPortForward(cluster, ns, 'svc-number', { target: { service: 'web' }, ports: [{ port: 81 }] });
    assert.match(await whoAnswers(await endpointOf('svc-number')), /^web-[ab]$/);
  });

  it('fails (Stalled) on a port the service does not have', async function () {
    await applyPortForward(cluster, ns, 'svc-noport', { target: { service: 'web' }, ports: [{ port: 82 }] });
    const pf = await waitForStatus(cluster, ns, 'svc-noport', 'Failed', (p) => p.status?.phase === 'Failed');
    assert.equal(pf.status?.conditions?.find((c) => c.type === 'Stalled')?.reason, 'ServicePortNotFound');
    assert.match(pf.status?.message ?? '', /has no TCP port 82 \(it has http=80, alt=81\)/);
  });

  it('forwards to pods chosen by a label selector, with a named container port', async function () {
    await applyPortForward(cluster, ns, 'selector', {
      target: { selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] } },
      ports: [{ port: 'http' }],
    });
    assert.match(await whoAnswers(await endpointOf('selector')), /^web-[ab]$/);
  });

  it('spreads new connections over all ready pods with loadBalance: spread', async function () {
    await applyPortForward(cluster, ns, 'spread', {
      target: { service: 'web' },
      ports: [{ port: 80 }],
      loadBalance: 'spread',
    });
    const port = await endpointOf('spread');
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await whoAnswers(port));
    assert.deepEqual([...seen].sort(), ['web-a', 'web-b']);
    const pf = await waitForStatus(cluster, ns, 'spread', 'message', (p) =>
      /spreading/.test(p.status?.message ?? ''),
    );
    assert.match(pf.status!.message!, /spreading 1 port over 2 ready pods of service\/web/);
  });

  it('forwards to the pods of a Deployment (created by kube-controller-manager)', async function () {
    await cluster.forwardNamespacePods(ns, 9000, servers.any.port);
    await cluster.createWorkload(ns, 'Deployment', 'api', [{ containerPort: 9000 }], 2);
    await applyPortForward(cluster, ns, 'deploy', { target: { deployment: 'api' }, ports: [{ port: 9000 }] });
    const port = await endpointOf('deploy');
    assert.equal(await whoAnswers(port), 'any');
    const pf = await waitForStatus(cluster, ns, 'deploy', 'a pod of the deployment', (p) =>
      /^api-/.test(p.status?.pod?.name ?? ''),
    );
    assert.ok(pf.status?.pod?.uid);
  });

  it('forwards to the pods of a StatefulSet, with a named container port', async function () {
    await cluster.createWorkload(ns, 'StatefulSet', 'db', [{ name: 'sql', containerPort: 9000 }]);
    await applyPortForward(cluster, ns, 'sts', { target: { statefulSet: 'db' }, ports: [{ port: 'sql' }] });
    const port = await endpointOf('sts');
    const pf = await waitForStatus(cluster, ns, 'sts', 'pod db-0', (p) => p.status?.pod?.name === 'db-0');
    assert.equal(pf.status!.endpoints![0].targetPort, 9000);
    assert.equal(await whoAnswers(port), 'any');
  });
});
