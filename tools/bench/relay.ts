// The relay benchmark: the operator (one process per transport), the pinned `kubectl port-forward`
// run the two ways people run it (one process for all ports, one process per port) and direct TCP,
// side by side, on the same target pod: on kwok (a pod whose ports kwok maps to target servers on
// this host) or on the real node (a pod running the target servers in the operator's image, reached
// through kubelet and containerd).
//
// What it controls, so that a ratio means the same whenever it is measured:
// - one system at a time: while one is measured every other relaying process is stopped (SIGSTOP), so
//   no idle operator's PINGs, status writes or timers and no kubectl run beside it;
// - short, interleaved repetitions: each measure runs in rounds, every round through every system in
//   an order rotated from round to round, so that a pair (operator, kubectl) is measured minutes apart
//   at most and the ratio is taken within a round;
// - the same pod, the same servers, the same load client for every system; relay output goes to files
//   (none is read while bytes move);
// - CPU counted per direction: pull and push apart, for the relaying processes (all their threads),
//   kube-apiserver and the node's side (kwok, or kubelet + containerd).
//
// Guarantees: a failed measure is reported (in the table's notes), never retried and never hidden;
// pulled and pushed bytes and echoes are verified. Nothing here asserts a time.
import { TestCluster } from '../testenv/cluster';
import { OPERATOR_IMAGE, REAL_NODE_NAME } from '../testenv/node';
import { applyPortForward, waitForStatus } from '../testenv/portforward';
import { Destination, LoadClient, Targets } from './children';
import { TargetPorts } from './proto';
import { cpuSeconds, ioCounters } from './proc';
import { freePortRange, KubectlRelay, pause, startKubectl, startOperator, tail } from './relays';
import { fmt, mdTable, median, percentile, spread } from './stats';

export interface RelayBenchOptions {
  cluster: TestCluster;
  /** The target servers on this host (kwok's pods map to them). */
  targets: Targets;
  client: LoadClient;
  /** The payload's seed (payload.ts), for target servers started in a pod. */
  seed: string;
  /** Registers a clean-up step; they run in reverse order at the end, also after a failure. */
  defer(what: string, fn: () => Promise<unknown>): void;
  /** True once the benchmark was interrupted: stop at the next measure. */
  aborted(): boolean;
  logDir: string;
  runs: number;
  /** Repetitions of the pull and the push within a round, interleaved across the systems; a round's figure is their median. */
  reps: number;
  /** The same for the connects and the concurrent echoes. */
  manyReps: number;
  transports: string[];
  streamBytes: number;
  connects: number;
  echoBytes: number;
  concurrencies: number[];
  progress(line: string): void;
}

type Port = keyof TargetPorts;
/** The pod's container ports, one per target server. */
const POD_PORTS: Record<Port, number> = { source: 8081, sink: 8082, greeting: 8083, echo: 8084 };
const PORT_KEYS = Object.keys(POD_PORTS) as Port[];
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface System {
  label: string;
  kind: 'operator' | 'kubectl' | 'direct';
  /** The relaying processes, for their CPU time and to stop them while others are measured. */
  pids: number[];
  ports: Record<Port, Destination>;
  /** Why the relay is gone, when it is. */
  dead(): string | undefined;
}

