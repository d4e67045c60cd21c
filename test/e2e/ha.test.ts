// End to end: two replicas with --leader-elect. Only the leader binds listeners and is ready; after the
// leader's SIGKILL the standby takes over within the Lease's duration and serves every forward on its
// old port; a SIGTERM releases the Lease for a fast handover.
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { httpGet } from '../../tools/testenv/procs';
import { connectRefused, echoRoundTrip, EchoServer, randomPayload, sha256 } from '../support/net';
import { freshPortRange, OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

describe('operator: leader election and handover', function () {
  this.timeout(240_000);
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  const range = freshPortRange();
  const ops: OperatorProcess[] = [];

  const start = async (): Promise<OperatorProcess> => {
    const op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      portRange: range,
      extraArgs: ['--leader-elect', `--leader-election-namespace=${ns}`],
      ready: false, // a standby is never ready
    });
    ops.push(op);
    return op;
  };
  const ready = async (op: OperatorProcess): Promise<boolean> =>
    (await httpGet(`http://127.0.0.1:${op.healthPort}/readyz`).catch(() => ({ status: 0 }))).status === 200;
  const echoes = async (port: number): Promise<boolean> => {
    const payload = randomPayload(4096);
    return echoRoundTrip(port, payload, 3000).then(
      (b) => sha256(b) === sha256(payload),
      () => false,
    );
  };

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-ha');
    echo = await cluster.createEchoPod(ns);
  });

  after(async function () {
    for (const op of ops) await op.kill();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it('lets only the leader serve; the standby takes over after a SIGKILL, on the same ports', async function () {
    const a = await start();
    await poll('replica a to lead and be ready', 30_000, () => ready(a));
    const b = await start();
    await poll(
      'replica b to be up',
      10_000,
      async () =>
        (await httpGet(`http://127.0.0.1:${b.healthPort}/readyz`).catch(() => undefined)) !== undefined,
    );
    assert.equal(await ready(b), false, 'the standby is not ready');

    const names = ['ha-1', 'ha-2', 'ha-3'];
    for (const n of names)
      await applyPortForward(cluster, ns, n, { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const ports: number[] = [];
    for (const n of names) {
      const pf = await waitForStatus(cluster, ns, n, 'Ready', (p) => p.status?.phase === 'Ready', 20_000);
      ports.push(pf.status!.endpoints![0].localPort);
    }
    for (const p of ports) assert.ok(await echoes(p));

    // Traffic keeps knocking while the leader dies.
    let stop = false;
    let okAfter = 0;
    const knock = (async () => {
      while (!stop) {
        if (await echoes(ports[0])) okAfter++;
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const t0 = Date.now();
    await a.kill();
    okAfter = 0;
    await poll('the standby to take over and serve every port', 45_000, async () => {
      for (const p of ports) if (!(await echoes(p))) return false;
      return true;
    });
    const tookMs = Date.now() - t0;
    console.log(
      `      (standby served all ${ports.length} forwards on their old ports ${tookMs} ms after the leader's SIGKILL)`,
    );
    await poll('the knocking traffic to flow again through the new leader', 10_000, () =>
      Promise.resolve(okAfter >= 1),
    );
    stop = true;
    await knock;
    assert.ok(await ready(b), 'the new leader is ready');
    for (const n of names) {
      const pf = await waitForStatus(cluster, ns, n, 'Ready', (p) => p.status?.phase === 'Ready');
      assert.ok(ports.includes(pf.status!.endpoints![0].localPort), `${n} kept its port`);
    }
  });

  it('hands over fast on SIGTERM: the leader releases the Lease', async function () {
    const leader = ops.find((o) => o.alive())!;
    const standby = await start();
    const pf = await waitForStatus(cluster, ns, 'ha-1', 'Ready', (p) => p.status?.phase === 'Ready');
    const port = pf.status!.endpoints![0].localPort;
    const t0 = Date.now();
    leader.child.kill('SIGTERM');
    assert.equal(await leader.exited, 0);
    await poll('the standby to serve', 15_000, () => echoes(port));
    const tookMs = Date.now() - t0;
    console.log(`      (the standby served ${tookMs} ms after the leader's SIGTERM)`);
    assert.ok(await ready(standby));
    // Not a speed target: a standby can take an unreleased Lease only after its 15 s duration, so
    // anything below that proves the leader released it.
    assert.ok(tookMs < 15_000, `handover took ${tookMs} ms; a released Lease needs no expiry wait`);
    assert.equal(await connectRefused(port), false);
  });
});
