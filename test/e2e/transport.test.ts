// The transports end to end (ADR 6): each one relays through the real API server and kwok, status
// names the one in use, and a stalled target does not reach other connections of the same forward.
// Latencies are printed for the reader, never asserted (make bench measures them).
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { TestCluster } from '../../tools/testenv/cluster';
import {
  echoRoundTrip,
  EchoServer,
  randomPayload,
  sha256,
  startEchoServer,
  startSilentServer,
} from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, deletePortForward, waitForStatus } from '../support/portforward';
import { waitStable } from '../support/wait';

const MiB = 1024 * 1024;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

describe('operator: transports (SPDY sessions before they are needed, SPDY over WebSocket, v4)', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let sink: EchoServer;
  const ops: OperatorProcess[] = [];

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('e2e-transport');
    echo = await startEchoServer();
    sink = await startSilentServer();
    await cluster.createPod(ns, 'app', [
      { port: 8080, name: 'echo', targetPort: echo.port },
      { port: 9090, name: 'sink', targetPort: sink.port },
    ]);
  });

  afterEach(async function () {
    for (const op of ops.splice(0)) assert.equal(await op.stop(), 0, 'the operator exits 0 on SIGTERM');
  });

  after(async function () {
    await echo?.close();
    await sink?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  for (const transport of ['auto', 'spdy', 'spdy-websocket', 'websocket'] as const) {
    it(`relays with --transport=${transport} and names the transport in status`, async function () {
      const name = `t-${transport}`;
      const op = await startOperator({
        kubeconfig: cluster.state.kubeconfig,
        namespaces: [ns],
        extraArgs: [`--transport=${transport}`],
      });
      ops.push(op);
      await applyPortForward(cluster, ns, name, { target: { pod: 'app' }, ports: [{ port: 8080 }] });
      const pf = await waitForStatus(cluster, ns, name, 'Ready', (p) => p.status?.phase === 'Ready', 15_000);
      const port = pf.status!.endpoints![0].localPort;
      const payload = randomPayload(2 * MiB);
      assert.equal(sha256(await echoRoundTrip(port, payload)), sha256(payload));
      const expected = transport === 'auto' ? 'spdy' : transport;
      await waitForStatus(
        cluster,
        ns,
        name,
        `status.transport ${expected}`,
        (p) => p.status?.transport === expected,
      );
      await deletePortForward(cluster, ns, name);
    });
  }

  for (const transport of ['spdy', 'spdy-websocket'] as const)
    it(`keeps serving other ports of the pod while connections to one port are stalled, and keeps those open (${transport})`, async function () {
      const op = await startOperator({
        kubeconfig: cluster.state.kubeconfig,
        namespaces: [ns],
        extraArgs: [`--transport=${transport}`],
      });
      ops.push(op);
      const name = `iso-${transport}`;
      await applyPortForward(cluster, ns, name, {
        target: { pod: 'app' },
        ports: [
          { name: 'echo', port: 8080 },
          { name: 'sink', port: 9090 },
        ],
      });
      const pf = await waitForStatus(cluster, ns, name, 'Ready', (p) => p.status?.phase === 'Ready', 15_000);
      const byName: Record<string, number> = Object.fromEntries(
        pf.status!.endpoints!.map((e): [string, number] => [e.name ?? '', e.localPort]),
      );
      const small = randomPayload(1024);
      const roundTrips = async (n: number): Promise<number[]> => {
        const ms: number[] = [];
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          assert.equal(sha256(await echoRoundTrip(byName.echo, small, 10_000)), sha256(small));
          ms.push(performance.now() - t0);
        }
        return ms;
      };
      const before = await roundTrips(20);

      // Two clients push 64 MiB each to a target that never reads: spdystream stalls their sessions
      // after 12-21 MiB in flight (kernel buffers, kube-apiserver, kwok), the rest waits in the clients.
      const stalled = await Promise.all(
        [0, 1].map(
          () =>
            new Promise<net.Socket>((resolve, reject) => {
              const s = net.connect(byName.sink, '127.0.0.1', () => resolve(s));
              s.on('error', reject);
            }),
        ),
      );
      const push = randomPayload(16 * MiB);
      for (const s of stalled) for (let i = 0; i < 4; i++) s.write(push);
      // The first echoes start at once, while the pushes fill the path and stall it: one placed on a
      // session with an upload under way would be stalled with it (spdy-transport.ts, quietBeforeSharingMs).
      const onset = await roundTrips(20);
      const left = await waitStable(
        'the pushes',
        () => stalled[0].writableLength + stalled[1].writableLength,
      );
      assert.ok(left > 0, 'the pushes stalled: part of them is still in the clients');
      const during = await roundTrips(20);
      console.log(
        `      (connect + 1 KiB echo, median: ${median(before).toFixed(1)} ms before the pushes, ` +
          `${median(onset).toFixed(1)} ms as they stall, ${median(during).toFixed(1)} ms once stalled, ` +
          `worst ${Math.max(...onset, ...during).toFixed(1)} ms; 0 of 60 failed)`,
      );
      for (const s of stalled) assert.equal(s.destroyed, false, 'a stalled connection is still open');
      const status = await waitForStatus(
        cluster,
        ns,
        name,
        'the counters',
        (p) => (p.status?.connections?.total ?? 0) >= 62,
      );
      assert.equal(status.status?.connections?.failed, 0);
      for (const s of stalled) s.destroy();
    });
});
