// The relay benchmark: the operator (one process per transport), the pinned `kubectl port-forward`
// and direct TCP, side by side, on the same target servers behind the same kind of kwok pod. Each
// run goes through every system, in an order rotated from run to run (run 1: A B C, run 2: B C A,
// ...) so that no system always runs first or right after another; each figure is the median of the
// runs with their min-max, and the ratio column pairs the best operator with kubectl run by run.
//
// Guarantees: a failed measure is reported (in the table's notes), never retried and never hidden;
// echoes are verified by sha256. Caveats: each operator serves its own namespace (there is no --class
// flag to share one), so each has its own pod "target"; every pod maps its ports to the same servers.
import { TestCluster } from '../testenv/cluster';
import { applyPortForward, waitForStatus } from '../testenv/portforward';
import { LoadClient, Targets } from './children';
import { TargetPorts } from './proto';
import { cpuSeconds, freePortRange, startKubectl, startOperator, tail } from './relays';
import { fmt, mdTable, median, percentile, spread } from './stats';

export interface RelayBenchOptions {
  cluster: TestCluster;
  targets: Targets;
  client: LoadClient;
  /** Registers a clean-up step; they run in reverse order at the end, also after a failure. */
  defer(what: string, fn: () => Promise<unknown>): void;
  /** True once the benchmark was interrupted: stop at the next measure. */
  aborted(): boolean;
  logDir: string;
  runs: number;
  transports: string[];
  streamBytes: number;
  connects: number;
  echoBytes: number;
  concurrencies: number[];
  progress(line: string): void;
}

/** The pod's container ports, one per target server. */
const POD_PORTS: Record<keyof TargetPorts, number> = { source: 8081, sink: 8082, greeting: 8083, echo: 8084 };
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface System {
  label: string;
  kind: 'operator' | 'kubectl' | 'direct';
  /** The relaying process, for its CPU time. */
  pid?: number;
  ports: TargetPorts;
  /** Why the relay is gone, when it is. */
  dead(): string | undefined;
}

type Better = 'higher' | 'lower';
interface Measure {
  key: string;
  label: string;
  digits: number;
  better: Better;
  /** Not measured for direct TCP (no relaying process). */
  relayOnly?: boolean;
}

async function createTargetPod(cluster: TestCluster, ns: string, targets: Targets): Promise<void> {
  await cluster.createPod(
    ns,
    'target',
    (Object.keys(POD_PORTS) as (keyof TargetPorts)[]).map((k) => ({
      port: POD_PORTS[k],
      name: k,
      targetPort: targets.ports[k],
    })),
  );
}

async function operatorSystem(
  o: RelayBenchOptions,
  ns: string,
  label: string,
  extraArgs: string[],
): Promise<System | { rejected: string }> {
  const { cluster } = o;
  const started = await startOperator({
    kubeconfig: cluster.state.kubeconfig,
    namespaces: [ns],
    portRange: await freePortRange(8),
    logDir: o.logDir,
    label: label.replace(/\W+/g, '-').replace(/-+$/, ''),
    extraArgs,
  });
  if (!started.ok) {
    if (started.code === 2) return { rejected: started.firstLine };
    throw new Error(
      `${label} exited with ${String(started.code)} during start-up; ${started.logFile}:\n    ${tail(started.logFile)}`,
    );
  }
  const op = started.op;
  o.defer(label, () => op.stop());
  await applyPortForward(cluster, ns, 'relay', {
    target: { pod: 'target' },
    ports: Object.values(POD_PORTS).map((port) => ({ port })),
  });
  const pf = await waitForStatus(cluster, ns, 'relay', 'Ready', (p) => p.status?.phase === 'Ready', 30_000);
  const local = (port: number): number => {
    const e = pf.status?.endpoints?.find((x) => x.port === port);
    if (!e)
      throw new Error(`${label}: no endpoint for port ${port} in ${JSON.stringify(pf.status?.endpoints)}`);
    return e.localPort;
  };
  return {
    label,
    kind: 'operator',
    pid: op.pid,
    ports: {
      source: local(POD_PORTS.source),
      sink: local(POD_PORTS.sink),
      greeting: local(POD_PORTS.greeting),
      echo: local(POD_PORTS.echo),
    },
    dead: () =>
      op.alive() ? undefined : `${label} exited with ${String(op.exitCode())}:\n    ${tail(op.logFile)}`,
  };
}