/** The pod every system forwards to, and the processes that carry the node's side of the bytes. */
interface Target {
  ns: string;
  pod: string;
  node: 'kwok' | 'real';
  /** Direct TCP: the servers on this host (kwok), or the pod's IP (the real node's bridge). */
  direct: Record<Port, Destination>;
  nodeProcesses: string[];
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

async function hasRealNode(cluster: TestCluster): Promise<boolean> {
  try {
    await cluster.core.readNode({ name: REAL_NODE_NAME });
    return true;
  } catch {
    return false;
  }
}

/**
 * The target pod: on kwok, its ports mapped to this host's target servers; on the real node, the
 * same servers (targets.js, compiled with this benchmark) running in a pod of the operator's image,
 * mounted read-only from build/tools/bench.
 */
async function createTarget(o: RelayBenchOptions): Promise<Target> {
  const { cluster } = o;
  const ns = await cluster.createNamespace('bench-relay');
  o.defer(`namespace ${ns}`, () => cluster.deleteNamespace(ns));
  const pod = 'target';
  if (!(await hasRealNode(cluster))) {
    await cluster.createPod(
      ns,
      pod,
      PORT_KEYS.map((k) => ({ port: POD_PORTS[k], name: k, targetPort: o.targets.ports[k] })),
    );
    return { ns, pod, node: 'kwok', direct: o.targets.ports, nodeProcesses: ['kwok'] };
  }
  const ports = PORT_KEYS.map((k) => POD_PORTS[k]).join(',');
  await cluster.core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: pod, namespace: ns },
      spec: {
        nodeSelector: { 'kubernetes.io/hostname': REAL_NODE_NAME },
        terminationGracePeriodSeconds: 1,
        volumes: [{ name: 'bench', hostPath: { path: __dirname, type: 'Directory' } }],
        containers: [
          {
            name: 'targets',
            image: OPERATOR_IMAGE,
            imagePullPolicy: 'Never',
            command: ['node', '/bench/targets.js', String(o.streamBytes), o.seed, `--listen=${ports}`],
            ports: PORT_KEYS.map((k) => ({ containerPort: POD_PORTS[k], name: k })),
            volumeMounts: [{ name: 'bench', mountPath: '/bench', readOnly: true }],
            readinessProbe: { tcpSocket: { port: POD_PORTS.echo }, periodSeconds: 1 },
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
          },
        ],
      },
    },
  });
  const ready = await cluster.waitPodReady(ns, pod, 60_000);
  const ip = ready.status!.podIP!;
  const direct = Object.fromEntries(PORT_KEYS.map((k) => [k, { host: ip, port: POD_PORTS[k] }]));
  return {
    ns,
    pod,
    node: 'real',
    direct: direct as Record<Port, Destination>,
    nodeProcesses: ['kubelet', 'containerd'],
  };
}

async function operatorSystem(
  o: RelayBenchOptions,
  t: Target,
  transport: string,
): Promise<System | { rejected: string }> {
  const { cluster } = o;
  const label = `operator (${transport})`;
  const started = await startOperator({
    kubeconfig: cluster.state.kubeconfig,
    namespaces: [t.ns],
    portRange: await freePortRange(8),
    logDir: o.logDir,
    label: `operator-${transport}`,
    extraArgs: [`--transport=${transport}`, `--class=${transport}`],
  });
  if (!started.ok) {
    if (started.code === 2) return { rejected: started.firstLine };
    throw new Error(
      `${label} exited with ${String(started.code)} during start-up; ${started.logFile}:\n    ${tail(started.logFile)}`,
    );
  }
  const op = started.op;
  o.defer(label, () => op.stop());
  const name = `relay-${transport}`;
  await applyPortForward(cluster, t.ns, name, {
    className: transport,
    target: { pod: t.pod },
    ports: PORT_KEYS.map((k) => ({ port: POD_PORTS[k] })),
  });
  const pf = await waitForStatus(cluster, t.ns, name, 'Ready', (p) => p.status?.phase === 'Ready', 30_000);
  const local = (port: number): number => {
    const e = pf.status?.endpoints?.find((x) => x.port === port);
    if (!e)
      throw new Error(`${label}: no endpoint for port ${port} in ${JSON.stringify(pf.status?.endpoints)}`);
    return e.localPort;
  };
  return {
    label,
    kind: 'operator',
    pids: [op.pid],
    ports: Object.fromEntries(PORT_KEYS.map((k) => [k, local(POD_PORTS[k])])) as Record<Port, Destination>,
    dead: () =>
      op.alive() ? undefined : `${label} exited with ${String(op.exitCode())}:\n    ${tail(op.logFile)}`,
  };
}

