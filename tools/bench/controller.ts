// The controller benchmark: how fast the operator reacts (apply -> Ready, a node-side failure ->
// status.lastError, a deleted pod -> another pod, a SIGKILL -> every forward back on its old port),
// against the targets of the issues. One operator (its default transport) in a namespace of its own.
import * as net from 'node:net';
import { TestCluster } from '../testenv/cluster';
import { applyPortForward, waitForStatus } from '../testenv/portforward';
import { echoRoundTrip, startNamedEchoServer, whoAnswers } from '../testenv/peers';
import { poll } from '../testenv/wait';
import { Targets } from './children';
import { freePortRange, OperatorProcess, startOperator, tail } from './relays';
import { mdTable, spread, timed } from './stats';

export interface ControllerBenchOptions {
  cluster: TestCluster;
  targets: Targets;
  defer(what: string, fn: () => Promise<unknown>): void;
  aborted(): boolean;
  logDir: string;
  runs: number;
  progress(line: string): void;
}

async function operator(
  o: ControllerBenchOptions,
  ns: string,
  range: { min: number; max: number },
): Promise<OperatorProcess> {
  const s = await startOperator({
    kubeconfig: o.cluster.state.kubeconfig,
    namespaces: [ns],
    portRange: range,
    logDir: o.logDir,
    label: 'operator-controller',
  });
  if (!s.ok)
    throw new Error(`the operator exited with ${String(s.code)} during start-up:\n    ${tail(s.logFile)}`);
  return s.op;
}

const ready = (cluster: TestCluster, ns: string, name: string, timeoutMs = 30_000) =>
  waitForStatus(cluster, ns, name, 'Ready', (p) => p.status?.phase === 'Ready', timeoutMs);

export async function controllerBench(o: ControllerBenchOptions): Promise<string> {
  const { cluster } = o;
  const ns = await cluster.createNamespace('bench-controller');
  o.defer(`namespace ${ns}`, () => cluster.deleteNamespace(ns));
  await cluster.createPod(ns, 'echo', [{ port: 8080, targetPort: o.targets.ports.echo }]);
  const range = await freePortRange(60);
  let op = await operator(o, ns, range);
  o.defer('controller operator', () => op.stop());
  const rows: string[][] = [];
  const row = (what: string, xs: number[], target: string): void => {
    rows.push([what, spread(xs, 0), target]);
    o.progress(`controller: ${what}: ${spread(xs, 0)} ms`);
  };

  const readyMs: number[] = [];
  for (let i = 0; i < 10; i++) {
    const [ms] = await timed(async () => {
      await applyPortForward(cluster, ns, `lat-${i}`, { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
      await ready(cluster, ns, `lat-${i}`);
    });
    readyMs.push(ms);
  }
  row('kubectl apply -> status Ready (10 PortForwards)', readyMs, '5000');

  if (o.aborted()) throw new Error('interrupted');
  // A node-side failure -> status.lastError.
  await cluster.createPod(ns, 'no-socat', [
    { port: 5432, command: ['socat-not-installed', '-', 'TCP4:127.0.0.1:5432'] },
  ]);
  await applyPortForward(cluster, ns, 'fail', { target: { pod: 'no-socat' }, ports: [{ port: 5432 }] });
  const failPort = (await ready(cluster, ns, 'fail')).status!.endpoints![0].localPort;
  const errLat: number[] = [];
  for (let i = 0; i < o.runs + 2; i++) {
    const before = (await waitForStatus(cluster, ns, 'fail', 'status', () => true)).status?.lastError?.time;
    const [ms] = await timed(async () => {
      const s = net.connect(failPort, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('connect', () => s.write('x'));
      try {
        await waitForStatus(
          cluster,
          ns,
          'fail',
          'lastError',
          (p) => !!p.status?.lastError && p.status.lastError.time !== before,
          10_000,
        );
      } finally {
        s.destroy();
      }
    });
    errLat.push(ms);
    // lastError.time has second resolution: the next failure must fall in a later second to be seen.
    await new Promise((r) => setTimeout(r, 1100));
  }
  row('failed connection -> status.lastError', errLat, '2000');

  if (o.aborted()) throw new Error('interrupted');
  // Delete the chosen pod -> new connections on another pod.
  const a = await startNamedEchoServer('a');
  const b = await startNamedEchoServer('b');
  o.defer('named echo servers', () => Promise.all([a.close(), b.close()]));
  await cluster.core.createNamespacedService({
    namespace: ns,
    body: { metadata: { name: 'pair' }, spec: { selector: { app: 'pair' }, ports: [{ port: 8080 }] } },
  });
  await cluster.createPod(ns, 'pa', [{ port: 8080, targetPort: a.port }], { app: 'pair' });
  await cluster.createPod(ns, 'pb', [{ port: 8080, targetPort: b.port }], { app: 'pair' });
  await applyPortForward(cluster, ns, 'pair', { target: { service: 'pair' }, ports: [{ port: 8080 }] });
  const pairPort = (await ready(cluster, ns, 'pair')).status!.endpoints![0].localPort;
  const moves: number[] = [];
  for (let i = 0; i < o.runs + 2; i++) {
    const chosen = await whoAnswers(pairPort);
    const pod = chosen === 'a' ? 'pa' : 'pb';
    const [ms] = await timed(async () => {
      await cluster.core.deleteNamespacedPod({ name: pod, namespace: ns });
      await poll('the other pod to answer', 20_000, async () => (await whoAnswers(pairPort)) !== chosen);
    });
    moves.push(ms);
    await poll('the pod to be gone', 20_000, () =>
      cluster.core.readNamespacedPod({ name: pod, namespace: ns }).then(
        () => false,
        () => true,
      ),
    );
    await cluster.createPod(ns, pod, [{ port: 8080, targetPort: chosen === 'a' ? a.port : b.port }], {
      app: 'pair',
    });
  }
  row('delete the chosen pod -> new connections served by another', moves, '2000');

  if (o.aborted()) throw new Error('interrupted');
  // SIGKILL the operator -> every forward served again on its old port.
  const names = Array.from({ length: 20 }, (_, i) => `restart-${i}`);
  for (const n of names)
    await applyPortForward(cluster, ns, n, { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
  const ports: number[] = [];
  for (const n of names) ports.push((await ready(cluster, ns, n)).status!.endpoints![0].localPort);
  const restarts: number[] = [];
  for (let i = 0; i < o.runs; i++) {
    await op.kill();
    const [ms] = await timed(async () => {
      op = await operator(o, ns, range);
      for (const p of ports)
        await poll(`port ${p} to echo`, 30_000, () =>
          echoRoundTrip(p, Buffer.from('x'), 2000).then(
            () => true,
            () => false,
          ),
        );
    });
    restarts.push(ms);
  }
  row(`SIGKILL + restart -> all ${names.length} forwards served on their old ports`, restarts, '5000');
  return mdTable(
    `Controller latencies, ms: median (min-max) of ${o.runs} runs (10 for apply -> Ready, ${o.runs + 2} for the failure and the move)`,
    ['what', 'ms', 'target ms'],
    rows,
  );
}