/** Starts every system; returns them in table order and the notes on what was not as asked. */
async function startSystems(o: RelayBenchOptions): Promise<{ systems: System[]; notes: string[] }> {
  const { cluster } = o;
  const systems: System[] = [];
  const notes: string[] = [];
  const rejected: { transport: string; line: string; ns: string }[] = [];
  for (const t of o.transports) {
    const ns = await cluster.createNamespace(`bench-${t}`);
    o.defer(`namespace ${ns}`, () => cluster.deleteNamespace(ns));
    await createTargetPod(cluster, ns, o.targets);
    const s = await operatorSystem(o, ns, `operator (${t})`, [`--transport=${t}`]);
    if ('rejected' in s) rejected.push({ transport: t, line: s.rejected, ns });
    else systems.push(s);
    o.progress(`operator (${t}): ${'rejected' in s ? `rejected (${s.rejected})` : 'ready'}`);
  }
  if (rejected.length > 0 && systems.length === 0) {
    const s = await operatorSystem(o, rejected[0].ns, 'operator (websocket)', []);
    if ('rejected' in s) throw new Error(`the operator refused to start without --transport: ${s.rejected}`);
    systems.push(s);
    notes.push(
      `The operator rejected \`--transport\` (exit 2: \`${rejected[0].line}\`): measured one operator ` +
        `without the flag, labelled "websocket" (its per-connection v4.channel.k8s.io WebSocket).`,
    );
  } else if (rejected.length > 0) {
    for (const r of rejected)
      notes.push(`The operator rejected \`--transport=${r.transport}\` (exit 2: \`${r.line}\`).`);
  }

  const ns = await cluster.createNamespace('bench-kubectl');
  o.defer(`namespace ${ns}`, () => cluster.deleteNamespace(ns));
  await createTargetPod(cluster, ns, o.targets);
  const kubectl = await startKubectl({
    kubectl: cluster.state.kubectl,
    kubeconfig: cluster.state.kubeconfig,
    namespace: ns,
    pod: 'target',
    ports: Object.values(POD_PORTS),
  });
  o.defer('kubectl port-forward', () => kubectl.stop());
  const kl = (k: keyof TargetPorts): number => kubectl.localPorts.get(POD_PORTS[k])!;
  systems.push({
    label: 'kubectl',
    kind: 'kubectl',
    pid: kubectl.pid,
    ports: { source: kl('source'), sink: kl('sink'), greeting: kl('greeting'), echo: kl('echo') },
    dead: () => (kubectl.alive() ? undefined : `kubectl port-forward exited: ${kubectl.stderr().trim()}`),
  });
  o.progress('kubectl port-forward: ready');
  systems.push({ label: 'direct TCP', kind: 'direct', ports: o.targets.ports, dead: () => undefined });
  return { systems, notes };
}

function measures(o: RelayBenchOptions): Measure[] {
  const mib = fmt(o.streamBytes / MiB, 0);
  const echoMib = fmt(o.echoBytes / MiB, o.echoBytes % MiB ? 2 : 0);
  return [
    { key: 'pull', label: `pull ${mib} MiB pod -> client, MiB/s`, digits: 1, better: 'higher' },
    { key: 'push', label: `push ${mib} MiB client -> pod, MiB/s`, digits: 1, better: 'higher' },
    {
      key: 'p50',
      label: `connect -> first byte p50, ms (${o.connects} sequential)`,
      digits: 2,
      better: 'lower',
    },
    {
      key: 'p99',
      label: `connect -> first byte p99, ms (${o.connects} sequential)`,
      digits: 2,
      better: 'lower',
    },
    ...o.concurrencies.map((c): Measure => ({
      key: `echo${c}`,
      label: `${c} concurrent ${echoMib} MiB echoes, wall s`,
      digits: 2,
      better: 'lower',
    })),
    {
      key: 'cpuRelay',
      label: 'relay process CPU s/GiB (pull + push)',
      digits: 2,
      better: 'lower',
      relayOnly: true,
    },
    {
      key: 'cpuApiserver',
      label: 'kube-apiserver CPU s/GiB (pull + push)',
      digits: 2,
      better: 'lower',
      relayOnly: true,
    },
    { key: 'cpuKwok', label: 'kwok CPU s/GiB (pull + push)', digits: 2, better: 'lower', relayOnly: true },
  ];
}

