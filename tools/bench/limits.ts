// The relay's buffer limits, measured rather than guessed: the relay as the operator runs it (on its
// worker thread, SPDY transport, the test control plane's kwok pod) under each pair of limits, for a
// pull and a push of one stream and concurrent echoes (which share sessions, so one stream's buffer
// limit can hold its session's others). Configurations rotate from run to run; each cell is the
// median of the runs with the spread.
//
// Caveats: CPU is this process's (the worker thread, plus this thread waiting on its children);
// "held" is the most the relay reported holding in memory for the session, sampled every 50 ms.
import { kubeAccess, startRelayWorker } from '../../src/relay';
import type { RelayWorker } from '../../src/relay';
import { silentLogger } from '../../src/relay/logger';
import type { TestCluster } from '../testenv/cluster';
import type { LoadClient, Targets } from './children';
import { fmt, mdTable, spread } from './stats';

export interface LimitsBenchOptions {
  cluster: TestCluster;
  targets: Targets;
  client: LoadClient;
  defer(what: string, fn: () => Promise<unknown>): void;
  aborted(): boolean;
  runs: number;
  streamBytes: number;
  echoBytes: number;
  concurrency: number;
  progress(line: string): void;
}

interface Limits {
  streamHighWaterMark: number;
  socketBufferBytes: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GRID: Limits[] = [64 * KiB, 256 * KiB, MiB].flatMap((streamHighWaterMark) =>
  [64 * KiB, 256 * KiB].map((socketBufferBytes) => ({ streamHighWaterMark, socketBufferBytes })),
);
const PORTS = { source: 8081, sink: 8082, echo: 8084 } as const;
const KEY = 'bench/limits';

function label(l: Limits): string {
  const k = (n: number): string => (n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`);
  return `stream ${k(l.streamHighWaterMark)}, socket ${k(l.socketBufferBytes)}`;
}

export async function limitsBench(o: LimitsBenchOptions): Promise<string> {
  const { cluster } = o;
  const ns = await cluster.createNamespace('bench-limits');
  o.defer(`namespace ${ns}`, () => cluster.deleteNamespace(ns));
  await cluster.createPod(
    ns,
    'target',
    (Object.keys(PORTS) as (keyof typeof PORTS)[]).map((k) => ({
      port: PORTS[k],
      name: k,
      targetPort: o.targets.ports[k],
    })),
  );
  const access = kubeAccess(cluster.kc);
  const figures = new Map<string, Map<string, number[]>>();
  const put = (l: Limits, key: string, v: number): void => {
    const byKey = figures.get(label(l)) ?? new Map<string, number[]>();
    figures.set(label(l), byKey);
    byKey.set(key, [...(byKey.get(key) ?? []), v]);
  };
  const errors: string[] = [];
  for (let run = 0; run < o.runs; run++) {
    const order = GRID.map((_, i) => GRID[(i + run) % GRID.length]);
    for (const limits of order) {
      if (o.aborted()) throw new Error('interrupted');
      const relay = await startRelayWorker({
        transport: 'spdy',
        access,
        logger: silentLogger,
        statsIntervalMs: 50,
        tuning: limits,
      });
      try {
        const line = await measure(o, ns, relay, limits, put);
        o.progress(`run ${run + 1}/${o.runs} ${label(limits)}: ${line}`);
      } catch (err) {
        errors.push(`run ${run + 1}, ${label(limits)}: ${(err as Error).message}`);
      } finally {
        await relay.close();
      }
    }
  }
  const cols: [string, string, number][] = [
    ['pull', 'pull MiB/s', 1],
    ['push', 'push MiB/s', 1],
    ['echo', `${o.concurrency} echoes, s`, 2],
    ['cpu', 'CPU s/GiB', 2],
    ['held', 'held, max MiB', 2],
  ];
  const rows = GRID.map((l) => [
    label(l),
    ...cols.map(([k, , d]) => spread(figures.get(label(l))?.get(k) ?? [], d)),
  ]);
  return mdTable(
    `Relay buffer limits: ${o.runs} runs, configurations rotated per run`,
    ['limits', ...cols.map(([, h]) => h)],
    rows,
    [
      `Pull and push of ${fmt(o.streamBytes / MiB, 0)} MiB; ${o.concurrency} concurrent echoes of ` +
        `${fmt(o.echoBytes / MiB, 0)} MiB. "stream": bytes a SPDY stream buffers from the pod before its ` +
        'session stops reading; "socket": a client socket\'s write buffer.',
      'CPU s/GiB: this process (the relay\'s worker thread) across the pull and the push. "held": the ' +
        "session's bufferedBytes, the most seen in any measure.",
      ...errors.map((e) => `failed: ${e}`),
    ],
  );
}

async function measure(
  o: LimitsBenchOptions,
  ns: string,
  relay: RelayWorker,
  limits: Limits,
  put: (l: Limits, key: string, v: number) => void,
): Promise<string> {
  const states = await relay.ensure(KEY, {
    listeners: (Object.keys(PORTS) as (keyof typeof PORTS)[]).map((k) => ({
      id: k,
      address: '127.0.0.1',
      localPort: 0,
      remotePort: PORTS[k],
    })),
    targets: [{ namespace: ns, name: 'target' }],
  });
  const port = (id: string): number => {
    const s = states.find((x) => x.id === id);
    if (s?.state !== 'bound') throw new Error(`listener ${id}: ${JSON.stringify(s)}`);
    return s.localPort;
  };
  let held = 0;
  const sampler = setInterval(() => (held = Math.max(held, relay.stats(KEY)?.bufferedBytes ?? 0)), 50);
  try {
    await o.client.push(port('sink'), MiB, 60_000); // warm: a session open, the code compiled
    const timeout = 60_000 + (o.streamBytes / MiB) * 500;
    const cpu0 = process.cpuUsage();
    const pull = await o.client.pull(port('source'), o.streamBytes, timeout);
    const push = await o.client.push(port('sink'), o.streamBytes, timeout);
    const cpu = process.cpuUsage(cpu0);
    const echo = await o.client.echoes(port('echo'), o.concurrency, o.echoBytes, timeout);
    if (echo.ok < o.concurrency)
      throw new Error(`${o.concurrency - echo.ok} echoes failed: ${echo.errors[0]}`);
    const mibs = (r: { ms: number }): number => o.streamBytes / MiB / (r.ms / 1000);
    const cpuPerGiB = (cpu.user + cpu.system) / 1e6 / ((pull.bytes + push.bytes) / (1024 * MiB));
    put(limits, 'pull', mibs(pull));
    put(limits, 'push', mibs(push));
    put(limits, 'echo', echo.ms / 1000);
    put(limits, 'cpu', cpuPerGiB);
    put(limits, 'held', held / MiB);
    return `pull ${fmt(mibs(pull))} push ${fmt(mibs(push))} MiB/s, echoes ${fmt(echo.ms / 1000, 2)} s, CPU ${fmt(cpuPerGiB, 2)} s/GiB, held ${fmt(held / MiB, 2)} MiB`;
  } finally {
    clearInterval(sampler);
  }
}