/** kubectl port-forward: one process for all four ports, or (perPort) one process per port. */
async function kubectlSystem(o: RelayBenchOptions, t: Target, perPort: boolean): Promise<System> {
  const { cluster } = o;
  const label = perPort ? 'kubectl (process per port)' : 'kubectl (one process)';
  const groups = perPort ? PORT_KEYS.map((k) => [k]) : [PORT_KEYS];
  const ports: Partial<Record<Port, Destination>> = {};
  const relays: KubectlRelay[] = [];
  for (const g of groups) {
    const k = await startKubectl({
      kubectl: cluster.state.kubectl,
      kubeconfig: cluster.state.kubeconfig,
      namespace: t.ns,
      pod: t.pod,
      ports: g.map((p) => POD_PORTS[p]),
      logDir: o.logDir,
      label: `kubectl-${perPort ? g[0] : 'all'}`,
    });
    o.defer(`${label}: ${g.join(', ')}`, () => k.stop());
    relays.push(k);
    for (const p of g) ports[p] = k.localPorts.get(POD_PORTS[p])!;
  }
  return {
    label,
    kind: 'kubectl',
    pids: relays.map((k) => k.pid),
    ports: ports as Record<Port, Destination>,
    dead: () => {
      const gone = relays.find((k) => !k.alive());
      return gone ? `kubectl port-forward exited: ${gone.stderr().trim()}` : undefined;
    },
  };
}

/** Starts every system; returns them in table order and the notes on what was not as asked. */
async function startSystems(
  o: RelayBenchOptions,
  t: Target,
): Promise<{ systems: System[]; notes: string[] }> {
  const systems: System[] = [];
  const notes: string[] = [];
  for (const transport of o.transports) {
    const s = await operatorSystem(o, t, transport);
    if ('rejected' in s)
      notes.push(`The operator rejected \`--transport=${transport}\` (exit 2: \`${s.rejected}\`).`);
    else systems.push(s);
    o.progress(`operator (${transport}): ${'rejected' in s ? `rejected (${s.rejected})` : 'ready'}`);
  }
  if (systems.length === 0) throw new Error(`the operator refused every transport: ${notes.join(' ')}`);
  for (const perPort of [false, true]) {
    const k = await kubectlSystem(o, t, perPort);
    systems.push(k);
    o.progress(`${k.label}: ready`);
  }
  systems.push({ label: 'direct TCP', kind: 'direct', pids: [], ports: t.direct, dead: () => undefined });
  return { systems, notes };
}

function measures(o: RelayBenchOptions, t: Target): Measure[] {
  const mib = fmt(o.streamBytes / MiB, 0);
  const echoMib = fmt(o.echoBytes / MiB, o.echoBytes % MiB ? 2 : 0);
  const nodeSide = t.nodeProcesses.join(' + ');
  return [
    { key: 'pull', label: `pull ${mib} MiB pod -> client, MiB/s`, digits: 1, better: 'higher' },
    { key: 'push', label: `push ${mib} MiB client -> pod, MiB/s`, digits: 1, better: 'higher' },
    { key: 'p50', label: `connect -> first byte p50, ms (${o.connects} sequential)`, digits: 2, better: 'lower' },
    { key: 'p99', label: `connect -> first byte p99, ms (${o.connects} sequential)`, digits: 2, better: 'lower' },
    ...o.concurrencies.map((c): Measure => ({
      key: `echo${c}`,
      label: `${c} concurrent ${echoMib} MiB echoes, wall s`,
      digits: 2,
      better: 'lower',
    })),
    { key: 'cpuPull', label: 'relay CPU s/GiB, pull', digits: 2, better: 'lower', relayOnly: true },
    { key: 'cpuPush', label: 'relay CPU s/GiB, push', digits: 2, better: 'lower', relayOnly: true },
    // Bytes per system call of the relaying process: every call costs the same, however few bytes.
    { key: 'readKiBPull', label: 'relay KiB per read call, pull', digits: 1, better: 'higher', relayOnly: true },
    { key: 'writeKiBPull', label: 'relay KiB per write call, pull', digits: 1, better: 'higher', relayOnly: true },
    { key: 'readKiBPush', label: 'relay KiB per read call, push', digits: 1, better: 'higher', relayOnly: true },
    { key: 'writeKiBPush', label: 'relay KiB per write call, push', digits: 1, better: 'higher', relayOnly: true },
    {
      key: 'cpuApiserver',
      label: 'kube-apiserver CPU s/GiB (pull + push)',
      digits: 2,
      better: 'lower',
      relayOnly: true,
    },
    { key: 'cpuNode', label: `${nodeSide} CPU s/GiB (pull + push)`, digits: 2, better: 'lower', relayOnly: true },
  ]; // prettier-ignore
}

