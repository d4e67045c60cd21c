// What an idle pre-dialed SPDY session costs others (issue 24, ADR 14): kube-apiserver's memory,
// goroutines and CPU (its own /metrics) and the kwok node's (from /proc: kwok serves no process
// metrics here), with 0, a tenth and all of N sessions held open to N kwok pods, per session; beside
// what kubectl port-forward's one session costs (K kubectl processes, each holding the session it
// dials at start). Also the connect -> first byte of a warm forward (session open) against a cold one
// (the connection dials its session).
import * as https from 'node:https';
import * as net from 'node:net';
import { silentLogger } from '../../src/relay/logger';
import { dialSpdy } from '../../src/relay/spdy/dial';
import { SpdyTransport, type SpdyTransportOptions } from '../../src/relay/spdy/spdy-transport';
import { createRelayEngine } from '../../src/relay/engine/engine';
import { TestCluster } from '../testenv/cluster';
import { readState } from '../testenv/state';
import { startEchoServer } from '../testenv/peers';
import { poll } from '../testenv/wait';
import { cpuSeconds, procStatus } from './proc';
import { startKubectl } from './relays';
import { fmt, median, mdTable, percentile } from './stats';

export interface ApiCost {
  rssMiB: number;
  goroutines: number;
  cpuS: number;
  kwokRssMiB: number;
  kwokThreads: number;
  kwokCpuS: number;
}

