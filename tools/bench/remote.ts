// The remote-cluster benchmark: is a forward into another cluster (spec.kubeConfig, a kubeconfig
// Secret) as fast as one into the operator's own? One operator, two PortForwards to two like pods on
// kwok whose ports map to the same target servers on this host: one pod in the cluster the operator
// runs against, one in a second control plane (tools/testenv/remote.ts, `.testenv-remote/`), reached
// with the token of a least-privilege user of that cluster. Both control planes run the same
// binaries on the same machine, so any difference is the operator's: its per-cluster transport, the
// Secret's kubeconfig, the remote watches.
//
// Pull, push and connect -> first byte in rounds; each round measures both forwards, in an order that
// alternates from round to round, and the ratio remote / local is taken within the round. The operator's
// CPU per GiB is counted too (one process carries both). `kubectl port-forward` to the same two pods
// (each with that cluster's kubeconfig, the remote one with the same token) is measured the same way:
// its remote / local ratio is what the two control planes differ by on their own. Nothing here asserts
// a time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestCluster } from '../testenv/cluster';
import { applyPortForward, waitForStatus } from '../testenv/portforward';
import { startRemoteCluster } from '../testenv/remote';
import type { LoadClient, Targets } from './children';
import { cpuSeconds } from './proc';
import { freePortRange, startKubectl, startOperator, tail } from './relays';
import { fmt, mdTable, median, percentile, spread } from './stats';