class Results {
  /** label -> measure key -> the samples of each round: one per repetition, or one running total. */
  private readonly samples = new Map<string, Map<string, number[][]>>();
  readonly echoFailures = new Map<string, { failed: number; corrupted: number; of: number }>();
  readonly errors: string[] = [];

  constructor(private readonly runs: number) {}

  private slot(label: string, key: string, run: number): number[] {
    let m = this.samples.get(label);
    if (!m) this.samples.set(label, (m = new Map<string, number[][]>()));
    let rounds = m.get(key);
    if (!rounds) m.set(key, (rounds = Array.from({ length: this.runs }, (): number[] => [])));
    return rounds[run];
  }

  /** One repetition's figure in round `run`. */
  set(label: string, key: string, run: number, value: number): void {
    this.slot(label, key, run).push(value);
  }

  /** Adds to round `run`'s total (CPU seconds and GiB, summed over its repetitions). */
  add(label: string, key: string, run: number, value: number): void {
    const xs = this.slot(label, key, run);
    if (xs.length === 0) xs.push(value);
    else xs[0] += value;
  }

  /** Each round's figure: the median of its repetitions' (NaN when none succeeded). */
  get(label: string, key: string): number[] {
    return (this.samples.get(label)?.get(key) ?? []).map((xs) => median(xs));
  }

  error(run: number, label: string, what: string, err: unknown): void {
    this.errors.push(`round ${run + 1}, ${label}, ${what}: ${(err as Error).message ?? String(err)}`);
  }
}

function controlPlanePids(cluster: TestCluster, names: string[]): number[] {
  return names.flatMap((n) => cluster.state.processes.filter((p) => p.name === n).map((p) => p.pid));
}

const cpuOf = (pids: number[]): number => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

/** One step of a round: a measure on one system. */
type Step = (o: RelayBenchOptions, t: Target, s: System, run: number, r: Results) => Promise<string>;

/** A pull or a push, with the CPU of the relay (per direction), kube-apiserver and the node's side. */
function stream(dir: 'pull' | 'push'): Step {
  return async (o, t, s, run, r) => {
    const timeout = 60_000 + (o.streamBytes / MiB) * 500; // 2 MiB/s at the least
    const apiserver = controlPlanePids(o.cluster, ['kube-apiserver']);
    const node = controlPlanePids(o.cluster, t.nodeProcesses);
    const cpu0 = [cpuOf(s.pids), cpuOf(apiserver), cpuOf(node)];
    const io0 = ioCounters(s.pids);
    const res = await o.client[dir](s.ports[dir === 'pull' ? 'source' : 'sink'], o.streamBytes, timeout);
    const cpu1 = [cpuOf(s.pids), cpuOf(apiserver), cpuOf(node)];
    const io1 = ioCounters(s.pids);
    const gib = res.bytes / GiB;
    r.set(s.label, dir, run, o.streamBytes / MiB / (res.ms / 1000));
    if (s.kind !== 'direct') {
      r.set(s.label, dir === 'pull' ? 'cpuPull' : 'cpuPush', run, (cpu1[0] - cpu0[0]) / gib);
      const Dir = dir === 'pull' ? 'Pull' : 'Push';
      r.set(s.label, `readKiB${Dir}`, run, (io1.readBytes - io0.readBytes) / (io1.reads - io0.reads) / 1024);
      r.set(
        s.label,
        `writeKiB${Dir}`,
        run,
        (io1.writeBytes - io0.writeBytes) / (io1.writes - io0.writes) / 1024,
      );
      // Per GiB of pull + push together: the sums of both directions, divided when the table is made.
      r.add(s.label, 'apiserverCpu', run, cpu1[1] - cpu0[1]);
      r.add(s.label, 'nodeCpu', run, cpu1[2] - cpu0[2]);
      r.add(s.label, 'relayedGiB', run, gib);
    }
    return `${dir} ${fmt(o.streamBytes / MiB / (res.ms / 1000))} MiB/s`;
  };
}

