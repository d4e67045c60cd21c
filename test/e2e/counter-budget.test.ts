// End to end: the budget of counter-only status writes across forwards (--counter-writes-per-second,
// ADR 17) holds counters back, never loses them. With a budget of one write a second, forwards used at
// the same moment wait for their slots, and every one's counters still reach its status. How the
// slots are spaced is the unit tests' (src/reconcile/status-writes.test.ts); the bench counts the writes.
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { echoRoundTrip, EchoServer, randomPayload } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, getPortForward, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

describe('operator: counter writes under --counter-writes-per-second', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-budget');
    echo = await cluster.createEchoPod(ns);
    op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      extraArgs: ['--counter-writes-per-second=1'],
    });
  });

  after(async function () {
    await op?.stop();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it('writes every forward used at once its counters, one slot after another', async function () {
    const names = ['a', 'b', 'c', 'd', 'e'];
    for (const name of names)
      await applyPortForward(cluster, ns, name, { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const ports = await Promise.all(
      names.map(
        async (name) =>
          (await waitForStatus(cluster, ns, name, 'Ready', (p) => p.status?.phase === 'Ready')).status!
            .endpoints![0].localPort,
      ),
    );
    const payload = randomPayload(1024);
    const back = await Promise.all(ports.map((port) => echoRoundTrip(port, payload)));
    for (const b of back) assert.ok(b.equals(payload));

    const totals = async (): Promise<number[]> =>
      Promise.all(
        names.map(async (n) => (await getPortForward(cluster, ns, n)).status?.connections?.total ?? 0),
      );
    await poll('every forward to count its connection in status', 60_000, async () =>
      (await totals()).every((t) => t === 1),
    );
    for (const name of names) {
      const st = (await getPortForward(cluster, ns, name)).status!;
      assert.equal(st.bytesSent, 1024, `${name}: the bytes its client sent`);
      assert.equal(st.bytesReceived, 1024, `${name}: the bytes that came back`);
      assert.equal(st.phase, 'Ready');
    }
  });
});
