// `make bench`: benchmark programs on the real test control plane. Each prints a table with ratios
// against a baseline measured in the same run (direct TCP, the real kubectl port-forward), and
// reports medians of several runs, since the machines are noisy. Nothing here asserts a time.
//
//   node build/test/bench/run.js [relay] [controller] [scale]     (default: all three)
//   BENCH_RUNS=5 BENCH_SCALE_N=1000
import * as net from 'node:net';
import * as fs from 'node:fs';
import { poll, TestCluster } from '../env/cluster';
import { down, up } from '../env/controlplane';
import { httpGet } from '../env/procs';
import { applyPortForward, waitForStatus } from '../e2e/support';
import { OperatorProcess, startOperator } from '../support/operator';
import {
  echoRoundTrip,
  EchoServer,
  randomPayload,
  startEchoServer,
  startNamedEchoServer,
  whoAnswers,
} from '../support/tcp';
import { WebSocketDialer } from '../../src/relay';
import { encodeData } from '../../src/relay/framing';
import { fmt, median, percentile, table, timed } from './stats';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MiB = 1024 * 1024;

interface Ctx {
  cluster: TestCluster;
  ns: string;
  echo: EchoServer;
  op: OperatorProcess;
}

/** One connection: connect, one byte there and back, close. Milliseconds. */
async function connectRoundTrip(port: number): Promise<number> {
  const [ms] = await timed(() => echoRoundTrip(port, Buffer.from('x'), 10_000));
  return ms;
}

/**
 * The capacity of the path itself: one raw v4.channel.k8s.io WebSocket through the API server and the
 * node, 32 MiB sent as 64 KiB messages and echoed, with no relay and no TCP client. MiB/s.
 */
async function rawWebSocketMiBps(ctx: Ctx): Promise<number> {
  const ws = await new WebSocketDialer(ctx.cluster.kc).dial(
    { namespace: ctx.ns, pod: 'echo', port: 8080 },
    new AbortController().signal,
  );
  const total = 32 * MiB;
  const chunk = 64 * 1024;
  return new Promise<number>((resolve, reject) => {
    let prefixes = 0;
    let got = 0;
    const t0 = process.hrtime.bigint();
    ws.on('message', (m: Buffer) => {
      if (prefixes < 2) {
        prefixes++; // the port prefix on the data and the error channel
        return;
      }
      if (m[0] !== 0) return reject(new Error(`error channel: ${m.subarray(1).toString()}`));
      got += m.length - 1;
      if (got >= total) {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        ws.close();
        resolve((32 / ms) * 1000);
      }
    });
    ws.on('error', reject);
    ws.resume();
    for (let sent = 0; sent < total; sent += chunk) ws.send(encodeData(randomPayload(chunk)));
  });
}