const connectsStep: Step = async (o, _t, s, run, r) => {
  const c = await o.client.connects(s.ports.greeting, o.connects, 10_000);
  if (c.failed > 0)
    r.error(run, s.label, `connects (${c.failed} of ${o.connects} failed)`, new Error(c.errors.join('; ')));
  if (c.latencies.length === 0) return 'no connection';
  r.set(s.label, 'p50', run, percentile(c.latencies, 50));
  r.set(s.label, 'p99', run, percentile(c.latencies, 99));
  return `connect p50 ${fmt(percentile(c.latencies, 50), 2)} ms`;
};

function echoStep(n: number): Step {
  return async (o, _t, s, run, r) => {
    const timeout = 60_000 + ((n * o.echoBytes) / MiB) * 500;
    const f = r.echoFailures.get(s.label) ?? { failed: 0, corrupted: 0, of: 0 };
    r.echoFailures.set(s.label, f);
    f.of += n;
    try {
      const e = await o.client.echoes(s.ports.echo, n, o.echoBytes, timeout);
      f.failed += e.failed;
      f.corrupted += e.corrupted;
      if (e.ok === n)
        r.set(s.label, `echo${n}`, run, e.ms / 1000); // a failed connection ends early
      else r.error(run, s.label, `${n} echoes`, new Error(e.errors.join('; ')));
      return `${n} echoes ${fmt(e.ms / 1000, 2)} s${e.ok < n ? ` (${n - e.ok} bad)` : ''}`;
    } catch (err) {
      f.failed += n;
      throw err;
    }
  };
}

/** A few connections and small transfers through every system, so no first round pays for JIT or TLS. */
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

/** The system of `kind` with the best median of the measure. */
function best(r: Results, m: Measure, among: System[]): System | undefined {
  let top: { s: System; med: number } | undefined;
  for (const s of among) {
    const med = median(r.get(s.label, m.key));
    if (!Number.isFinite(med)) continue;
    if (!top || (m.better === 'higher' ? med > top.med : med < top.med)) top = { s, med };
  }
  return top?.s;
}

/** The best operator divided by the best kubectl, paired within each round: "median (min-max)". */
function ratioCell(r: Results, m: Measure, systems: System[]): string {
  const op = best(
    r,
    m,
    systems.filter((s) => s.kind === 'operator'),
  );
  const kc = best(
    r,
    m,
    systems.filter((s) => s.kind === 'kubectl'),
  );
  if (!op || !kc) return '-';
  const a = r.get(op.label, m.key);
  const b = r.get(kc.label, m.key);
  const cell = spread(
    a.map((x, i) => x / b[i]),
    2,
    'x',
  );
  const short = (s: System): string => /\((.*)\)/.exec(s.label)?.[1] ?? s.label;
  return cell === '-' ? '-' : `${cell} ${short(op)} / ${short(kc)}`;
}