/** kube-apiserver's /metrics, with the TLS and credentials of the kubeconfig (cluster-admin). */
export async function apiMetricsText(cluster: TestCluster): Promise<string> {
  const o: https.RequestOptions = {};
  await cluster.kc.applyToHTTPSOptions(o);
  return new Promise<string>((resolve, reject) => {
    const req = https.get(`${cluster.kc.getCurrentCluster()!.server}/metrics`, o, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
}

async function apiMetrics(cluster: TestCluster): Promise<Record<string, number>> {
  const text = await apiMetricsText(cluster);
  const out: Record<string, number> = {};
  for (const name of ['process_resident_memory_bytes', 'go_goroutines', 'process_cpu_seconds_total']) {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    out[name] = m ? Number(m[1]) : NaN;
  }
  return out;
}

/**
 * Writes kube-apiserver has served so far on PortForwards (their status included: only the operator
 * writes it once they exist) and on Events (every client's, kube-controller-manager's too), from
 * apiserver_request_total.
 */
export async function apiWrites(cluster: TestCluster): Promise<{ portForwards: number; events: number }> {
  const out = { portForwards: 0, events: 0 };
  for (const line of (await apiMetricsText(cluster)).split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (!/verb="(POST|PUT|PATCH|DELETE|APPLY)"/.test(line)) continue;
    const resource = /resource="([^"]*)"/.exec(line)?.[1];
    const n = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (resource === 'portforwards') out.portForwards += n;
    else if (resource === 'events') out.events += n;
  }
  return out;
}

function kwokPid(): number | undefined {
  return readState()?.processes.find((p) => p.name === 'kwok')?.pid;
}

export async function apiCost(cluster: TestCluster): Promise<ApiCost> {
  const m = await apiMetrics(cluster);
  const pid = kwokPid();
  const k = pid ? procStatus(pid) : { rssMiB: NaN, threads: NaN };
  return {
    rssMiB: m.process_resident_memory_bytes / 2 ** 20,
    goroutines: m.go_goroutines,
    cpuS: m.process_cpu_seconds_total,
    kwokRssMiB: k.rssMiB,
    kwokThreads: k.threads,
    kwokCpuS: pid ? cpuSeconds(pid) : NaN,
  };
}

/** Memory and goroutines after settling; CPU as a rate (s/s) over `idleS` seconds with nothing to do. */
async function idleCost(cluster: TestCluster, idleS: number): Promise<ApiCost> {
  const c0 = await settledCost(cluster);
  await new Promise((r) => setTimeout(r, idleS * 1000)); // CPU over an idle window: the bench's measure
  const c1 = await apiCost(cluster);
  return { ...c0, cpuS: (c1.cpuS - c0.cpuS) / idleS, kwokCpuS: (c1.kwokCpuS - c0.kwokCpuS) / idleS };
}

/** Settles for a few seconds (the Go GC and goroutines of finished dials), then samples. */
async function settledCost(cluster: TestCluster, settleMs = 5_000): Promise<ApiCost> {
  await new Promise((r) => setTimeout(r, settleMs)); // a bench settling, not a readiness wait
  return apiCost(cluster);
}

export interface SessionCostOptions {
  cluster: TestCluster;
  defer(what: string, fn: () => Promise<unknown>): void;
  /** Sessions at the top step (one per pod). */
  n: number;
  /** kubectl port-forward processes for the comparison. */
  kubectls: number;
  /** Where kubectl's output goes. */
  logDir: string;
  progress(line: string): void;
}

export async function sessionCostBench(o: SessionCostOptions): Promise<string> {
  const { cluster, n } = o;
  const ns = await cluster.createNamespace('bench-sessions');
  o.defer(`namespace ${ns}`, () => cluster.deleteNamespace(ns));
  const echo = await startEchoServer();
  o.defer('echo server', () => echo.close());
  await cluster.forwardNamespacePods(ns, 8080, echo.port);
  o.defer('kwok forward', () => cluster.deleteNamespacePodForwards(ns, 8080));
  const names = Array.from({ length: n }, (_, i) => `p-${i}`);
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      names.slice(i, i + 50).map((name) =>
        cluster.core.createNamespacedPod({
          namespace: ns,
          body: {
            metadata: { name },
            spec: {
              nodeName: 'kwok-node-0',
              containers: [
                { name: 'app', image: 'registry.invalid/fake:latest', ports: [{ containerPort: 8080 }] },
              ],
            },
          },
        }),
      ),
    );
  }
  await poll(`${n} pods Running`, 300_000, async () => {
    const l = await cluster.core.listNamespacedPod({ namespace: ns });
    return l.items.filter((p) => p.status?.phase === 'Running').length === n;
  });
  o.progress(`sessions: ${n} kwok pods Running`);

  const transport = (extra: Partial<SpdyTransportOptions>): SpdyTransport =>
    new SpdyTransport({
      name: 'spdy',
      logger: silentLogger,
      ...extra,
      dial: (pod, signal) =>
        dialSpdy(
          { namespace: pod.namespace, pod: pod.name },
          {
            server: cluster.kc.getCurrentCluster()!.server,
            applyOptions: (opts) => cluster.kc.applyToHTTPSOptions(opts),
            signal,
          },
        ),
    });
  const idleS = 30;
  const steps = [0, Math.round(n / 10), n];
  const rows: string[][] = [];
  const costs: ApiCost[] = [];
  const t = transport({});
  o.defer('session transport', () => t.close());
  for (const count of steps) {
    t.retain(names.slice(0, count).map((name) => ({ namespace: ns, name })));
    await poll(`${count} sessions open`, 300_000, () =>
      Promise.resolve(t.sessions().filter((s) => s.open).length === count),
    );
    costs.push(await idleCost(cluster, idleS));
    o.progress(
      `sessions: ${count} open: apiserver ${fmt(costs.at(-1)!.rssMiB)} MiB, ${costs.at(-1)!.goroutines} goroutines`,
    );
  }
  const fmtCost = (c: ApiCost): string[] => [
    `${fmt(c.rssMiB)} MiB`,
    String(c.goroutines),
    `${fmt(c.cpuS * 1000, 1)} ms/s`,
    `${fmt(c.kwokRssMiB)} MiB`,
    String(c.kwokThreads),
    `${fmt(c.kwokCpuS * 1000, 1)} ms/s`,
  ];
  steps.forEach((s, i) => rows.push([`${s} operator sessions`, ...fmtCost(costs[i])]));
  const per = (a: ApiCost, b: ApiCost, k: number): string[] => [
    `${fmt(((b.rssMiB - a.rssMiB) * 1024) / k, 1)} KiB`,
    fmt((b.goroutines - a.goroutines) / k, 2),
    `${fmt(((b.cpuS - a.cpuS) * 1e6) / k, 1)} µs/s`,
    `${fmt(((b.kwokRssMiB - a.kwokRssMiB) * 1024) / k, 1)} KiB`,
    fmt((b.kwokThreads - a.kwokThreads) / k, 3),
    `${fmt(((b.kwokCpuS - a.kwokCpuS) * 1e6) / k, 1)} µs/s`,
  ];
  rows.push(['per operator session (0 -> N)', ...per(costs[0], costs[2], n)]);
  t.retain([]);
  await poll('operator sessions closed', 60_000, () => Promise.resolve(t.sessions().length === 0));

  // kubectl: K processes, each holding the one session it dialed at start.
  const base = await idleCost(cluster, idleS);
  const kubectls = [];
  for (let i = 0; i < o.kubectls; i++) {
    const k = await startKubectl({
      kubectl: cluster.state.kubectl,
      kubeconfig: cluster.state.kubeconfig,
      namespace: ns,
      pod: names[i % n],
      ports: [8080],
      logDir: o.logDir,
      label: `kubectl-session-${i}`,
    });
    kubectls.push(k);
    o.defer(`kubectl ${i}`, () => k.stop());
  }
  const withK = await idleCost(cluster, idleS);
  rows.push([`per kubectl port-forward session (${o.kubectls} processes)`, ...per(base, withK, o.kubectls)]);
  for (const k of kubectls) await k.stop();

  // Connect -> first echoed byte through the relay engine: warm (a session open) and cold (each
  // connection dials its own: no warm session kept, and none left idle after it).
  const connectMs = async (opts: Partial<SpdyTransportOptions>): Promise<number[]> => {
    const tr = transport(opts);
    const engine = createRelayEngine({ transport: tr });
    try {
      const [st] = await engine.ensure(`${ns}/c`, {
        listeners: [{ id: 'e', address: '127.0.0.1', localPort: 0, remotePort: 8080 }],
        targets: [{ namespace: ns, name: names[0] }],
      });
      const out: number[] = [];
      for (let i = 0; i < 40; i++) {
        if (opts.warmSessions !== 0)
          await poll('a warm session', 10_000, () =>
            Promise.resolve(tr.warm({ namespace: ns, name: names[0] })),
          );
        out.push(await firstByte(st.localPort));
      }
      return out;
    } finally {
      await engine.close();
      await tr.close();
    }
  };
  const warm = await connectMs({});
  const cold = await connectMs({ warmSessions: 0, maxWarmSessions: 1 });
  rows.push([
    'connect -> first byte, warm forward (p50 / p99 of 40)',
    `${fmt(median(warm), 2)} / ${fmt(percentile(warm, 99), 2)} ms`,
    '',
    '',
    '',
    '',
    '',
  ]);
  rows.push([
    'connect -> first byte, cold forward (p50 / p99 of 40)',
    `${fmt(median(cold), 2)} / ${fmt(percentile(cold, 99), 2)} ms`,
    '',
    '',
    '',
    '',
    '',
  ]);
  return mdTable(
    `Idle pre-dialed sessions: what each costs kube-apiserver and the kwok node (${n} pods)`,
    [
      'sessions held open',
      'apiserver RSS',
      'apiserver goroutines',
      'apiserver CPU',
      'kwok RSS',
      'kwok threads',
      'kwok CPU',
    ],
    rows,
    [
      `kube-apiserver from its /metrics (process_resident_memory_bytes, go_goroutines, process_cpu_seconds_total); kwok from /proc (it serves no process metrics here). CPU: over ${idleS} s with the sessions idle (PINGs every 10 s).`,
      'Per session: the difference between the top step and none, divided by the sessions. The whole control plane and the bench share one machine: memory is the steadier figure.',
    ],
  );
}

/** Connect to the listener, send a byte, ms until it comes back. */
function firstByte(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const s = net.connect(port, '127.0.0.1', () => s.write('x'));
    s.once('data', () => {
      resolve(Number(process.hrtime.bigint() - t0) / 1e6);
      s.destroy();
    });
    s.once('error', reject);
  });
}
