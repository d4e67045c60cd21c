// The scale benchmark (issue 24): N PortForwards (BENCH_SCALE_N, default 1000) in N/100 namespaces
// (at most 100, BENCH_SCALE_NAMESPACES), to N/10 kwok pods, through all five target kinds in turn
// (pod, service, deployment, statefulSet, selector), one operator watching every namespace: time to all
// Ready, one more apply -> Ready meanwhile, the operator's RSS at idle and full, the API writes a
// minute in steady state, kube-apiserver's memory and goroutines, every forward probed once with the
// operator running (the restart's floor), and a SIGKILL restart until every forward serves again on
// its old port.
import * as k8s from '@kubernetes/client-node';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { PortForward, Target } from '../../src/api/v1alpha1';
import { TestCluster } from '../testenv/cluster';
import { TestEnvError } from '../testenv/errors';
import { httpGet } from '../testenv/procs';
import { freePort } from '../testenv/procs';
import { applyTimed, ApplyTiming } from './apply-timing';
import { poll } from '../testenv/wait';
import { Targets } from './children';
import { apfCounts, getPodsLoop, operatorIdentity, removeFlowSchema, Sample, within } from './fairness';
import { procStatus } from './proc';
import { freePortRange, OperatorProcess, PortRange, startOperator, tail } from './relays';
import { apiCost, apiWrites } from './sessions';
import { OperatorCounts, scrapeOperator, waitQuantiles } from './queue-metrics';
import { fmt, mdTable, percentile, timed } from './stats';

export interface ScaleBenchOptions {
  cluster: TestCluster;
  targets: Targets;
  defer(what: string, fn: () => Promise<unknown>): void;
  aborted(): boolean;
  logDir: string;
  n: number;
  /** Namespaces (default: N/100, at least 1, at most 100). */
  namespaces?: number;
  /** Whether deploy/flowcontrol.yaml is applied for the run (BENCH_SCALE_FLOWSCHEMA=0: not). */
  flowSchema: boolean;
  progress(line: string): void;
}

const LABEL = 'bench.portforward.dev/scale';

/** Every Event's occurrences so far (its series count), by uid, with who reported it. */
async function eventCounts(cluster: TestCluster): Promise<Map<string, { by: string; count: number }>> {
  const out = new Map<string, { by: string; count: number }>();
  for (const e of (await cluster.core.listEventForAllNamespaces()).items) {
    const by = e.reportingComponent || e.source?.component || 'unknown';
    out.set(e.metadata.uid!, { by, count: Math.max(e.count ?? 1, e.series?.count ?? 1) });
  }
  return out;
}