export interface RemoteBenchOptions {
  cluster: TestCluster;
  targets: Targets;
  client: LoadClient;
  defer(what: string, fn: () => Promise<unknown>): void;
  aborted(): boolean;
  logDir: string;
  runs: number;
  streamBytes: number;
  connects: number;
  progress(line: string): void;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** The pods' container ports, one per target server this part uses. */
const PORTS = { source: 8081, sink: 8082, greeting: 8083 } as const;
/** How far remote / local may be from 1 and still count as "within 10%" (the bar). */
const WITHIN = 0.1;

interface Forward {
  /** `operator/local`, `operator/remote`, `kubectl/local`, `kubectl/remote`. */
  label: string;
  ports: { source: number; sink: number; greeting: number };
  /** Processes whose CPU is counted (the relaying process). */
  cpuPid: number;
  /** Why the relaying process is gone, when it is. */
  dead(): string | undefined;
}

type Key = 'pull' | 'push' | 'p50' | 'p99' | 'cpuPull' | 'cpuPush';
const MEASURES: { key: Key; label: (o: RemoteBenchOptions) => string; digits: number }[] = [
  { key: 'pull', label: (o) => `pull ${fmt(o.streamBytes / MiB, 0)} MiB pod -> client, MiB/s`, digits: 1 },
  { key: 'push', label: (o) => `push ${fmt(o.streamBytes / MiB, 0)} MiB client -> pod, MiB/s`, digits: 1 },
  { key: 'p50', label: (o) => `connect -> first byte p50, ms (${o.connects} sequential)`, digits: 2 },
  { key: 'p99', label: (o) => `connect -> first byte p99, ms (${o.connects} sequential)`, digits: 2 },
  { key: 'cpuPull', label: () => 'relay CPU s/GiB, pull', digits: 2 },
  { key: 'cpuPush', label: () => 'relay CPU s/GiB, push', digits: 2 },
];

export async function remoteBench(o: RemoteBenchOptions): Promise<string> {
  const { cluster } = o;
  const remote = await startRemoteCluster();
  o.defer('remote cluster', () => remote.stop());
  const ns = await cluster.createNamespace('bench-remote');
  o.defer(`namespace ${ns}`, () => cluster.deleteNamespace(ns));
  const remoteNs = await remote.cluster.createNamespace('bench-remote');
  o.defer(`remote namespace ${remoteNs}`, () => remote.cluster.deleteNamespace(remoteNs));
  const podPorts = (Object.keys(PORTS) as (keyof typeof PORTS)[]).map((k) => ({
    port: PORTS[k],
    name: k,
    targetPort: o.targets.ports[k],
  }));
  await cluster.createPod(ns, 'target', podPorts);
  await remote.cluster.createPod(remoteNs, 'target', podPorts);
  const token = await remote.forwarderToken(remoteNs, 'bench-forwarder');
  await cluster.core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'remote-kubeconfig' }, stringData: { value: remote.kubeconfig(token) } },
  });

  const started = await startOperator({
    kubeconfig: cluster.state.kubeconfig,
    namespaces: [ns],
    portRange: await freePortRange(8),
    logDir: o.logDir,
    label: 'operator-remote',
  });
  if (!started.ok) {
    throw new Error(
      `the operator exited with ${String(started.code)} during start-up:\n    ${tail(started.logFile)}`,
    );
  }
  const op = started.op;
  o.defer('operator', () => op.stop());
  const ports = Object.values(PORTS).map((port) => ({ port }));
  await applyPortForward(cluster, ns, 'local', { target: { pod: 'target' }, ports });
  await applyPortForward(cluster, ns, 'remote', {
    kubeConfig: { secretRef: { name: 'remote-kubeconfig' } },
    target: { pod: 'target', namespace: remoteNs },
    ports,
  });
  const forwards: Forward[] = [];
  const podPort = (label: string, pf: Awaited<ReturnType<typeof waitForStatus>>, port: number): number => {
    const e = pf.status?.endpoints?.find((x) => x.port === port);
    if (!e)
      throw new Error(`${label}: no endpoint for port ${port} in ${JSON.stringify(pf.status?.endpoints)}`);
    return e.localPort;
  };
  for (const where of ['local', 'remote'] as const) {
    const pf = await waitForStatus(cluster, ns, where, 'Ready', (p) => p.status?.phase === 'Ready', 60_000);
    const label = `operator/${where}`;
    forwards.push({
      label,
      ports: {
        source: podPort(label, pf, PORTS.source),
        sink: podPort(label, pf, PORTS.sink),
        greeting: podPort(label, pf, PORTS.greeting),
      },
      cpuPid: op.pid,
      dead: () =>
        op.alive() ? undefined : `the operator exited with ${String(op.exitCode())}: ${tail(op.logFile)}`,
    });
    o.progress(`${label} forward ready (${pf.status?.remote?.server ?? 'this cluster'})`);
  }
  // kubectl: the local cluster's admin kubeconfig, and the Secret's kubeconfig for the remote one.
  fs.mkdirSync(o.logDir, { recursive: true });
  const remoteKubeconfig = path.join(o.logDir, `remote-kubeconfig-${process.pid}.json`);
  fs.writeFileSync(remoteKubeconfig, remote.kubeconfig(token), { mode: 0o600 });
  o.defer('remote kubeconfig file', () => fs.promises.rm(remoteKubeconfig, { force: true }));
  for (const [where, kubeconfig, namespace] of [
    ['local', cluster.state.kubeconfig, ns],
    ['remote', remoteKubeconfig, remoteNs],
  ] as const) {
    const k = await startKubectl({
      kubectl: cluster.state.kubectl,
      kubeconfig,
      namespace,
      pod: 'target',
      ports: Object.values(PORTS),
      logDir: o.logDir,
      label: `kubectl-${where}`,
    });
    o.defer(`kubectl/${where}`, () => k.stop());
    const local = (port: number): number => k.localPorts.get(port)!;
    forwards.push({
      label: `kubectl/${where}`,
      ports: { source: local(PORTS.source), sink: local(PORTS.sink), greeting: local(PORTS.greeting) },
      cpuPid: k.pid,
      dead: () => (k.alive() ? undefined : `kubectl port-forward exited: ${k.stderr().trim()}`),
    });
  }
  for (const f of forwards) {
    await o.client.connects(f.ports.greeting, 5, 10_000);
    await o.client.push(f.ports.sink, MiB, 60_000);
  }

  const figures = new Map<string, number[]>(); // `${label}/${key}` -> one per round (NaN: failed)
  const set = (f: Forward, key: Key, run: number, v: number): void => {
    const k = `${f.label}/${key}`;
    if (!figures.has(k))
      figures.set(
        k,
        Array.from({ length: o.runs }, () => NaN),
      );
    figures.get(k)![run] = v;
  };
  const get = (label: string, key: Key): number[] => figures.get(`${label}/${key}`) ?? [];
  const errors: string[] = [];
  const timeout = 60_000 + (o.streamBytes / MiB) * 500;
  const steps: [string, (f: Forward, run: number) => Promise<string>][] = [
    ...(['pull', 'push'] as const).map((dir): [string, (f: Forward, run: number) => Promise<string>] => [
      dir,
      async (f, run) => {
        const cpu0 = cpuSeconds(op.pid);
        const res = await o.client[dir](
          dir === 'pull' ? f.ports.source : f.ports.sink,
          o.streamBytes,
          timeout,
        );
        const cpu = cpuSeconds(op.pid) - cpu0;
        const rate = o.streamBytes / MiB / (res.ms / 1000);
        set(f, dir, run, rate);
        set(f, dir === 'pull' ? 'cpuPull' : 'cpuPush', run, cpu / (res.bytes / GiB));
        return `${dir} ${fmt(rate)} MiB/s`;
      },
    ]),
    [
      'connects',
      async (f, run) => {
        const c = await o.client.connects(f.ports.greeting, o.connects, 10_000);
        if (c.failed > 0)
          errors.push(`round ${run + 1}, ${f.label}: ${c.failed} of ${o.connects} connects failed`);
        if (c.latencies.length === 0) return 'no connection';
        set(f, 'p50', run, percentile(c.latencies, 50));
        set(f, 'p99', run, percentile(c.latencies, 99));
        return `connect p50 ${fmt(percentile(c.latencies, 50), 2)} ms`;
      },
    ],
  ];
  for (const [what, step] of steps) {
    for (let run = 0; run < o.runs; run++) {
      const line: string[] = [];
      for (const f of run % 2 === 0 ? forwards : [...forwards].reverse()) {
        if (o.aborted()) throw new Error('interrupted');
        const dead = f.dead();
        if (dead) {
          errors.push(`round ${run + 1}, ${f.label}, ${what}: ${dead}`);
          continue;
        }
        try {
          line.push(`${f.label}: ${await step(f, run)}`);
        } catch (err) {
          errors.push(`round ${run + 1}, ${f.label}, ${what}: ${(err as Error).message}`);
        }
      }
      o.progress(`remote ${what} round ${run + 1}/${o.runs}: ${line.join('; ')}`);
    }
  }

  const ratios = (who: string, key: Key): number[] => {
    const a = get(`${who}/local`, key);
    return get(`${who}/remote`, key).map((x, i) => x / a[i]);
  };
  const rows = MEASURES.map((m) => {
    const op = ratios('operator', m.key);
    const mid = median(op.filter(Number.isFinite));
    return [
      m.label(o),
      spread(get('operator/local', m.key), m.digits),
      spread(get('operator/remote', m.key), m.digits),
      spread(op, 2, 'x'),
      Number.isFinite(mid) ? (Math.abs(mid - 1) <= WITHIN ? 'yes' : 'no') : '-',
      m.key.startsWith('cpu') ? '-' : spread(ratios('kubectl', m.key), 2, 'x'),
    ];
  });
  return mdTable(
    `Remote cluster against this cluster: ${o.runs} round${o.runs === 1 ? '' : 's'} per measure`,
    [
      'measure',
      'operator: this cluster',
      'operator: remote cluster (kubeconfig Secret)',
      'operator: remote / local',
      `within ${WITHIN * 100}%`,
      'kubectl: remote / local',
    ],
    rows,
    [
      'One operator, two PortForwards: one to a pod of the cluster it runs against, one (spec.kubeConfig) ' +
        'to a like pod of a second control plane on this machine, with a least-privilege token of that ' +
        'cluster; both pods on kwok, their ports mapped to the same target servers.',
      'Each cell: median of the rounds (min-max); "remote / local" is divided within each round. ' +
        '"within 10%": the median ratio is between 0.90x and 1.10x.',
      '"kubectl: remote / local": `kubectl port-forward` to the same two pods (the remote one with the ' +
        "Secret's kubeconfig), measured in the same rounds: how much the two control planes differ on their " +
        'own.',
      ...errors.map((e) => `failed: ${e}`),
    ],
  );
}
