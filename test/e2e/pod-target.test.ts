// End to end: the operator process against the test control plane, kwok pods with real TCP servers
// behind them, real TCP clients in front of the operator's listeners. How fast things happen (Ready
// after apply, lastError after a failure) is measured by `make bench`, not asserted here.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { TestCluster } from '../../tools/testenv/cluster';
import { repoRoot } from '../../tools/testenv/paths';
import { freePort } from '../../tools/testenv/procs';
import {
  connectAndRead,
  connectRefused,
  echoRoundTrip,
  EchoServer,
  randomPayload,
  sha256,
  startEchoServer,
} from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import {
  applyPortForward,
  condition,
  deletePortForward,
  patchSpec,
  waitForStatus,
} from '../support/portforward';
import { poll } from '../support/wait';

const MiB = 1024 * 1024;

describe('operator: pod targets end to end', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-pod');
    echo = await startEchoServer();
    await cluster.createPod(ns, 'echo', [{ port: 8080, name: 'http', targetPort: echo.port }]);
    op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns] });
  });

  after(async function () {
    const code = await op?.stop();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
    assert.equal(code, 0, 'the operator exits 0 on SIGTERM');
  });

  afterEach(function () {
    assert.ok(op.alive(), `the operator is still running; its log:\n${op.logs().slice(-4000)}`);
  });

  it('turns a PortForward Ready after apply, with an endpoint that echoes', async function () {
    await applyPortForward(cluster, ns, 'ready', {
      target: { pod: 'echo' },
      ports: [{ port: 8080, name: 'http' }],
    });
    const pf = await waitForStatus(
      cluster,
      ns,
      'ready',
      'phase Ready',
      (p) => p.status?.phase === 'Ready',
      20_000,
    );
    const ep = pf.status!.endpoints![0];
    assert.equal(ep.address, '127.0.0.1');
    assert.ok(
      ep.localPort >= op.portRange.min && ep.localPort <= op.portRange.max,
      `port ${ep.localPort} from the range`,
    );
    assert.equal(ep.url, `tcp://127.0.0.1:${ep.localPort}`);
    assert.equal(ep.targetPort, 8080);
    assert.equal(pf.status?.pod?.name, 'echo');
    assert.equal(pf.status?.observedGeneration, 1);
    assert.equal(condition(pf, 'Ready')?.status, 'True');
    assert.equal(condition(pf, 'TargetResolved')?.status, 'True');
    const payload = randomPayload(64 * 1024);
    assert.equal(sha256(await echoRoundTrip(ep.localPort, payload)), sha256(payload));
  });

  it('relays 32 concurrent connections each echoing 4 MiB intact, and counts them in status', async function () {
    await applyPortForward(cluster, ns, 'bulk', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const pf = await waitForStatus(cluster, ns, 'bulk', 'Ready', (p) => p.status?.phase === 'Ready');
    const port = pf.status!.endpoints![0].localPort;
    const payloads = Array.from({ length: 32 }, () => randomPayload(4 * MiB));
    const results = await Promise.all(payloads.map((p) => echoRoundTrip(port, p, 90_000)));
    results.forEach((r, i) => assert.equal(sha256(r), sha256(payloads[i]), `connection ${i} intact`));

    const bytes = 32 * 4 * MiB;
    const counted = await waitForStatus(
      cluster,
      ns,
      'bulk',
      'counters matching the traffic',
      (p) =>
        p.status?.connections?.total === 32 &&
        p.status?.connections?.active === 0 &&
        p.status?.bytesSent === bytes,
    );
    assert.equal(counted.status?.bytesReceived, bytes);
    assert.equal(counted.status?.connections?.failed, 0);
  });

  it('puts a node-side failure (missing forward command) in lastError, while other forwards keep working', async function () {
    await cluster.createPod(ns, 'no-socat', [
      { port: 5432, command: ['socat-not-installed', '-', 'TCP4:127.0.0.1:5432'] },
    ]);
    await applyPortForward(cluster, ns, 'db', { target: { pod: 'no-socat' }, ports: [{ port: 5432 }] });
    const pf = await waitForStatus(cluster, ns, 'db', 'Ready', (p) => p.status?.phase === 'Ready');
    await applyPortForward(cluster, ns, 'healthy', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    const healthy = await waitForStatus(cluster, ns, 'healthy', 'Ready', (p) => p.status?.phase === 'Ready');

    const res = await connectAndRead(pf.status!.endpoints![0].localPort, Buffer.from('hello'));
    assert.equal(res.data.length, 0, 'the failed connection carries no data');
    const after = await waitForStatus(
      cluster,
      ns,
      'db',
      'lastError',
      (p) => /socat-not-installed/.test(p.status?.lastError?.message ?? ''),
      10_000,
    );
    assert.match(after.status!.lastError!.message, /executable file not found|not found|no such file/i);
    assert.ok((after.status?.connections?.failed ?? 0) >= 1);

    const payload = randomPayload(256 * 1024);
    assert.equal(
      sha256(await echoRoundTrip(healthy.status!.endpoints![0].localPort, payload)),
      sha256(payload),
    );
    await poll('an Event that tells of the failure', 5_000, async () => {
      const events = await cluster.core.listNamespacedEvent({ namespace: ns });
      return events.items.some(
        (e) =>
          e.involvedObject.name === 'db' &&
          e.type === 'Warning' &&
          /socat-not-installed/.test(e.message ?? ''),
      );
    });
  });

  it('puts a refused pod port in lastError', async function () {
    const closed = await freePort(); // nothing listens there
    await cluster.createPod(ns, 'nowhere', [{ port: 9999, targetPort: closed }]);
    await applyPortForward(cluster, ns, 'nowhere', { target: { pod: 'nowhere' }, ports: [{ port: 9999 }] });
    const pf = await waitForStatus(cluster, ns, 'nowhere', 'Ready', (p) => p.status?.phase === 'Ready');
    await connectAndRead(pf.status!.endpoints![0].localPort, Buffer.from('x'));
    const after = await waitForStatus(
      cluster,
      ns,
      'nowhere',
      'lastError',
      (p) => !!p.status?.lastError,
      10_000,
    );
    assert.match(after.status!.lastError!.message, /refused|9999/i);
  });

  it('re-binds when the ports are edited, and closes the port when the PortForward is deleted', async function () {
    const [p1, p2] = [await freePort(), await freePort()];
    await applyPortForward(cluster, ns, 'edit', {
      target: { pod: 'echo' },
      ports: [{ port: 8080, localPort: p1 }],
    });
    await waitForStatus(
      cluster,
      ns,
      'edit',
      `endpoint on ${p1}`,
      (p) => p.status?.endpoints?.[0]?.localPort === p1,
    );
    await patchSpec(cluster, ns, 'edit', { ports: [{ port: 8080, localPort: p2 }] });
    const pf = await waitForStatus(
      cluster,
      ns,
      'edit',
      `endpoint on ${p2}`,
      (p) => p.status?.endpoints?.[0]?.localPort === p2 && p.status?.observedGeneration === 2,
    );
    assert.equal(pf.status?.phase, 'Ready');
    assert.ok(await connectRefused(p1), `old port ${p1} closed`);
    const payload = randomPayload(1024);
    assert.equal(sha256(await echoRoundTrip(p2, payload)), sha256(payload));

    await deletePortForward(cluster, ns, 'edit');
    await poll(`port ${p2} to close`, 5_000, () => connectRefused(p2));
  });

  it('turns Degraded when the pod goes away, and Ready again when a pod of that name is back', async function () {
    await cluster.createPod(ns, 'comeback', [{ port: 8080, targetPort: echo.port }]);
    await applyPortForward(cluster, ns, 'comeback', { target: { pod: 'comeback' }, ports: [{ port: 8080 }] });
    const ready = await waitForStatus(cluster, ns, 'comeback', 'Ready', (p) => p.status?.phase === 'Ready');
    const port = ready.status!.endpoints![0].localPort;

    await cluster.core.deleteNamespacedPod({ name: 'comeback', namespace: ns, gracePeriodSeconds: 0 });
    const degraded = await waitForStatus(
      cluster,
      ns,
      'comeback',
      'Degraded',
      (p) => p.status?.phase === 'Degraded',
    );
    assert.equal(condition(degraded, 'Ready')?.status, 'False');
    assert.match(condition(degraded, 'Ready')?.reason ?? '', /PodNotFound|PodNotReady/);
    assert.equal(condition(degraded, 'Stalled'), undefined, 'not stalled: the pod may come back');

    await poll('the pod to be gone', 10_000, async () =>
      cluster.core.readNamespacedPod({ name: 'comeback', namespace: ns }).then(
        () => false,
        () => true,
      ),
    );
    await cluster.createPod(ns, 'comeback', [{ port: 8080, targetPort: echo.port }]);
    const back = await waitForStatus(
      cluster,
      ns,
      'comeback',
      'Ready again',
      (p) => p.status?.phase === 'Ready',
    );
    assert.equal(back.status!.endpoints![0].localPort, port, 'the same local port');
    assert.notEqual(back.status?.pod?.uid, ready.status?.pod?.uid);
    const payload = randomPayload(1024);
    assert.equal(sha256(await echoRoundTrip(port, payload)), sha256(payload));
  });

  it('fails with PortInUse (Stalled) on a local port another program holds, and recovers when it frees', async function () {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const taken = (holder.address() as net.AddressInfo).port;
    await applyPortForward(cluster, ns, 'taken', {
      target: { pod: 'echo' },
      ports: [{ port: 8080, localPort: taken }],
    });
    const failed = await waitForStatus(cluster, ns, 'taken', 'Failed', (p) => p.status?.phase === 'Failed');
    assert.equal(condition(failed, 'Stalled')?.status, 'True');
    assert.equal(condition(failed, 'Stalled')?.reason, 'PortInUse');
    assert.match(failed.status?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${taken} is in use`));
    await new Promise<void>((r) => holder.close(() => r()));
    await waitForStatus(
      cluster,
      ns,
      'taken',
      'Ready after the port frees',
      (p) => p.status?.phase === 'Ready',
      15_000,
    );
  });

  it('fails with NamedPortNotFound (Stalled) for a container port name the pod lacks', async function () {
    await applyPortForward(cluster, ns, 'noname', { target: { pod: 'echo' }, ports: [{ port: 'grpc' }] });
    const pf = await waitForStatus(cluster, ns, 'noname', 'Failed', (p) => p.status?.phase === 'Failed');
    assert.equal(condition(pf, 'Stalled')?.reason, 'NamedPortNotFound');
    assert.match(pf.status?.message ?? '', /no TCP container port named "grpc" \(it has http\)/);
    // A client of it is refused with that reason, not with "no ready pod" (issue 11, point 6).
    const res = await connectAndRead(pf.status!.endpoints![0].localPort, Buffer.from('x'));
    assert.equal(res.data.length, 0);
    const refused = await waitForStatus(
      cluster,
      ns,
      'noname',
      'the refusal in lastError',
      (p) => !!p.status?.lastError,
    );
    assert.match(
      refused.status!.lastError!.message,
      /connection refused: pod .* has no TCP container port named "grpc"/,
    );
    const line = op
      .logs()
      .split('\n')
      .find((l) => l.includes('refused a client') && l.includes('/noname'));
    assert.match(line ?? '', /refused a client: pod .* has no TCP container port named/);
    assert.doesNotMatch(line ?? '', /no ready pod/);
  });

  it('resolves a named container port', async function () {
    await applyPortForward(cluster, ns, 'named', { target: { pod: 'echo' }, ports: [{ port: 'http' }] });
    const pf = await waitForStatus(cluster, ns, 'named', 'Ready', (p) => p.status?.phase === 'Ready');
    assert.equal(pf.status!.endpoints![0].targetPort, 8080);
    const payload = randomPayload(1024);
    assert.equal(sha256(await echoRoundTrip(pf.status!.endpoints![0].localPort, payload)), sha256(payload));
  });
});

describe('operator command line', function () {
  it('stops at start-up with one clear line and exit code 2 on a bad flag', function () {
    const out = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'main.js'), '--port-range=9-1'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(out.status, 2);
    assert.equal(out.stderr.trim().split('\n').length, 1);
    assert.match(out.stderr, /--port-range=9-1 is not a range/);
  });

  it('lists its flags with defaults in --help', function () {
    const out = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'main.js'), '--help'], {
      encoding: 'utf8',
    });
    assert.equal(out.status, 0);
    assert.match(
      out.stdout,
      /--port-range=VALUE\s+range local ports are allocated from, MIN-MAX \(default "20000-29999"\)/,
    );
  });
});
