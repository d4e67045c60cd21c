// What the scale benchmark needs to measure API Priority and Fairness as a cluster would see it (issue
// 24): the operator authenticated as the ServiceAccount of deploy/ (an admin kubeconfig is in
// system:masters, which APF exempts, so a benchmark run as admin measures nothing of it), with or
// without deploy/flowcontrol.yaml; and another client, a ServiceAccount of its own (in workload-low, where
// the operator's requests go without the FlowSchema), running `kubectl get pods` once a second, whose
// latencies the benchmark reads per phase.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { TestCluster } from '../testenv/cluster';
import { repoRoot } from '../testenv/paths';
import { apiMetricsText } from './sessions';

const DEPLOY = path.join(repoRoot, 'deploy');
const SYSTEM_NS = 'portforward-system';
const NAME = 'portforward-operator';

function applied(cluster: TestCluster, args: string[]): void {
  const res = cluster.kubectl(args);
  if (res.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed:\n${res.stderr}`);
}

/**
 * deploy/'s namespace, ServiceAccount and RBAC applied, deploy/flowcontrol.yaml applied or removed as
 * `flowSchema` says; a kubeconfig with a token of the operator's ServiceAccount.
 */
export async function operatorIdentity(cluster: TestCluster, flowSchema: boolean): Promise<string> {
  applied(cluster, [
    'apply',
    ...['namespace', 'serviceaccount', 'clusterrole', 'leader-election-role'].flatMap((f) => [
      '-f',
      path.join(DEPLOY, `${f}.yaml`),
    ]),
  ]);
  const fc = path.join(DEPLOY, 'flowcontrol.yaml');
  applied(cluster, flowSchema ? ['apply', '-f', fc] : ['delete', '--ignore-not-found', '-f', fc]);
  return cluster.kubeconfigFor(await cluster.mintServiceAccountToken(SYSTEM_NS, NAME));
}

export function removeFlowSchema(cluster: TestCluster): void {
  applied(cluster, ['delete', '--ignore-not-found', '-f', path.join(DEPLOY, 'flowcontrol.yaml')]);
}

/** Requests kube-apiserver dispatched and rejected so far, by priority level (apiserver_flowcontrol_*). */
export async function apfCounts(
  cluster: TestCluster,
): Promise<Record<string, { dispatched: number; rejected: number }>> {
  const out: Record<string, { dispatched: number; rejected: number }> = {};
  for (const line of (await apiMetricsText(cluster)).split('\n')) {
    const kind = line.startsWith('apiserver_flowcontrol_dispatched_requests_total{')
      ? 'dispatched'
      : line.startsWith('apiserver_flowcontrol_rejected_requests_total{')
        ? 'rejected'
        : undefined;
    if (!kind) continue;
    const level = /priority_level="([^"]*)"/.exec(line)?.[1] ?? '?';
    const n = Number(line.slice(line.lastIndexOf(' ') + 1));
    out[level] ??= { dispatched: 0, rejected: 0 };
    out[level][kind] += n;
  }
  return out;
}

export interface Sample {
  at: number;
  ms: number;
  ok: boolean;
}

export interface ClientLoop {
  samples: Sample[];
  stop(): Promise<void>;
}

/**
 * Another client: a ServiceAccount `bench-reader` in `ns` that may list its pods, running
 * `kubectl get pods` once a second until stopped; every call's wall time (the kubectl process
 * included, as a user at a terminal sees it) and whether it succeeded.
 */
export async function getPodsLoop(cluster: TestCluster, ns: string): Promise<ClientLoop> {
  const name = 'bench-reader';
  // The ServiceAccount by its user name: what RBAC matches a subject of kind User against.
  await cluster.grantRole(ns, name, [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }], {
    user: `system:serviceaccount:${ns}:${name}`,
  });
  const kubeconfig = cluster.kubeconfigFor(await cluster.mintServiceAccountToken(ns, name));
  const samples: Sample[] = [];
  let stopped = false;
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const at = Date.now();
      execFile(
        cluster.state.kubectl,
        ['--kubeconfig', kubeconfig, 'get', 'pods', '-n', ns, '-o', 'name', '--request-timeout=30s'],
        { timeout: 60_000 },
        (err) => {
          samples.push({ at, ms: Date.now() - at, ok: !err });
          resolve();
        },
      );
    });
  // One call a second (start to start), as someone checking on a cluster would: a loop of back-to-back
  // kubectl processes would itself take most of a core of this two-core machine from what it measures.
  const running = (async () => {
    while (!stopped) {
      const next = Date.now() + 1000;
      await once();
      while (!stopped && Date.now() < next)
        await new Promise((r) => setTimeout(r, Math.min(100, next - Date.now())));
    }
  })();
  return {
    samples,
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

/** The samples that started in [from, to). */
export function within(samples: Sample[], from: number, to: number): Sample[] {
  return samples.filter((s) => s.at >= from && s.at < to);
}
