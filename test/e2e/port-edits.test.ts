// Edits of a PortForward's ports that keep an entry's local port and target port keep its listener,
// its allocated port and its running connections (issue 11, point 4): a number rewritten as the name
// of the same container port, and a new entry put in front of the others.
import * as assert from 'node:assert/strict';
import { PortForward } from '../../src/api/v1alpha1';
import { TestCluster } from '../../tools/testenv/cluster';
import { freePort } from '../../tools/testenv/procs';
import { EchoServer, startEchoServer } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, patchSpec, waitForStatus } from '../support/portforward';
import { LongTransfer } from '../support/traffic';
import { poll } from '../support/wait';

describe("operator: edits that keep an entry's ports keep its connections", function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-edits');
    echo = await startEchoServer();
    await cluster.createPod(ns, 'web', [{ port: 8080, name: 'http', targetPort: echo.port }]);
    op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns] });
  });

  after(async function () {
    await op?.stop();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  /** Waits until the operator has acted on the latest generation and the forward is Ready. */
  const settled = (name: string): Promise<PortForward> =>
    waitForStatus(
      cluster,
      ns,
      name,
      'Ready at the latest generation',
      (p) => p.status?.phase === 'Ready' && p.status.observedGeneration === p.metadata.generation,
      20_000,
    );

  /** Lets each transfer move at least `bytes` more, then checks it is alive and intact. */
  async function stillFlowing(transfers: LongTransfer[], what: string, bytes = 64 * 1024): Promise<void> {
    const marks = transfers.map((t) => t.received);
    await poll(`the transfers to go on ${what}`, 15_000, () => {
      for (const t of transfers)
        if (!t.alive) throw new Error(`a transfer ended ${what}: ${t.error ?? 'closed'}`);
      return Promise.resolve(transfers.every((t, i) => t.received >= marks[i] + bytes));
    });
  }

  it('keeps the listener, the allocated port and a running transfer when port 8080 becomes "http", and when an entry is prepended', async function () {
    const pinned = await freePort();
    await applyPortForward(cluster, ns, 'edit', {
      target: { pod: 'web' },
      ports: [{ port: 8080 }, { port: 8080, localPort: pinned }],
    });
    const pf = await settled('edit');
    const allocated = pf.status!.endpoints![0].localPort;
    assert.equal(pf.status!.endpoints![1].localPort, pinned);
    const transfers = [LongTransfer.start(allocated), LongTransfer.start(pinned)];
    await stillFlowing(transfers, 'before the edits');

    await patchSpec(cluster, ns, 'edit', {
      ports: [{ port: 'http' }, { port: 'http', localPort: pinned }],
    });
    const renamed = await settled('edit');
    assert.deepEqual(
      renamed.status!.endpoints!.map((e) => [e.port, e.localPort, e.targetPort]),
      [
        ['http', allocated, 8080],
        ['http', pinned, 8080],
      ],
    );
    await stillFlowing(transfers, 'after port 8080 became "http"');

    await patchSpec(cluster, ns, 'edit', {
      ports: [{ port: 9090 }, { port: 'http' }, { port: 'http', localPort: pinned }],
    });
    const prepended = await settled('edit');
    const eps = prepended.status!.endpoints!;
    assert.deepEqual(
      eps.slice(1).map((e) => e.localPort),
      [allocated, pinned],
      'the old entries keep their local ports',
    );
    assert.ok(![allocated, pinned].includes(eps[0].localPort), 'the new entry has a port of its own');
    await stillFlowing(transfers, 'after an entry was prepended');

    for (const t of transfers) await t.finish();
    for (const t of transfers) {
      assert.equal(t.error, undefined);
      assert.equal(t.received, t.sent, 'every byte came back, in order');
    }
    console.log(
      `      (two transfers lived through both edits: ${transfers.map((t) => `${(t.received / 1024).toFixed(0)} KiB`).join(' and ')} echoed intact)`,
    );
  });
});
