// End to end: what operations teams rely on: Prometheus metrics that move with the traffic, readiness,
// and a SIGTERM that drains open connections before the process exits 0.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { TestCluster } from '../../tools/testenv/cluster';
import { freePort, httpGet } from '../../tools/testenv/procs';
import { connectRefused, echoRoundTrip, EchoServer, randomPayload } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

/** The value of one sample of a Prometheus text exposition, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.split(' ').pop());
  }
  return undefined;
}

describe('operator: metrics, readiness and graceful shutdown', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess;
  let metricsPort: number;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-ops');
    echo = await cluster.createEchoPod(ns);
    await cluster.createPod(ns, 'no-socat', [{ port: 5432, command: ['socat-not-installed'] }]);
    metricsPort = await freePort();
    op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      extraArgs: [`--metrics-bind-address=127.0.0.1:${metricsPort}`, '--shutdown-grace-period=60s'],
    });
  });

  after(async function () {
    await op?.stop();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it('exposes portforward_* metrics that move with the traffic, and the process metrics', async function () {
    await applyPortForward(cluster, ns, 'm', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    await applyPortForward(cluster, ns, 'bad', { target: { pod: 'no-socat' }, ports: [{ port: 5432 }] });
    const port = (await waitForStatus(cluster, ns, 'm', 'Ready', (p) => p.status?.phase === 'Ready')).status!
      .endpoints![0].localPort;
    const badPort = (await waitForStatus(cluster, ns, 'bad', 'Ready', (p) => p.status?.phase === 'Ready'))
      .status!.endpoints![0].localPort;
    const scrape = async (): Promise<string> =>
      (await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)).body;

    const before = await scrape();
    assert.match(before, /^process_resident_memory_bytes /m);
    assert.match(before, /^portforward_reconcile_total\{result="success"\} \d+/m);
    const l = { namespace: ns, name: 'm' };
    const okBefore = sample(before, 'portforward_connections_total', { ...l, result: 'ok' }) ?? 0;

    for (let i = 0; i < 3; i++) await echoRoundTrip(port, randomPayload(100_000));
    await new Promise<void>((resolve) => {
      const s = net.connect(badPort, '127.0.0.1', () => s.write('x'));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
    });
    await poll('the counters to move', 10_000, async () => {
      const text = await scrape();
      return (
        (sample(text, 'portforward_connections_total', { ...l, result: 'ok' }) ?? 0) >= okBefore + 3 &&
        (sample(text, 'portforward_tunnel_errors_total', {
          namespace: ns,
          name: 'bad',
          class: 'nodeError',
        }) ?? 0) >= 1
      );
    });
    const after = await scrape();
    assert.ok((sample(after, 'portforward_bytes_total', { ...l, direction: 'sent' }) ?? 0) >= 300_000);
    assert.ok((sample(after, 'portforward_bytes_total', { ...l, direction: 'received' }) ?? 0) >= 300_000);
    assert.ok((sample(after, 'portforward_connect_duration_seconds_count', l) ?? 0) >= 3);
    assert.equal(sample(after, 'portforward_connections_active', l), 0);
    assert.equal(sample(after, 'portforward_buffered_bytes', l), 0, 'nothing held once connections ended');
    assert.match(after, /^portforward_workqueue_depth \d+/m);
  });

  it('logs JSON lines that name their PortForward, and never its credentials', function () {
    const token = cluster.kc.getCurrentUser()?.token;
    assert.ok(token, 'the test kubeconfig authenticates with a token');
    const lines = op
      .logs()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.length > 10);
    const about = lines.filter((l) => l.portforward === `${ns}/bad`);
    assert.ok(
      about.some((l) => l.message === 'tunnel failed'),
      'the failure is logged with its PortForward',
    );
    const relayLines = lines.filter((l) => /connection|tunnel|listener/.test(String(l.message)));
    assert.ok(relayLines.length > 0);
    for (const l of relayLines)
      assert.ok(typeof l.portforward === 'string', `no portforward field: ${JSON.stringify(l)}`);
    assert.ok(!op.logs().includes(token), 'the bearer token never appears in the log');
    assert.ok(!/authorization|bearer/i.test(op.logs()), 'no Authorization header is logged');
  });

  it('drains on SIGTERM: readiness false, no new connections, open ones finish, then exit 0', async function () {
    await applyPortForward(cluster, ns, 'drain', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const port = (await waitForStatus(cluster, ns, 'drain', 'Ready', (p) => p.status?.phase === 'Ready'))
      .status!.endpoints![0].localPort;
    const open = net.connect(port, '127.0.0.1');
    let echoed = 0;
    open.on('data', (c: Buffer) => (echoed += c.length));
    open.write('before');
    await poll('the first echo', 5_000, () => Promise.resolve(echoed === 6));

    op.child.kill('SIGTERM');
    await poll('the listener to close', 5_000, () => connectRefused(port));
    const ready = await httpGet(`http://127.0.0.1:${op.healthPort}/readyz`).catch(() => undefined);
    assert.ok(!ready || ready.status === 503, `readyz says ${ready?.status}`);
    open.write('during');
    await poll('the open connection to keep echoing', 5_000, () => Promise.resolve(echoed === 12));
    assert.ok(op.alive(), 'still running while a connection is open');

    const t0 = Date.now();
    open.destroy();
    const code = await op.exited;
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 30_000, 'exits once the connection ended, well before the 60 s grace');
    op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns] });
  });
});
