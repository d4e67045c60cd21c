// The scale benchmark: N PortForwards (BENCH_SCALE_N, default 1000) in one namespace, one operator:
// time to all Ready, operator memory, and whether it stays responsive under that load.
import * as fs from 'node:fs';
import { TestCluster } from '../testenv/cluster';
import { TestEnvError } from '../testenv/errors';
import { httpGet } from '../testenv/procs';
import { applyPortForward, waitForStatus } from '../testenv/portforward';
import { echoRoundTrip, randomPayload } from '../testenv/peers';
import { poll } from '../testenv/wait';
import { Targets } from './children';
import { freePortRange, startOperator, tail } from './relays';
import { fmt, mdTable, timed } from './stats';

export interface ScaleBenchOptions {
  cluster: TestCluster;
  targets: Targets;
  defer(what: string, fn: () => Promise<unknown>): void;
  aborted(): boolean;
  logDir: string;
  n: number;
  progress(line: string): void;
}

function rssMiB(pid: number): { rss: number; hwm: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

export async function scaleBench(o: ScaleBenchOptions): Promise<string> {
  const { cluster, n } = o;
  const ns = await cluster.createNamespace('bench-scale');
  o.defer(`namespace ${ns}`, () => cluster.deleteNamespace(ns));
  const started = await startOperator({
    kubeconfig: cluster.state.kubeconfig,
    namespaces: [ns],
    portRange: await freePortRange(n + 100),
    logDir: o.logDir,
    label: 'operator-scale',
  });
  if (!started.ok) {
    throw new Error(
      `the operator exited with ${String(started.code)} during start-up:\n    ${tail(started.logFile)}`,
    );
  }
  const op = started.op;
  o.defer('scale operator', () => op.stop());
  await cluster.createPod(ns, 'echo', [{ port: 8080, targetPort: o.targets.ports.echo }]);
  const idle = rssMiB(op.pid);
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
  o.progress(`scale: ${n} PortForwards created in ${fmt(created / 1000)} s`);
  let readyCount = 0;
  let lastList = 0;
  await poll(`all ${n} PortForwards Ready`, 600_000, async () => {
    if (o.aborted()) throw new TestEnvError('interrupted'); // poll() gives up on a TestEnvError at once
    if (Date.now() - lastList < 250) return false; // a list of N objects: not more than four a second
    lastList = Date.now();
    const list = (await cluster.custom.listNamespacedCustomObject({
      group: 'portforward.dev',
      version: 'v1alpha1',
      namespace: ns,
      plural: 'portforwards',
    })) as { items: { status?: { phase?: string } }[] };
    readyCount = list.items.filter((p) => p.status?.phase === 'Ready').length;
    return readyCount === n;
  });
  const allReady = Date.now() - t0;
  const loaded = rssMiB(op.pid);
  // Responsive under that load: one more PortForward, /readyz, and a relayed echo.
  const [oneMore] = await timed(async () => {
    await applyPortForward(cluster, ns, 'one-more', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    await waitForStatus(cluster, ns, 'one-more', 'Ready', (p) => p.status?.phase === 'Ready', 60_000);
  });
  const [probe] = await timed(() => httpGet(`http://127.0.0.1:${op.healthPort}/readyz`));
  const probeName = `pf-${Math.floor(n / 2)}`;
  const some = await waitForStatus(cluster, ns, probeName, 'Ready', (p) => p.status?.phase === 'Ready');
  const [echoMs] = await timed(() =>
    echoRoundTrip(some.status!.endpoints![0].localPort, randomPayload(64 * 1024)),
  );
  return mdTable(
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
      [`64 KiB echo through forward ${probeName}`, `${fmt(echoMs, 1)} ms`],
    ],
  );
}