class Results {
  /** label -> measure key -> one figure per run (NaN: failed). */
  readonly figures = new Map<string, Map<string, number[]>>();
  readonly echoFailures = new Map<string, { failed: number; corrupted: number; of: number }>();
  readonly errors: string[] = [];

  constructor(private readonly runs: number) {}

  set(label: string, key: string, run: number, value: number): void {
    let m = this.figures.get(label);
    if (!m) this.figures.set(label, (m = new Map<string, number[]>()));
    let xs = m.get(key);
    if (!xs) m.set(key, (xs = Array.from({ length: this.runs }, () => NaN)));
    xs[run] = value;
  }

  get(label: string, key: string): number[] {
    return this.figures.get(label)?.get(key) ?? [];
  }

  error(run: number, label: string, what: string, err: unknown): void {
    this.errors.push(`run ${run + 1}, ${label}, ${what}: ${(err as Error).message ?? String(err)}`);
  }
}

function controlPlanePid(cluster: TestCluster, name: string): number | undefined {
  return cluster.state.processes.find((p) => p.name === name)?.pid;
}

/** Every measure of one system in one run. */
async function measureSystem(o: RelayBenchOptions, s: System, run: number, r: Results): Promise<void> {
  const { client } = o;
  const streamTimeout = 60_000 + (o.streamBytes / MiB) * 500; // 2 MiB/s at the least
  const pids = {
    cpuRelay: s.pid,
    cpuApiserver: controlPlanePid(o.cluster, 'kube-apiserver'),
    cpuKwok: controlPlanePid(o.cluster, 'kwok'),
  };
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, pid ? cpuSeconds(pid) : NaN]));
  let relayed = 0;
  const line: string[] = [];
  try {
    const pull = await client.pull(s.ports.source, o.streamBytes, streamTimeout);
    relayed += pull.bytes;
    r.set(s.label, 'pull', run, o.streamBytes / MiB / (pull.ms / 1000));
    line.push(`pull ${fmt(o.streamBytes / MiB / (pull.ms / 1000))} MiB/s`);
  } catch (err) {
    r.error(run, s.label, 'pull', err);
  }
  try {
    const push = await client.push(s.ports.sink, o.streamBytes, streamTimeout);
    relayed += push.bytes;
    r.set(s.label, 'push', run, o.streamBytes / MiB / (push.ms / 1000));
    line.push(`push ${fmt(o.streamBytes / MiB / (push.ms / 1000))} MiB/s`);
  } catch (err) {
    r.error(run, s.label, 'push', err);
  }
  if (s.kind !== 'direct' && relayed > 0) {
    for (const [k, pid] of Object.entries(pids)) {
      if (pid) r.set(s.label, k, run, (cpuSeconds(pid) - cpu0[k]) / (relayed / GiB));
    }
    line.push(`CPU ${fmt(r.get(s.label, 'cpuRelay')[run], 2)} s/GiB`);
  }
  if (o.aborted()) return;
  try {
    const c = await client.connects(s.ports.greeting, o.connects, 10_000);
    if (c.failed > 0)
      r.error(run, s.label, `connects (${c.failed} of ${o.connects} failed)`, new Error(c.errors.join('; ')));
    if (c.latencies.length > 0) {
      r.set(s.label, 'p50', run, percentile(c.latencies, 50));
      r.set(s.label, 'p99', run, percentile(c.latencies, 99));
      line.push(`connect p50 ${fmt(percentile(c.latencies, 50), 2)} ms`);
    }
  } catch (err) {
    r.error(run, s.label, 'connects', err);
  }
  for (const n of o.concurrencies) {
    if (o.aborted()) return;
    const timeout = 60_000 + ((n * o.echoBytes) / MiB) * 500;
    const f = r.echoFailures.get(s.label) ?? { failed: 0, corrupted: 0, of: 0 };
    r.echoFailures.set(s.label, f);
    try {
      const e = await client.echoes(s.ports.echo, n, o.echoBytes, timeout);
      f.failed += e.failed;
      f.corrupted += e.corrupted;
      f.of += n;
      if (e.ok === n) r.set(s.label, `echo${n}`, run, e.ms / 1000); // a failed connection ends early
      line.push(`${n} echoes ${fmt(e.ms / 1000, 2)} s${e.ok < n ? ` (${n - e.ok} bad)` : ''}`);
      if (e.ok < n) r.error(run, s.label, `${n} echoes`, new Error(e.errors.join('; ')));
    } catch (err) {
      f.failed += n;
      f.of += n;
      r.error(run, s.label, `${n} echoes`, err);
    }
  }
  o.progress(`run ${run + 1}/${o.runs} ${s.label}: ${line.join(', ')}`);
}

