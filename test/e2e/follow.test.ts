// End to end: sessions that follow pods, hold connections while no pod is ready, keep their ports
// across an operator crash, expire, suspend, and enforce access rules.
import * as k8s from '@kubernetes/client-node';
import type { PortForward } from '../../src/api/v1alpha1';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { TestCluster } from '../../tools/testenv/cluster';
import { NODE_NAME } from '../../tools/testenv/controlplane';
import { freePort } from '../../tools/testenv/procs';
import {
  connectAndRead,
  connectRefused,
  echoRoundTrip,
  EchoServer,
  randomPayload,
  sha256,
  startEchoServer,
  startNamedEchoServer,
  whoAnswers,
} from '../support/net';
import { freshPortRange, OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, condition, patchSpec, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

describe('operator: following pods', function () {
  this.timeout(180_000);
  let cluster: TestCluster;
  let ns: string;
  let op: OperatorProcess;
  const servers: Record<string, EchoServer> = {};

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-follow');
    for (const name of ['one', 'two', 'three', 'solo']) servers[name] = await startNamedEchoServer(name);
    op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      extraArgs: ['--hold-timeout=30s'],
    });
  });

  after(async function () {
    await op?.stop();
    await cluster.deleteNamespacePodForwards(ns, 8080);
    for (const s of Object.values(servers)) await s.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  afterEach(function () {
    assert.ok(op.alive(), `the operator is still running; its log:\n${op.logs().slice(-3000)}`);
  });

  const ready = (name: string): Promise<PortForward> =>
    waitForStatus(cluster, ns, name, 'Ready', (p) => p.status?.phase === 'Ready', 20_000);

  it('moves to another ready pod when the chosen one is deleted, on the same local port (overlap)', async function () {
    await cluster.createPod(ns, 'one', [{ port: 8080, targetPort: servers.one.port }], { app: 'overlap' });
    await cluster.createPod(ns, 'two', [{ port: 8080, targetPort: servers.two.port }], { app: 'overlap' });
    await cluster.core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'overlap' },
        spec: { selector: { app: 'overlap' }, ports: [{ port: 8080 }] },
      },
    });
    await applyPortForward(cluster, ns, 'overlap', {
      target: { service: 'overlap' },
      ports: [{ port: 8080 }],
    });
    const port = (await ready('overlap')).status!.endpoints![0].localPort;
    const first = await whoAnswers(port);
    const other = first === 'one' ? 'two' : 'one';
    const open = net.connect(port, '127.0.0.1');
    open.on('error', () => undefined);

    const t0 = Date.now();
    await cluster.core.deleteNamespacedPod({ name: first, namespace: ns });
    await poll(
      `new connections to reach pod ${other}`,
      10_000,
      async () => (await whoAnswers(port)) === other,
    );
    console.log(`      (new connections reached pod ${other} ${Date.now() - t0} ms after the delete)`);
    const pf = await waitForStatus(
      cluster,
      ns,
      'overlap',
      'a retarget',
      (p) => (p.status?.retargets ?? 0) >= 1,
    );
    assert.equal(pf.status?.pod?.name, other);
    assert.equal(pf.status.endpoints![0].localPort, port);
    await poll('a Retargeted Event', 5_000, async () =>
      (await cluster.core.listNamespacedEvent({ namespace: ns })).items.some(
        (e) => e.reason === 'Retargeted' && e.involvedObject.name === 'overlap',
      ),
    );
    open.destroy();
  });

  it('holds new connections while no pod is ready, and relays them once one is (no overlap)', async function () {
    await cluster.createPod(ns, 'solo', [{ port: 8080, targetPort: servers.solo.port }]);
    await applyPortForward(cluster, ns, 'solo', { target: { pod: 'solo' }, ports: [{ port: 8080 }] });
    const port = (await ready('solo')).status!.endpoints![0].localPort;

    await cluster.core.deleteNamespacedPod({ name: 'solo', namespace: ns, gracePeriodSeconds: 0 });
    await waitForStatus(cluster, ns, 'solo', 'Degraded', (p) => p.status?.phase === 'Degraded');
    await poll('the pod to be gone', 10_000, () =>
      cluster.core.readNamespacedPod({ name: 'solo', namespace: ns }).then(
        () => false,
        () => true,
      ),
    );
    const before =
      (await waitForStatus(cluster, ns, 'solo', 'status', () => true)).status?.connections?.failed ?? 0;

    const held = whoAnswers(port, 30_000); // connects now, while there is no pod
    await new Promise((r) => setTimeout(r, 300)); // the window in which no pod exists (not a readiness wait)
    await cluster.createPod(ns, 'solo', [{ port: 8080, targetPort: servers.solo.port }]);
    assert.equal(await held, 'solo', 'the held connection reached the new pod');
    const after = await waitForStatus(cluster, ns, 'solo', 'Ready', (p) => p.status?.phase === 'Ready');
    assert.equal(after.status?.connections?.failed ?? 0, before, 'no connection failed');
  });

  it('loses no connection during a rolling replacement of a Deployment under 5 connections/s', async function () {
    const echo = await startEchoServer();
    try {
      await cluster.forwardNamespacePods(ns, 8080, echo.port);
      const apps = cluster.kc.makeApiClient(k8s.AppsV1Api);
      await apps.createNamespacedDeployment({
        namespace: ns,
        body: {
          metadata: { name: 'roll' },
          spec: {
            replicas: 2,
            // Each new pod must stay ready 2 s before the next step: a rollout of several seconds.
            minReadySeconds: 2,
            selector: { matchLabels: { app: 'roll' } },
            strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
            template: {
              metadata: { labels: { app: 'roll' } },
              spec: {
                nodeName: NODE_NAME,
                containers: [{ name: 'c', image: 'registry.invalid/roll', ports: [{ containerPort: 8080 }] }],
              },
            },
          },
        },
      });
      await applyPortForward(cluster, ns, 'roll', {
        target: { deployment: 'roll' },
        ports: [{ port: 8080 }],
      });
      const port = (await ready('roll')).status!.endpoints![0].localPort;
      const podBefore = (await waitForStatus(cluster, ns, 'roll', 'pod', (p) => !!p.status?.pod)).status!.pod!
        .uid;

      let stop = false;
      const results: boolean[] = [];
      const load = (async () => {
        while (!stop) {
          const payload = randomPayload(4096);
          results.push(
            await echoRoundTrip(port, payload, 10_000).then(
              (b) => sha256(b) === sha256(payload),
              () => false,
            ),
          );
          await new Promise((r) => setTimeout(r, 200)); // 5 connections per second
        }
      })();
      // Roll the deployment: a new template makes new pods and deletes every old one.
      await apps.patchNamespacedDeployment(
        {
          name: 'roll',
          namespace: ns,
          body: {
            spec: { template: { metadata: { annotations: { restartedAt: new Date().toISOString() } } } },
          },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      await poll('the forward to move to a new pod', 60_000, async () => {
        const pf = await waitForStatus(cluster, ns, 'roll', 'status', () => true);
        return pf.status?.pod?.uid !== podBefore && pf.status?.phase === 'Ready';
      });
      await poll('the rollout to finish', 60_000, async () => {
        const d = await apps.readNamespacedDeployment({ name: 'roll', namespace: ns });
        return (
          d.status?.updatedReplicas === 2 &&
          d.status?.replicas === 2 &&
          (d.status?.availableReplicas ?? 0) === 2
        );
      });
      stop = true;
      await load;
      console.log(
        `      (${results.length} connections during the rollout, ${results.filter((ok) => !ok).length} failed)`,
      );
      assert.ok(results.length >= 5, `${results.length} connections during the rollout`);
      assert.deepEqual(results.filter((ok) => !ok).length, 0, `${results.length} connections, none failed`);
    } finally {
      await echo.close();
    }
  });
});