export async function relayBench(o: RelayBenchOptions): Promise<string> {
  const t = await createTarget(o);
  o.progress(`target pod ${t.ns}/${t.pod} on ${t.node === 'real' ? REAL_NODE_NAME : 'kwok'}`);
  const { systems, notes } = await startSystems(o, t);
  const relays = systems.flatMap((s) => s.pids);
  o.defer('paused relays', () => Promise.resolve(relays.forEach((pid) => pause(pid, false))));
  const r = new Results(o.runs);
  await warmUp(o, systems, notes);
  for (const pid of relays) pause(pid, true);

  // Every measure repeats within a round. The connects and echoes could not until the target servers
  // closed idle connections (targets.ts): kwok keeps each connection's sockets until the pod's side
  // closes, and three rounds' worth through one session reached its 20,000 open files.
  const steps: [string, Step, number][] = [
    ['pull', stream('pull'), o.reps],
    ['push', stream('push'), o.reps],
    ['connects', connectsStep, o.manyReps],
    ...o.concurrencies.map((n): [string, Step, number] => [`${n} echoes`, echoStep(n), o.manyReps]),
  ];
  for (const [what, step, reps] of steps) {
    for (let turn = 0; turn < o.runs * reps; turn++) {
      const run = Math.floor(turn / reps);
      const order = systems.map((_, i) => systems[(i + turn) % systems.length]);
      const line: string[] = [];
      for (const s of order) {
        if (o.aborted()) throw new Error('interrupted');
        const dead = s.dead();
        if (dead) {
          r.error(run, s.label, what, new Error(dead));
          continue;
        }
        s.pids.forEach((pid) => pause(pid, false));
        try {
          // One connection first, not counted: whatever the relay deferred while stopped runs now.
          await o.client.connects(s.ports.greeting, 1, 10_000);
          line.push(`${s.label}: ${await step(o, t, s, run, r)}`);
        } catch (err) {
          r.error(run, s.label, what, err);
        } finally {
          s.pids.forEach((pid) => pause(pid, true));
        }
      }
      const rep = reps > 1 ? `, repetition ${(turn % reps) + 1}/${reps}` : '';
      o.progress(`${what} round ${run + 1}/${o.runs}${rep}: ${line.join('; ')}`);
    }
  }
  // CPU of kube-apiserver and the node per GiB of pull + push, round by round.
  for (const s of systems) {
    const gib = r.get(s.label, 'relayedGiB');
    r.get(s.label, 'apiserverCpu').forEach((c, i) => r.set(s.label, 'cpuApiserver', i, c / gib[i]));
    r.get(s.label, 'nodeCpu').forEach((c, i) => r.set(s.label, 'cpuNode', i, c / gib[i]));
  }

  const ms = measures(o, t);
  const rows = ms.map((m) => [
    m.label,
    ...systems.map((s) =>
      m.relayOnly && s.kind === 'direct' ? '-' : spread(r.get(s.label, m.key), m.digits),
    ),
    ratioCell(r, m, systems),
  ]);
  rows.push([
    `echo failures / corruptions (all rounds, ${o.concurrencies.join(' + ')} connections per repetition)`,
    ...systems.map((s) => {
      const f = r.echoFailures.get(s.label);
      return f ? `${f.failed} / ${f.corrupted} of ${f.of}` : '-';
    }),
    '-',
  ]);
  const header = ['measure', ...systems.map((s) => s.label), 'best operator / best kubectl'];
  const where =
    t.node === 'real'
      ? `target pod on the real node (${REAL_NODE_NAME}: kubelet, containerd, runc; the servers in the operator's image)`
      : 'target pod on kwok (its ports mapped to servers on this host)';
  const allNotes = [
    `${where}; every system forwards to that one pod.`,
    'Each cell: median of the rounds (min-max). MiB/s and KiB per call: higher is better; ms, s and CPU ' +
      's/GiB: lower is better.',
    `Each measure runs in rounds (pull and push: of ${o.reps} repetition${o.reps === 1 ? '' : 's'}; ` +
      `connects and echoes: of ${o.manyReps}); a ` +
      'repetition measures every system once, in an order rotated from one repetition to the next, and every ' +
      "relaying process but the measured one is stopped (SIGSTOP) meanwhile. A round's figure is the median " +
      'of its repetitions.',
    '"best operator / best kubectl": the operator transport and the kubectl way with the best medians, ' +
      'divided within each round; median (min-max) of the rounds.',
    'CPU s/GiB: utime + stime from /proc/PID/stat of every thread of the relaying processes (the ' +
      `operator, or kubectl's processes), of kube-apiserver and of ${t.nodeProcesses.join(' and ')}, ` +
      'per GiB moved.',
    ...notes,
    ...r.errors.map((e) => `failed: ${e}`),
  ];
  return mdTable(
    `Relay on ${t.node === 'real' ? 'the real node' : 'kwok'}: ${o.runs} round${o.runs === 1 ? '' : 's'} per measure`,
    header,
    rows,
    allNotes,
  );
}
