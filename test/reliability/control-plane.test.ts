// Reliability: kube-apiserver, etcd and kwok (the node) restarted under steady traffic, with the
// operator running throughout. Connections may fail only while the restarted component is down
// (every connection goes through kube-apiserver, and through the node); afterwards the watches have
// resumed: a change made after the restart is acted on (nothing stale), a new PortForward is served.
import { TestCluster } from '../../tools/testenv/cluster';
import { Component, restartComponent } from '../../tools/testenv/components';
import { connectRefused, EchoServer } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, deletePortForward, patchSpec, waitForStatus } from '../support/portforward';
import { SteadyTraffic } from '../support/traffic';
import { poll } from '../support/wait';
import { assertAlive, assertFailuresExplained, figure, servedAgain, size } from './support';

const PER_SECOND = 8;

describe('reliability: control-plane components restarted under steady traffic', function () {
  this.timeout(size(600_000, 300_000));
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess;
  let port: number;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('rel-controlplane');
    echo = await cluster.createEchoPod(ns);
    op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      extraArgs: ['--log-level=info'],
    });
    await applyPortForward(cluster, ns, 'steady', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const pf = await waitForStatus(
      cluster,
      ns,
      'steady',
      'Ready',
      (p) => p.status?.phase === 'Ready',
      20_000,
    );
    port = pf.status!.endpoints![0].localPort;
  });

  after(async function () {
    await op?.stop();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
    // kwok's watches come back after a restart with a backoff of their own: leave the node
    // forwarding new pods' ports to the next test.
    await cluster.waitNodeForwards();
  });

  afterEach(function () {
    assertAlive(op);
  });

  const ready = (name: string, timeoutMs = 60_000): Promise<number> =>
    waitForStatus(cluster, ns, name, `${name} Ready`, (p) => p.status?.phase === 'Ready', timeoutMs).then(
      (pf) => pf.status!.endpoints![0].localPort,
    );

  for (const component of ['kube-apiserver', 'etcd', 'kwok'] as Component[]) {
    const rounds = size(2, 1);
    it(`resumes after ${rounds} restart(s) of ${component}: failures only while it is down, nothing stale`, async function () {
      // Before: a forward to delete and one to suspend after the restart, to see that changes are seen.
      const tag = component.replace(/[^a-z]/g, '');
      await applyPortForward(cluster, ns, `${tag}-gone`, {
        target: { pod: 'echo' },
        ports: [{ port: 8080 }],
      });
      await applyPortForward(cluster, ns, `${tag}-pause`, {
        target: { pod: 'echo' },
        ports: [{ port: 8080 }],
      });
      const gonePort = await ready(`${tag}-gone`);
      const pausePort = await ready(`${tag}-pause`);

      const traffic = new SteadyTraffic({ port, perSecond: PER_SECOND }).start();
      const windows = [];
      for (let round = 1; round <= rounds; round++) {
        await new Promise((r) => setTimeout(r, 1000)); // traffic with everything up first
        // Odd rounds stop it cleanly (SIGTERM), even rounds crash it (SIGKILL).
        const kill = round % 2 === 0;
        const { stoppedAt, readyAt } = await restartComponent(component, { downMs: 2000, kill });
        // Down until the component answers again and the forward serves again.
        const servedAt = await servedAgain(
          port,
          `the forward to serve after the ${component} restart`,
          90_000,
        );
        windows.push({ from: stoppedAt, to: servedAt });
        figure(
          `${component} restart ${round} (${kill ? 'SIGKILL' : 'SIGTERM'}): down ${((readyAt - stoppedAt) / 1000).toFixed(1)} s (2 s held down), ` +
            `forward serving ${((servedAt - readyAt) / 1000).toFixed(1)} s after it was ready`,
        );
      }
      await new Promise((r) => setTimeout(r, 2000)); // traffic after the last restart, all up
      const r = await traffic.stop();
      assertFailuresExplained(`${rounds} ${component} restart(s), steady forward`, r, windows, PER_SECOND);

      // Watches resumed, nothing stale: changes made now are acted on.
      const t0 = Date.now();
      await deletePortForward(cluster, ns, `${tag}-gone`);
      await patchSpec(cluster, ns, `${tag}-pause`, { suspend: true });
      await applyPortForward(cluster, ns, `${tag}-new`, { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
      const newPort = await ready(`${tag}-new`);
      await servedAgain(newPort, 'the new PortForward to serve', 30_000);
      await waitForStatus(cluster, ns, `${tag}-pause`, 'Suspended', (p) => p.status?.phase === 'Suspended');
      await servedAgain(port, 'the steady forward', 10_000);
      const closed = (p: number, what: string): Promise<void> =>
        poll(`${what}: port ${p} to close`, 20_000, () => connectRefused(p));
      await closed(gonePort, 'the deleted PortForward');
      await closed(pausePort, 'the suspended PortForward');
      figure(
        `after the ${component} restart(s): a delete, a suspend and a new PortForward acted on within ` +
          `${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
      await deletePortForward(cluster, ns, `${tag}-pause`);
      await deletePortForward(cluster, ns, `${tag}-new`);
    });
  }
});