describe('operator: lifetime, restarts and access rules', function () {
  this.timeout(180_000);
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess;
  const range = freshPortRange();

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-life');
    echo = await cluster.createEchoPod(ns);
    op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns], portRange: range });
  });

  after(async function () {
    await op?.stop();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  async function served(name: string): Promise<number> {
    const pf = await waitForStatus(cluster, ns, name, 'Ready', (p) => p.status?.phase === 'Ready', 20_000);
    return pf.status!.endpoints![0].localPort;
  }

  async function echoes(port: number): Promise<boolean> {
    const payload = randomPayload(1024);
    return echoRoundTrip(port, payload, 5_000).then(
      (b) => sha256(b) === sha256(payload),
      () => false,
    );
  }

  it('serves every PortForward again on its old local port after the operator is SIGKILLed', async function () {
    const names = ['keep-a', 'keep-b', 'keep-c'];
    for (const n of names)
      await applyPortForward(cluster, ns, n, { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const ports = new Map<string, number>();
    for (const n of names) ports.set(n, await served(n));
    assert.equal(new Set(ports.values()).size, names.length, 'distinct ports');

    await op.kill();
    for (const p of ports.values()) assert.ok(await connectRefused(p), `port ${p} closed with the operator`);
    const t0 = Date.now();
    op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns], portRange: range });
    for (const [n, p] of ports) {
      await poll(`${n} to echo again on ${p}`, 15_000, () => echoes(p));
      const pf = await waitForStatus(cluster, ns, n, 'Ready', (x) => x.status?.phase === 'Ready');
      assert.equal(pf.status!.endpoints![0].localPort, p, `${n} kept its port`);
    }
    console.log(
      `      (all ${names.length} forwards served on their old ports ${Date.now() - t0} ms after the restart began)`,
    );
  });

  it('expires after its ttl: phase Expired, listener closed, resource kept', async function () {
    await applyPortForward(cluster, ns, 'short', {
      target: { pod: 'echo' },
      ports: [{ port: 8080 }],
      ttl: '4s',
    });
    const port = await served('short');
    const live = await waitForStatus(cluster, ns, 'short', 'expiryTime', (p) => !!p.status?.expiryTime);
    assert.equal(Date.parse(live.status!.expiryTime!) - Date.parse(live.status!.startTime!), 4000);
    const expired = await waitForStatus(
      cluster,
      ns,
      'short',
      'Expired',
      (p) => p.status?.phase === 'Expired',
      15_000,
    );
    // Closed on purpose: no Ready condition, so kstatus sees it reconciled (ADR 11).
    assert.equal(condition(expired, 'Ready'), undefined);
    assert.ok(await connectRefused(port), 'the listener is closed');
    await poll('an Expired Event', 5_000, async () =>
      (await cluster.core.listNamespacedEvent({ namespace: ns })).items.some(
        (e) => e.reason === 'Expired' && e.involvedObject.name === 'short',
      ),
    );
  });

  it('suspends (listener closed) and resumes on the same port', async function () {
    await applyPortForward(cluster, ns, 'pause', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const port = await served('pause');
    await patchSpec(cluster, ns, 'pause', { suspend: true });
    await waitForStatus(cluster, ns, 'pause', 'Suspended', (p) => p.status?.phase === 'Suspended');
    await poll('the port to close', 5_000, () => connectRefused(port));
    await patchSpec(cluster, ns, 'pause', { suspend: false });
    assert.equal(await served('pause'), port, 'the same port after resume');
    assert.ok(await echoes(port));
  });

  it('refuses clients outside allowedSourceRanges at accept and counts them', async function () {
    await applyPortForward(cluster, ns, 'ranges', {
      target: { pod: 'echo' },
      ports: [{ port: 8080 }],
      allowedSourceRanges: ['10.0.0.0/8'],
    });
    const port = await served('ranges');
    const res = await connectAndRead(port, Buffer.from('hello'));
    assert.equal(res.data.length, 0, 'a client from 127.0.0.1 gets nothing');
    const pf = await waitForStatus(
      cluster,
      ns,
      'ranges',
      'a refused count',
      (p) => (p.status?.connections?.refused ?? 0) >= 1,
    );
    assert.equal(pf.status?.connections?.total ?? 0, 0);
    await patchSpec(cluster, ns, 'ranges', { allowedSourceRanges: ['127.0.0.0/8'] });
    await poll('loopback clients to be let in', 10_000, () => echoes(port));
  });

  it('fails (Stalled) on a listenAddress the operator does not allow', async function () {
    await applyPortForward(cluster, ns, 'anyaddr', {
      target: { pod: 'echo' },
      ports: [{ port: 8080 }],
      listenAddress: '0.0.0.0',
    });
    const pf = await waitForStatus(cluster, ns, 'anyaddr', 'Failed', (p) => p.status?.phase === 'Failed');
    assert.equal(condition(pf, 'Stalled')?.reason, 'ListenAddressNotAllowed');
    assert.match(
      pf.status?.message ?? '',
      /listenAddress 0\.0\.0\.0 is not allowed by the operator \(allowed: 127\.0\.0\.1\)/,
    );
  });

  it('gives two PortForwards asking for the same localPort one Ready and one PortInUse', async function () {
    const port = await freePort();
    await applyPortForward(cluster, ns, 'first', {
      target: { pod: 'echo' },
      ports: [{ port: 8080, localPort: port }],
    });
    await served('first');
    await applyPortForward(cluster, ns, 'second', {
      target: { pod: 'echo' },
      ports: [{ port: 8080, localPort: port }],
    });
    const pf = await waitForStatus(cluster, ns, 'second', 'Failed', (p) => p.status?.phase === 'Failed');
    assert.equal(condition(pf, 'Stalled')?.reason, 'PortInUse');
    assert.match(pf.status?.message ?? '', new RegExp(`in use by PortForward ${ns}/first`));
  });
});