/** Occurrences between two eventCounts, by reporter: "a 12, b 3", or "none". */
function eventsBetween(
  before: Map<string, { by: string; count: number }>,
  after: Map<string, { by: string; count: number }>,
): string {
  const by = new Map<string, number>();
  for (const [uid, e] of after) {
    const n = e.count - (before.get(uid)?.count ?? 0);
    if (n > 0) by.set(e.by, (by.get(e.by) ?? 0) + n);
  }
  const parts = [...by].sort((a, b) => b[1] - a[1]).map(([who, n]) => `${who} ${n}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}

/** The i-th forward's target: the five kinds in turn, pods of the namespace spread evenly. */
function targetOf(i: number, podsPerNs: number): Target {
  switch (i % 5) {
    case 0:
      return { pod: `p-${Math.floor(i / 5) % podsPerNs}` };
    case 1:
      return { service: 'web' };
    case 2:
      return { deployment: 'web' };
    case 3:
      return { statefulSet: 'web' };
    default:
      return { selector: { matchLabels: { app: 'web' } } };
  }
}

async function createTargets(
  cluster: TestCluster,
  ns: string,
  pods: number,
  echoPort: number,
): Promise<void> {
  await cluster.forwardNamespacePods(ns, 8080, echoPort);
  const labels = { app: 'web' };
  const selector = { matchLabels: labels };
  // replicas 0: the controllers create no pods and adopt none of these (no pod-template-hash label,
  // no ordinal name), while the resolver reads the selectors.
  const template = {
    metadata: { labels },
    spec: { containers: [{ name: 'app', image: 'registry.invalid/fake:latest' }] },
  };
  await Promise.all([
    cluster.core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'web' },
        spec: { selector: labels, ports: [{ port: 8080, targetPort: 8080 }] },
      },
    }),
    cluster.kc.makeApiClient(k8s.AppsV1Api).createNamespacedDeployment({
      namespace: ns,
      body: { metadata: { name: 'web' }, spec: { replicas: 0, selector, template } },
    }),
    cluster.kc.makeApiClient(k8s.AppsV1Api).createNamespacedStatefulSet({
      namespace: ns,
      body: { metadata: { name: 'web' }, spec: { replicas: 0, serviceName: 'web', selector, template } },
    }),
    ...Array.from({ length: pods }, (_, i) =>
      cluster.core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: `p-${i}`, labels },
          spec: {
            nodeName: 'kwok-node-0',
            containers: [
              { name: 'app', image: 'registry.invalid/fake:latest', ports: [{ containerPort: 8080 }] },
            ],
          },
        },
      }),
    ),
  ]);
}

/**
 * Watches the labelled PortForwards (one list, then a watch, as `kubectl wait` does) from before the
 * first create; `ready` resolves with all of them, and the time, once `n` are Ready. Lists of every forward four
 * times a second, as this bench used to poll, cost kube-apiserver more than the operator's own
 * writes at 10,000 (25 MB of JSON per list) and slowed what they measured.
 */
function watchReady(
  o: ScaleBenchOptions,
  n: number,
): {
  started: Promise<void>;
  ready: Promise<{ items: PortForward[]; at: number }>;
  /** When each forward was first seen Ready (performance.now()), by namespace/name. */
  readyAt: Map<string, number>;
  stop(): Promise<void>;
} {
  const list = (): Promise<k8s.KubernetesListObject<k8s.KubernetesObject>> =>
    o.cluster.custom.listClusterCustomObject({
      group: 'portforward.dev',
      version: 'v1alpha1',
      plural: 'portforwards',
      labelSelector: LABEL,
    }) as Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>;
  const informer = k8s.makeInformer<k8s.KubernetesObject>(
    o.cluster.kc,
    '/apis/portforward.dev/v1alpha1/portforwards',
    list,
    LABEL,
  );
  const forwards = (): PortForward[] => informer.list() as unknown as PortForward[];
  const readyAt = new Map<string, number>();
  const seen = (obj: k8s.KubernetesObject): void => {
    const pf = obj as PortForward;
    const key = `${pf.metadata.namespace}/${pf.metadata.name}`;
    if (pf.status?.phase === 'Ready' && !readyAt.has(key)) readyAt.set(key, performance.now());
  };
  informer.on('add', seen);
  informer.on('update', seen);
  let stopped = false;
  const ready = new Promise<{ items: PortForward[]; at: number }>((resolve, reject) => {
    const timer = setTimeout(
      () => finish(new TestEnvError(`not all ${n} PortForwards Ready in 900 s`)),
      900_000,
    );
    const abort = setInterval(() => o.aborted() && finish(new TestEnvError('interrupted')), 500);
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      clearInterval(abort);
      informer.off('add', check);
      informer.off('update', check);
      if (err) reject(err);
      else resolve({ items: forwards(), at: Date.now() });
    };
    const check = (): void => {
      const items = forwards();
      if (items.length >= n && items.filter((p) => p.status?.phase === 'Ready').length === n) finish();
    };
    informer.on('add', check);
    informer.on('update', check);
  });
  ready.catch(() => undefined); // awaited after the creates; an interruption meanwhile is reported there
  // A watch the API server ends (its timeout, a restart) is started again from a new list.
  informer.on('error', () => {
    if (!stopped) setTimeout(() => void informer.start().catch(() => undefined), 1_000);
  });
  return {
    started: informer.start(),
    ready,
    readyAt,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await informer.stop();
    },
  };
}

type Probe = 'served' | 'refused' | 'stalled' | 'failed';

/** Whether a 1-byte echo comes back through the local port: served, refused (no listener), stalled (10 s), failed (an error, or closed with no echo). */
function serves(port: number): Promise<Probe> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('x'));
    const done = (r: Probe): void => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(10_000, () => done('stalled'));
    s.once('data', () => done('served'));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : 'failed'));
    s.once('close', () => done('failed')); // closed with no echo and no error (a tunnel that failed)
  });
}

interface Serving {
  /** Per port, ms from `since` to its first served echo. */
  servedAfter: number[];
  /** Probes that did not serve, by outcome. */
  misses: Record<Exclude<Probe, 'served'>, number>;
}

/**
 * Until every port serves: 50 probes in flight, each taking the next port of a queue; a port that
 * did not serve goes back to the end of it, tried again no sooner than 100 ms later. No batch waits
 * for its slowest probe, so a port's time is when it served, not when its batch ended.
 */
async function allServing(o: ScaleBenchOptions, ports: number[], since: number): Promise<Serving> {
  const out: Serving = { servedAfter: [], misses: { refused: 0, stalled: 0, failed: 0 } };
  const queue = ports.map((port) => ({ port, notBefore: 0 }));
  const deadline = Date.now() + 300_000;
  const prober = async (): Promise<void> => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      if (o.aborted()) throw new TestEnvError('interrupted');
      if (Date.now() > deadline)
        throw new TestEnvError(`${queue.length + 1} forwards not serving after 300 s`);
      const wait = next.notBefore - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const r = await serves(next.port);
      if (r === 'served') out.servedAfter.push(Date.now() - since);
      else {
        out.misses[r]++;
        queue.push({ port: next.port, notBefore: Date.now() + 100 });
      }
    }
  };
  await Promise.all(Array.from({ length: 50 }, prober));
  return out;
}

/** The local ports among `ports` with a listening IPv4 socket now (/proc/net/tcp, state 0A). */
function listeningPorts(ports: Set<number>): Set<number> {
  const out = new Set<number>();
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[3] !== '0A') continue;
    const port = parseInt(f[1].split(':')[1], 16);
    if (ports.has(port)) out.add(port);
  }
  return out;
}

/**
 * Samples, every 100 ms until stopped, when each of `ports` first has a listener again: what the
 * operator itself does after a restart, apart from how fast the probes of allServing get an echo.
 */
function listenersBack(ports: number[], since: number): { stop(): number[] } {
  const want = new Set(ports);
  const boundAfter: number[] = [];
  const tick = (): void => {
    for (const p of listeningPorts(want)) {
      want.delete(p);
      boundAfter.push(Date.now() - since);
    }
    if (want.size === 0) clearInterval(timer);
  };
  const timer = setInterval(tick, 100);
  return {
    stop: () => {
      clearInterval(timer);
      tick();
      return boundAfter;
    },
  };
}

async function operator(
  o: ScaleBenchOptions,
  kubeconfig: string,
  portRange: PortRange,
  label: string,
  metricsPort: number,
): Promise<OperatorProcess> {
  const started = await startOperator({
    kubeconfig,
    namespaces: [], // every namespace: one watch per resource, not one per namespace
    portRange,
    logDir: o.logDir,
    label,
    timeoutMs: 120_000,
    metricsPort,
  });
  if (!started.ok) {
    throw new Error(
      `the operator exited with ${String(started.code)} during start-up:\n    ${tail(started.logFile)}`,
    );
  }
  return started.op;
}

/** The percentiles of create answered -> first seen Ready over the forwards of the burst. */
function createToReady(createdAt: Map<string, number>, readyAt: Map<string, number>): string {
  const ms = [...createdAt].map(([key, at]) => (readyAt.get(key) ?? NaN) - at);
  return `${[50, 90, 99].map((p) => fmt(percentile(ms, p), 0)).join(' / ')} ms (${ms.filter(Number.isFinite).length})`;
}

function applyCell(t: ApplyTiming): string {
  return `${fmt(t.totalMs, 0)} ms (${fmt(t.createMs, 0)}; ${fmt(t.readyMs, 0)})`;
}

function reconcilesCell(before: OperatorCounts, after: OperatorCounts, n: number): string {
  const runs = after.reconciles - before.reconciles;
  return `${runs} (${fmt(runs / n, 2)})`;
}

function latencies(xs: Sample[]): string {
  const ms = xs.map((x) => x.ms);
  const failed = xs.filter((x) => !x.ok).length;
  return `${fmt(percentile(ms, 50), 0)} / ${fmt(percentile(ms, 99), 0)} / ${fmt(Math.max(...ms), 0)} ms (${xs.length}, ${failed})`;
}

export async function scaleBench(o: ScaleBenchOptions): Promise<string> {
  const { cluster, n } = o;
  const nsCount = o.namespaces ?? Math.max(1, Math.min(100, Math.round(n / 100)));
  const podsPerNs = Math.max(1, Math.round(n / 10 / nsCount));
  // An earlier run's namespaces are deleted at its end, and kube-controller-manager empties them
  // afterwards: thousands of deletions (and the watches they wake) would load this run's API server.
  await poll('the namespaces of an earlier scale run to be gone', 900_000, async () => {
    if (o.aborted()) throw new TestEnvError('interrupted');
    const left = (await cluster.core.listNamespace()).items.filter((ns) =>
      ns.metadata?.name?.startsWith('bench-scale-'),
    );
    return left.length === 0;
  });
  const namespaces: string[] = [];
  for (let i = 0; i < nsCount; i++) {
    const ns = await cluster.createNamespace('bench-scale');
    namespaces.push(ns);
    o.defer(`namespace ${ns}`, () => cluster.deleteNamespace(ns));
    o.defer(`kwok forward of ${ns}`, () => cluster.deleteNamespacePodForwards(ns, 8080));
  }
  for (let i = 0; i < nsCount; i += 10)
    await Promise.all(
      namespaces.slice(i, i + 10).map((ns) => createTargets(cluster, ns, podsPerNs, o.targets.ports.echo)),
    );
  const pods = podsPerNs * nsCount;
  await poll(`${pods} pods Running`, 600_000, async () => {
    let running = 0;
    for (const ns of namespaces)
      running += (await cluster.core.listNamespacedPod({ namespace: ns })).items.filter(
        (p) => p.status?.phase === 'Running',
      ).length;
    return running === pods;
  });
  o.progress(`scale: ${nsCount} namespaces, ${pods} pods, a Service, Deployment and StatefulSet each`);

  // The operator as deployed: its ServiceAccount (APF exempts an admin's system:masters), with or
  // without deploy/flowcontrol.yaml; another client's `kubectl get pods` runs once a second throughout.
  const kubeconfig = await operatorIdentity(cluster, o.flowSchema);
  if (o.flowSchema) o.defer('deploy/flowcontrol.yaml', () => Promise.resolve(removeFlowSchema(cluster)));
  const loop = await getPodsLoop(cluster, namespaces[0]);
  o.defer('the kubectl get pods loop', () => loop.stop());
  const portRange = await freePortRange(n + 100);
  const metricsPort = await freePort();
  let op = await operator(o, kubeconfig, portRange, 'operator-scale', metricsPort);
  o.defer('scale operator', () => op.stop());
  await new Promise((r) => setTimeout(r, 3_000)); // settle after start-up, then measure idle
  const idle = procStatus(op.pid);
  const api0 = await apiCost(cluster);
  // The other client's quiet baseline: 15 s with the operator started and idle.
  const q0 = Date.now();
  await new Promise((r) => setTimeout(r, 15_000)); // the measured window
  const quiet = within(loop.samples, q0, Date.now());
  const apf0 = await apfCounts(cluster);

  const watch = watchReady(o, n);
  o.defer('the Ready watch', () => watch.stop());
  await watch.started;
  const t0 = Date.now();
  const specs = Array.from({ length: n }, (_, i) => ({
    ns: namespaces[i % nsCount],
    name: `pf-${i}`,
    target: targetOf(Math.floor(i / nsCount), podsPerNs),
  }));
  // One more PortForward applied halfway through the burst: how long a user's apply waits meanwhile.
  const oneMore = (name: string): Promise<ApplyTiming> =>
    applyTimed(cluster, namespaces[0], name, { target: { pod: 'p-0' }, ports: [{ port: 8080 }] }, 900_000);
  const m0 = await scrapeOperator(metricsPort);
  /** When each create was answered (performance.now()), by namespace/name. */
  const createdAt = new Map<string, number>();
  let midway: Promise<ApplyTiming> | undefined;
  for (let i = 0; i < n; i += 25) {
    if (o.aborted()) throw new TestEnvError('interrupted');
    if (!midway && i >= n / 2) {
      midway = oneMore('one-more-midway');
      midway.catch(() => undefined); // awaited after the creates; a failure is reported there
    }
    await Promise.all(
      specs.slice(i, i + 25).map((s) =>
        cluster.custom
          .createNamespacedCustomObject({
            group: 'portforward.dev',
            version: 'v1alpha1',
            namespace: s.ns,
            plural: 'portforwards',
            body: {
              apiVersion: 'portforward.dev/v1alpha1',
              kind: 'PortForward',
              metadata: { name: s.name, namespace: s.ns, labels: { [LABEL]: 'true' } },
              spec: { target: s.target, ports: [{ port: 8080 }] },
            },
          })
          .then(() => createdAt.set(`${s.ns}/${s.name}`, performance.now())),
      ),
    );
  }
  const created = Date.now() - t0;
  o.progress(`scale: ${n} PortForwards created in ${fmt(created / 1000)} s`);
  const { items: ready, at: readyAt } = await watch.ready.finally(() => watch.stop());
  const readyMs = readyAt - t0;
  const burst = within(loop.samples, t0, Date.now());
  const apf1 = await apfCounts(cluster);
  const m1 = await scrapeOperator(metricsPort);
  o.progress(`scale: all Ready ${fmt(readyMs / 1000)} s after the first create`);

  // Responsive under that load: one more PortForward, /readyz, and a relayed echo.
  const midwayApply = await midway!;
  const { totalMs: afterMs } = await oneMore('one-more');
  const [probe] = await timed(() => httpGet(`http://127.0.0.1:${op.healthPort}/readyz`));

  // Steady state: a minute with no traffic and no change.
  await new Promise((r) => setTimeout(r, 10_000)); // let the last status writes land
  const w0 = await apiWrites(cluster);
  const e0 = await eventCounts(cluster);
  await new Promise((r) => setTimeout(r, 60_000)); // the measured window
  const w1 = await apiWrites(cluster);
  const e1 = await eventCounts(cluster);
  const full = procStatus(op.pid);
  const api1 = await apiCost(cluster);
  await loop.stop();

  // The floor of the restart's serving time: every forward probed the same way with the operator
  // running and its sessions warm. The probes' own path (a new connection through kube-apiserver and
  // kwok each, on the same two cores) is what bounds both passes; the restart's excess over this is the
  // operator's.
  const ports = ready.map((p) => p.status!.endpoints![0].localPort);
  const wp0 = await apiWrites(cluster);
  const w0Pass = Date.now();
  const warmPass = await allServing(o, ports, w0Pass);
  const warmPassMs = Date.now() - w0Pass;
  const wp1 = await apiWrites(cluster);
  o.progress(`scale: every forward probed, operator running, in ${fmt(warmPassMs / 1000)} s`);
  await new Promise((r) => setTimeout(r, 10_000)); // the counter writes the pass moved land first

  // SIGKILL, a new operator, and every forward serving again on the port it had.
  const wk0 = await apiWrites(cluster);
  await op.kill();
  const k0 = Date.now();
  const bound = listenersBack(ports, k0);
  op = await operator(o, kubeconfig, portRange, 'operator-scale-restarted', metricsPort);
  const readyAfter = Date.now() - k0;
  const mk0 = await scrapeOperator(metricsPort);
  // A user's apply while the restarted operator restores every forward and the probes run.
  const duringRestart = oneMore('one-more-restart');
  duringRestart.catch(() => undefined); // awaited below
  const serving = await allServing(o, ports, k0);
  const restartApply = await duringRestart;
  const mk1 = await scrapeOperator(metricsPort);
  const restartMs = Date.now() - k0;
  const boundAfter = bound.stop();
  const wk1 = await apiWrites(cluster);

  const level = o.flowSchema ? 'portforward-operator' : 'workload-low';
  const delta = (k: 'dispatched' | 'rejected'): number => (apf1[level]?.[k] ?? 0) - (apf0[level]?.[k] ?? 0);
  const operatorLevel = { dispatched: delta('dispatched'), rejected: delta('rejected') };
  return mdTable(
    `Scale: ${n} PortForwards in ${nsCount} namespaces to ${pods} kwok pods, all five target kinds, one operator`,
    ['measure', 'value'],
    [
      ['PortForwards created (API calls, 25 at a time)', `${fmt(created / 1000)} s`],
      ['from the first create to all Ready', `${fmt(readyMs / 1000)} s`],
      ['from the last create to all Ready', `${fmt((readyMs - created) / 1000)} s`],
      [
        'every forward of the burst: create answered -> Ready seen, p50 / p90 / p99',
        createToReady(createdAt, watch.readyAt),
      ],
      [
        'one more PortForward applied halfway through the creates: apply -> Ready (create call; create -> Ready)',
        applyCell(midwayApply),
      ],
      ['one more PortForward afterwards: apply -> Ready', `${fmt(afterMs, 0)} ms`],
      ['/readyz answer', `${fmt(probe, 1)} ms`],
      ['operator RSS at idle (started, no PortForward)', `${fmt(idle.rssMiB)} MiB`],
      ['operator RSS with all Ready, after a minute idle', `${fmt(full.rssMiB)} MiB`],
      ['operator peak RSS (VmHWM)', `${fmt(full.hwmMiB)} MiB`],
      [
        'API writes a minute in steady state: PortForwards (status)',
        fmt(w1.portForwards - w0.portForwards, 0),
      ],
      ['API writes a minute in steady state: Events (every client)', fmt(w1.events - w0.events, 0)],
      ['of them, Event occurrences by who reported them', eventsBetween(e0, e1)],
      ['kube-apiserver RSS, before / with all Ready', `${fmt(api0.rssMiB)} / ${fmt(api1.rssMiB)} MiB`],
      ['kube-apiserver goroutines, before / with all Ready', `${api0.goroutines} / ${api1.goroutines}`],
      ["the operator's reconciles, first create -> all Ready (per forward)", reconcilesCell(m0, m1, n)],
      ['keys waiting in its work queue meanwhile, normal priority', waitQuantiles(m0, m1, 'normal')],
      ['one reconcile meanwhile (its status write included)', waitQuantiles(m0, m1, 'reconcile')],
      [
        'the floor: every forward probed once, operator running (sessions warm): all / p50 / p90',
        `${fmt(warmPassMs / 1000)} / ${fmt(percentile(warmPass.servedAfter, 50) / 1000)} / ${fmt(percentile(warmPass.servedAfter, 90) / 1000)} s (not served at first: ${warmPass.misses.refused} / ${warmPass.misses.stalled} / ${warmPass.misses.failed})`,
      ],
      [
        'of it: PortForward writes during that pass (the probes move counters; with a budget, the rest wait for slots)',
        fmt(wp1.portForwards - wp0.portForwards, 0),
      ],
      ['SIGKILL -> every forward serving again on its old port', `${fmt(restartMs / 1000)} s`],
      [
        'of it: SIGKILL -> new operator /readyz; forwards serving again p50 / p90',
        `${fmt(readyAfter / 1000)} s; ${fmt(percentile(serving.servedAfter, 50) / 1000)} / ${fmt(percentile(serving.servedAfter, 90) / 1000)} s`,
      ],
      [
        'of it: forwards listening again (sampled every 100 ms) p50 / p90 / all',
        `${fmt(percentile(boundAfter, 50) / 1000)} / ${fmt(percentile(boundAfter, 90) / 1000)} / ${fmt(Math.max(...boundAfter) / 1000)} s (${boundAfter.length} of ${ports.length})`,
      ],
      [
        'of it: PortForward writes from SIGKILL to all serving (the probes move counters)',
        fmt(wk1.portForwards - wk0.portForwards, 0),
      ],
      [
        'of it: a PortForward applied after /readyz: apply -> Ready (create call; create -> Ready)',
        applyCell(restartApply),
      ],
      [
        'of it: keys waiting in the work queue, restored (low) / changes (normal)',
        `${waitQuantiles(mk0, mk1, 'low')}; ${waitQuantiles(mk0, mk1, 'normal')}`,
      ],
      [
        'probes meanwhile that did not serve: refused / stalled 10 s / failed',
        `${serving.misses.refused} / ${serving.misses.stalled} / ${serving.misses.failed}`,
      ],
      ["another client's `kubectl get pods`, quiet: p50 / p99 / max (calls, failed)", latencies(quiet)],
      ["another client's `kubectl get pods`, first create -> all Ready: p50 / p99 / max", latencies(burst)],
      [
        `the operator's requests in priority level ${level} during the burst (rejected)`,
        `${fmt(operatorLevel.dispatched, 0)} (${fmt(operatorLevel.rejected, 0)})`,
      ],
    ],
    [
      `deploy/flowcontrol.yaml ${o.flowSchema ? 'applied' : 'not applied (BENCH_SCALE_FLOWSCHEMA=0)'}; the operator runs with its ServiceAccount's token and deploy/'s RBAC; the other client is a ServiceAccount allowed to list pods (workload-low), a call a second, the kubectl process included.`,
      'The whole control plane, the bench and the operator share one machine: times are single runs and move by a third or more between runs; memory is steadier.',
    ],
  );
}