async function relayBench(ctx: Ctx): Promise<string> {
  const { cluster, ns } = ctx;
  await applyPortForward(cluster, ns, 'bench', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
  const pf = await waitForStatus(cluster, ns, 'bench', 'Ready', (p) => p.status?.phase === 'Ready', 20_000);
  const kubectl = await cluster.portForward(['-n', ns, 'pod/echo', ':8080']);
  const paths: [string, number][] = [
    ['direct TCP (no Kubernetes)', ctx.echo.port],
    ['kubectl port-forward', kubectl.localPort],
    ['portforward-operator', pf.status!.endpoints![0].localPort],
  ];
  const results: Record<string, { connect: number[]; p90: number[]; mbps: number[]; conc: number[] }> = {};
  try {
    for (const [name] of paths) results[name] = { connect: [], p90: [], mbps: [], conc: [] };
    for (let run = 0; run < RUNS; run++) {
      for (const [name, port] of paths) {
        const r = results[name];
        await connectRoundTrip(port); // warm-up
        const lat: number[] = [];
        for (let i = 0; i < 30; i++) lat.push(await connectRoundTrip(port));
        r.connect.push(median(lat));
        r.p90.push(percentile(lat, 90));
        const payload = randomPayload(32 * MiB);
        const [ms] = await timed(() => echoRoundTrip(port, payload, 120_000));
        r.mbps.push((32 / ms) * 1000);
        const [cms] = await timed(() =>
          Promise.all(Array.from({ length: 16 }, () => echoRoundTrip(port, randomPayload(4 * MiB), 120_000))),
        );
        r.conc.push(cms / 1000);
      }
    }
  } finally {
    await kubectl.stop();
  }
  const raw: number[] = [];
  for (let run = 0; run < RUNS; run++) raw.push(await rawWebSocketMiBps(ctx));
  const base = results['kubectl port-forward'];
  const rows = paths.map(([name]) => {
    const r = results[name];
    return [
      name,
      fmt(median(r.connect), 2),
      fmt(median(r.p90), 2),
      fmt(median(r.mbps)),
      fmt(median(r.conc), 2),
      `${fmt(median(base.connect) / median(r.connect), 2)}x`,
      `${fmt(median(r.mbps) / median(base.mbps), 2)}x`,
    ];
  });
  rows.push([
    'raw v4 WebSocket, no relay (path capacity)',
    '-',
    '-',
    fmt(median(raw)),
    '-',
    '-',
    `${fmt(median(raw) / median(base.mbps), 2)}x`,
  ]);
  return table(
    `Relay: connect + 1-byte echo (30 connections), one 32 MiB echo, 16 concurrent 4 MiB echoes; median of ${RUNS} runs`,
    [
      'path',
      'connect p50 ms',
      'connect p90 ms',
      '32 MiB echo MiB/s',
      '16x4 MiB s',
      'connect vs kubectl',
      'MiB/s vs kubectl',
    ],
    rows,
  );
}

async function controllerBench(ctx: Ctx): Promise<string> {
  const { cluster, ns } = ctx;
  const rows: string[][] = [];
  // apply -> Ready
  const ready: number[] = [];
  for (let i = 0; i < 10; i++) {
    const [ms] = await timed(async () => {
      await applyPortForward(cluster, ns, `lat-${i}`, { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
      await waitForStatus(cluster, ns, `lat-${i}`, 'Ready', (p) => p.status?.phase === 'Ready', 30_000);
    });
    ready.push(ms);
  }
  rows.push([
    'kubectl apply -> status Ready (10 PortForwards)',
    fmt(median(ready), 0),
    fmt(Math.max(...ready), 0),
    '5000',
  ]);

  // a node-side failure -> status.lastError
  await cluster.createPod(ns, 'no-socat', [
    { port: 5432, command: ['socat-not-installed', '-', 'TCP4:127.0.0.1:5432'] },
  ]);
  await applyPortForward(cluster, ns, 'fail', { target: { pod: 'no-socat' }, ports: [{ port: 5432 }] });
  const failPort = (await waitForStatus(cluster, ns, 'fail', 'Ready', (p) => p.status?.phase === 'Ready'))
    .status!.endpoints![0].localPort;
  const errLat: number[] = [];
  for (let i = 0; i < RUNS + 2; i++) {
    const before = (await waitForStatus(cluster, ns, 'fail', 'status', () => true)).status?.lastError?.time;
    const [ms] = await timed(async () => {
      const s = net.connect(failPort, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('connect', () => s.write('x'));
      await waitForStatus(
        cluster,
        ns,
        'fail',
        'lastError',
        (p) => !!p.status?.lastError && p.status.lastError.time !== before,
        10_000,
      );
      s.destroy();
    });
    errLat.push(ms);
    await new Promise((r) => setTimeout(r, 1100)); // lastError.time has second resolution in the API
  }
  rows.push([
    'failed connection -> status.lastError',
    fmt(median(errLat), 0),
    fmt(Math.max(...errLat), 0),
    '2000',
  ]);

  // delete the chosen pod -> new connections on another pod
  const a = await startNamedEchoServer('a');
  const b = await startNamedEchoServer('b');
  const moves: number[] = [];
  try {
    await cluster.core.createNamespacedService(ns, {
      metadata: { name: 'pair' },
      spec: { selector: { app: 'pair' }, ports: [{ port: 8080 }] },
    });
    await cluster.createPod(ns, 'pa', [{ port: 8080, targetPort: a.port }], { app: 'pair' });
    await cluster.createPod(ns, 'pb', [{ port: 8080, targetPort: b.port }], { app: 'pair' });
    await applyPortForward(cluster, ns, 'pair', { target: { service: 'pair' }, ports: [{ port: 8080 }] });
    const port = (await waitForStatus(cluster, ns, 'pair', 'Ready', (p) => p.status?.phase === 'Ready'))
      .status!.endpoints![0].localPort;
    for (let i = 0; i < RUNS + 2; i++) {
      const chosen = await whoAnswers(port);
      const pod = chosen === 'a' ? 'pa' : 'pb';
      const [ms] = await timed(async () => {
        await cluster.core.deleteNamespacedPod(pod, ns);
        await poll('the other pod to answer', 20_000, async () => (await whoAnswers(port)) !== chosen);
      });
      moves.push(ms);
      await poll('the pod to be gone', 20_000, () =>
        cluster.core.readNamespacedPod(pod, ns).then(
          () => false,
          () => true,
        ),
      );
      await cluster.createPod(ns, pod, [{ port: 8080, targetPort: chosen === 'a' ? a.port : b.port }], {
        app: 'pair',
      });
    }
  } finally {
    await a.close();
    await b.close();
  }
  rows.push([
    'delete the chosen pod -> new connections served by another',
    fmt(median(moves), 0),
    fmt(Math.max(...moves), 0),
    '2000',
  ]);

  // SIGKILL the operator -> every forward served again on its old port
  const names = Array.from({ length: 20 }, (_, i) => `restart-${i}`);
  for (const n of names)
    await applyPortForward(cluster, ns, n, { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
  const ports: number[] = [];
  for (const n of names)
    ports.push(
      (await waitForStatus(cluster, ns, n, 'Ready', (p) => p.status?.phase === 'Ready', 30_000)).status!
        .endpoints![0].localPort,
    );
  const restarts: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const range = ctx.op.portRange;
    await ctx.op.kill();
    const [ms] = await timed(async () => {
      ctx.op = await startOperator({
        kubeconfig: cluster.state.kubeconfig,
        namespaces: [ns],
        portRange: range,
        extraArgs: ['--status-interval=5s'],
      });
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
  rows.push([
    `SIGKILL + restart -> all ${names.length} forwards served on their old ports`,
    fmt(median(restarts), 0),
    fmt(Math.max(...restarts), 0),
    '5000',
  ]);
  return table(
    `Controller latencies (ms), median and worst of the runs, against the issue's target`,
    ['what', 'median ms', 'worst ms', 'target ms'],
    rows,
  );
}

function rssMiB(pid: number): { rss: number; hwm: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

async function scaleBench(ctx: Ctx): Promise<string> {
  const { cluster } = ctx;
  const n = Number(process.env.BENCH_SCALE_N ?? 1000);
  const ns = await cluster.createNamespace('bench-scale');
  const echo = await startEchoServer();
  const op = await startOperator({
    kubeconfig: cluster.state.kubeconfig,
    namespaces: [ns],
    portRange: { min: 40000, max: 40000 + n + 100 },
    extraArgs: ['--status-interval=5s', '--log-level=info'],
  });
  try {
    await cluster.createPod(ns, 'echo', [{ port: 8080, targetPort: echo.port }]);
    const idle = rssMiB(op.child.pid!);
    const t0 = Date.now();
    const names = Array.from({ length: n }, (_, i) => `pf-${i}`);
    for (let i = 0; i < names.length; i += 25) {
      await Promise.all(
        names
          .slice(i, i + 25)
          .map((name) =>
            applyPortForward(cluster, ns, name, { target: { pod: 'echo' }, ports: [{ port: 8080 }] }),
          ),
      );
    }
    const created = Date.now() - t0;
    let readyCount = 0;
    await poll(`all ${n} PortForwards Ready`, 600_000, async () => {
      const list = (
        await cluster.custom.listNamespacedCustomObject('portforward.dev', 'v1alpha1', ns, 'portforwards')
      ).body as {
        items: { status?: { phase?: string } }[];
      };
      readyCount = list.items.filter((p) => p.status?.phase === 'Ready').length;
      await new Promise((r) => setTimeout(r, 250));
      return readyCount === n;
    });
    const allReady = Date.now() - t0;
    const loaded = rssMiB(op.child.pid!);
    // Responsive under that load: one more PortForward, /readyz, and a relayed echo.
    const [oneMore] = await timed(async () => {
      await applyPortForward(cluster, ns, 'one-more', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
      await waitForStatus(cluster, ns, 'one-more', 'Ready', (p) => p.status?.phase === 'Ready', 60_000);
    });
    const [probe] = await timed(() => httpGet(`http://127.0.0.1:${op.healthPort}/readyz`));
    const some = await waitForStatus(cluster, ns, 'pf-500', 'Ready', (p) => p.status?.phase === 'Ready');
    const [echoMs] = await timed(() =>
      echoRoundTrip(some.status!.endpoints![0].localPort, randomPayload(64 * 1024)),
    );
    return table(
      `Scale: ${n} PortForwards in one namespace, one operator`,
      ['measure', 'value'],
      [
        ['PortForwards created (API calls, 25 at a time)', `${fmt(created / 1000)} s`],
        ['from the first create to all Ready', `${fmt(allReady / 1000)} s`],
        ['operator RSS before', `${fmt(idle.rss)} MiB`],
        ['operator RSS with all Ready (listeners bound)', `${fmt(loaded.rss)} MiB`],
        ['operator peak RSS (VmHWM)', `${fmt(loaded.hwm)} MiB`],
        ['one more PortForward: apply -> Ready', `${fmt(oneMore, 0)} ms`],
        ['/readyz answer', `${fmt(probe, 1)} ms`],
        ['64 KiB echo through forward pf-500', `${fmt(echoMs, 1)} ms`],
      ],
    );
  } finally {
    await op.stop();
    await echo.close();
    await cluster.deleteNamespace(ns);
  }
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const all = wanted.length === 0;
  const { started } = await up((l) => console.error(`[testenv] ${l}`));
  const cluster = TestCluster.connect();
  const ns = await cluster.createNamespace('bench');
  const echo = await startEchoServer();
  await cluster.createPod(ns, 'echo', [{ port: 8080, targetPort: echo.port }]);
  const ctx: Ctx = {
    cluster,
    ns,
    echo,
    op: await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      extraArgs: ['--status-interval=5s', '--log-level=info'],
    }),
  };
  try {
    console.log(
      `portforward-operator benchmarks, Kubernetes ${cluster.state.versions.kubernetes}, kwok ${cluster.state.versions.kwok}, Node ${process.version}, ${new Date().toISOString()}\n`,
    );
    if (all || wanted.includes('relay')) console.log(`${await relayBench(ctx)}\n`);
    if (all || wanted.includes('controller')) console.log(`${await controllerBench(ctx)}\n`);
    if (all || wanted.includes('scale')) console.log(`${await scaleBench(ctx)}\n`);
  } finally {
    await ctx.op.stop();
    await echo.close();
    await cluster.deleteNamespace(ns);
    if (started) await down(() => undefined);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('bench failed:', err);
    process.exit(1);
  },
);