/** A few connections and small transfers through every system, so no first run pays for JIT or TLS. */
async function warmUp(o: RelayBenchOptions, systems: System[], notes: string[]): Promise<void> {
  for (const s of systems) {
    try {
      await o.client.connects(s.ports.greeting, 5, 10_000);
      await o.client.push(s.ports.sink, MiB, 60_000);
      await o.client.echoes(s.ports.echo, 4, 256 * 1024, 60_000);
    } catch (err) {
      notes.push(`warm-up of ${s.label} failed: ${(err as Error).message}`);
    }
  }
}

function ratioCell(r: Results, m: Measure, operators: System[]): string {
  const kubectl = r.get('kubectl', m.key);
  let best: { label: string; med: number } | undefined;
  for (const s of operators) {
    const med = median(r.get(s.label, m.key));
    if (!Number.isFinite(med)) continue;
    if (!best || (m.better === 'higher' ? med > best.med : med < best.med)) best = { label: s.label, med };
  }
  if (!best) return '-';
  const op = r.get(best.label, m.key);
  const ratios = op.map((x, i) => x / kubectl[i]); // paired within a run
  const cell = spread(ratios, 2, 'x');
  const name = /\((.*)\)/.exec(best.label)?.[1] ?? best.label;
  return cell === '-' ? '-' : `${cell} ${name}`;
}

export async function relayBench(o: RelayBenchOptions): Promise<string> {
  const { systems, notes } = await startSystems(o);
  const r = new Results(o.runs);
  await warmUp(o, systems, notes);
  for (let run = 0; run < o.runs; run++) {
    if (o.aborted()) throw new Error('interrupted');
    const order = systems.map((_, i) => systems[(i + run) % systems.length]);
    o.progress(`run ${run + 1}/${o.runs}: ${order.map((s) => s.label).join(', ')}`);
    for (const s of order) {
      if (o.aborted()) throw new Error('interrupted');
      const dead = s.dead();
      if (dead) {
        r.error(run, s.label, 'all measures', new Error(dead));
        continue;
      }
      await measureSystem(o, s, run, r);
    }
  }
  const operators = systems.filter((s) => s.kind === 'operator');
  const ms = measures(o);
  const rows = ms.map((m) => [
    m.label,
    ...systems.map((s) =>
      m.relayOnly && s.kind === 'direct' ? '-' : spread(r.get(s.label, m.key), m.digits),
    ),
    m.relayOnly && !r.get('kubectl', m.key).some(Number.isFinite) ? '-' : ratioCell(r, m, operators),
  ]);
  rows.push([
    `echo failures / corruptions (all runs, ${o.concurrencies.join(' + ')} connections per run)`,
    ...systems.map((s) => {
      const f = r.echoFailures.get(s.label);
      return f ? `${f.failed} / ${f.corrupted} of ${f.of}` : '-';
    }),
    '-',
  ]);
  const header = ['measure', ...systems.map((s) => s.label), 'best operator / kubectl'];
  const allNotes = [
    'Each cell: median of the runs (min-max). MiB/s: higher is better; ms, s and CPU s/GiB: lower is better.',
    '"best operator / kubectl": the operator transport with the best median, divided by kubectl in the ' +
      'same run, median (min-max) of the runs.',
    'CPU s/GiB: utime + stime from /proc/PID/stat across the pull and the push, per GiB relayed ' +
      '(the relay process is the operator or kubectl; kube-apiserver and kwok carry the bytes of every system).',
    ...notes,
    ...r.errors.map((e) => `failed: ${e}`),
  ];
  return mdTable(
    `Relay: ${systems.map((s) => s.label).join(', ')}; ${o.runs} run${o.runs === 1 ? '' : 's'}, systems rotated per run`,
    header,
    rows,
    allNotes,
  );
}
