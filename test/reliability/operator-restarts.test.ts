// Reliability: the operator itself goes away under steady traffic. SIGKILL (a crash) and a restart,
// again and again: connections fail only while it is down, and each forward comes back on its port.
// SIGTERM with connections open: the listeners close at once, the open connections finish (drained).
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { connectRefused, EchoServer } from '../support/net';
import { freshPortRange, OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, getPortForward, waitForStatus } from '../support/portforward';
import { LongTransfer, SteadyTraffic, summarize, Window } from '../support/traffic';
import { poll } from '../support/wait';
import { assertFailuresExplained, figure, servedAgain, size } from './support';

const PER_SECOND = 8;

describe('reliability: the operator killed and stopped under steady traffic', function () {
  this.timeout(size(600_000, 180_000));
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess | undefined;
  const range = freshPortRange();
  const start = (): Promise<OperatorProcess> =>
    startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      portRange: range,
      extraArgs: ['--log-level=info', '--shutdown-grace-period=60s'],
    });

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('rel-operator');
    echo = await cluster.createEchoPod(ns);
    op = await start();
  });

  after(async function () {
    await op?.stop();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it(`fails connections only while the operator is down: SIGKILL and restart, ${size(10, 2)} times`, async function () {
    const rounds = size(10, 2);
    for (const name of ['a', 'b'])
      await applyPortForward(cluster, ns, name, { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const ports = new Map<string, number>();
    for (const name of ['a', 'b']) {
      const pf = await waitForStatus(cluster, ns, name, 'Ready', (p) => p.status?.phase === 'Ready', 20_000);
      ports.set(name, pf.status!.endpoints![0].localPort);
    }
    const traffic = [...ports.values()].map((port) =>
      new SteadyTraffic({ port, perSecond: PER_SECOND / 2 }).start(),
    );
    const windows: Window[] = [];
    for (let round = 1; round <= rounds; round++) {
      await new Promise((r) => setTimeout(r, 1000)); // a second of traffic with the operator up
      const from = Date.now();
      await op!.kill();
      op = await start();
      for (const port of ports.values())
        await servedAgain(port, `port ${port} served after restart ${round}`);
      windows.push({ from, to: Date.now() });
    }
    await new Promise((r) => setTimeout(r, 1000));
    const reports = await Promise.all(traffic.map((t) => t.stop()));
    const merged = summarize(reports.flatMap((r) => r.attempts));
    assertFailuresExplained(`${rounds} SIGKILLs and restarts, 2 forwards`, merged, windows, PER_SECOND);
    for (const [name, port] of ports) {
      const pf = await getPortForward(cluster, ns, name);
      assert.equal(pf.status?.endpoints?.[0].localPort, port, `${name} kept its local port`);
    }
    const down = windows.map((w) => w.to - w.from).sort((a, b) => a - b);
    figure(
      `down per restart (kill -> served again): median ${(down[down.length >> 1] / 1000).toFixed(1)} s, worst ${(down.at(-1)! / 1000).toFixed(1)} s`,
    );
  });

  it('drains on SIGTERM: open connections finish, new ones are refused, then it exits 0', async function () {
    await applyPortForward(cluster, ns, 'drain', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const pf = await waitForStatus(cluster, ns, 'drain', 'Ready', (p) => p.status?.phase === 'Ready', 20_000);
    const port = pf.status!.endpoints![0].localPort;
    const open = [0, 1, 2].map(() => LongTransfer.start(port));
    await servedAgain(port, 'the forward to serve');
    const marks = open.map((t) => t.received);

    const stopping = op!.stop();
    const t0 = Date.now();
    // The listener closes as soon as the signal is handled; the open transfers go on through the drain.
    await poll('the listener to close', 10_000, () => connectRefused(port));
    const closedIn = Date.now() - t0;
    const refused = new SteadyTraffic({ port, perSecond: 10 }).start();
    await new Promise((r) => setTimeout(r, 2000)); // two seconds of clients during the drain
    const r = await refused.stop();
    assert.ok(
      open.every((t, i) => t.alive && t.received > marks[i] + 16 * 1024),
      'open transfers kept flowing',
    );
    for (const t of open) await t.finish();
    const code = await stopping;
    const drainedIn = Date.now() - t0;
    op = undefined;
    for (const t of open) {
      assert.equal(t.error, undefined);
      assert.equal(t.received, t.sent, 'every byte of a drained connection came back');
    }
    assert.equal(code, 0, 'the operator exits 0 once the open connections are done');
    assert.equal(r.succeeded, 0, 'no new connection is accepted while draining');
    figure(
      `SIGTERM with 3 transfers open: listener closed ${closedIn} ms after the signal; all 3 finished intact (${open.map((t) => `${(t.received / 1024).toFixed(0)} KiB`).join(', ')}), ` +
        `${r.attempted} new connections refused meanwhile, exit 0 ${(drainedIn / 1000).toFixed(1)} s after SIGTERM`,
    );
    op = await start();
    await servedAgain(port, 'the forward back on its port');
  });
});
