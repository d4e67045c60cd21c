// Fixtures on the real node (REAL_NODE=1, `make test-node`): the operator installed from deploy/ as a
// user installs it (only the pull policy changed: no registry here), and pods that run the operator's
// own image with a small Node.js program (a TCP server, or an idle client that `kubectl exec` runs
// one-shot clients in). Everything a test sees crosses the real path: kube-apiserver -> kubelet ->
// containerd -> the pod's network namespace.
import * as k8s from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dump, loadAll } from 'js-yaml';
import { TestCluster } from '../../tools/testenv/cluster';
import { OPERATOR_IMAGE, REAL_NODE_NAME } from '../../tools/testenv/node';
import { CGROUP_ROOT } from '../../tools/testenv/node/kubelet';
import { repoRoot } from '../../tools/testenv/paths';
import { poll } from './wait';

export const IMAGE = OPERATOR_IMAGE;
export const OPERATOR_NS = 'portforward-system';
export const OPERATOR_LABELS =
  'app.kubernetes.io/name=portforward-operator,app.kubernetes.io/component=operator';

/**
 * A TCP server for port 8080 (and any port in PORTS): echoes what it reads; when the client's side
 * ends it prints `EOF after N bytes` (read back with `kubectl logs`) and closes.
 */
export const SERVER_JS = `
const net = require('net');
for (const port of (process.env.PORTS || '8080').split(',')) {
  net.createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on('data', (d) => { n += d.length; s.write(d); });
    s.on('end', () => { console.log('EOF after ' + n + ' bytes at ' + Date.now()); s.end(); });
    s.on('error', () => {});
  }).listen(Number(port));
}`;

/** One connection: sends argv[3], half-closes, prints what came back and how the connection ended. */
const CLIENT_JS = `
const net = require('net');
const [host, port, msg] = process.argv.slice(1);
const t0 = Date.now();
let out = '';
const done = (result, code) => { console.log(JSON.stringify({ result, code, out, ms: Date.now() - t0 })); process.exit(0); };
const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
const timer = setTimeout(() => done('timeout'), Number(process.env.CLIENT_TIMEOUT_MS || 5000));
s.on('connect', () => s.end(msg));
s.on('data', (d) => (out += d));
s.on('end', () => { clearTimeout(timer); done('end'); });
s.on('error', (e) => { clearTimeout(timer); done('error', e.code); });`;

export interface ClientResult {
  result: 'end' | 'error' | 'timeout';
  code?: string;
  out: string;
  ms: number;
}

/** deploy/ rendered by kustomize, with the operator's pull policy IfNotPresent (the image is imported). */
export function applyDeploy(cluster: TestCluster): void {
  const rendered = cluster.kubectl(['kustomize', path.join(repoRoot, 'deploy')]);
  if (rendered.code !== 0) throw new Error(`kubectl kustomize deploy/ failed: ${rendered.stderr}`);
  const docs = (loadAll(rendered.stdout) as k8s.KubernetesObject[]).map((d) => {
    if (d.kind === 'Deployment') {
      for (const c of (d as k8s.V1Deployment).spec!.template.spec!.containers)
        c.imagePullPolicy = 'IfNotPresent';
    }
    return d;
  });
  const out = cluster.kubectl(['apply', '--server-side', '-f', '-'], {
    input: docs.map((d) => dump(d)).join('---\n'),
  });
  if (out.code !== 0) throw new Error(`applying deploy/ failed: ${out.stderr}`);
}

export async function operatorPods(cluster: TestCluster): Promise<k8s.V1Pod[]> {
  const list = await cluster.core.listNamespacedPod({
    namespace: OPERATOR_NS,
    labelSelector: OPERATOR_LABELS,
  });
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}

export const isReady = (p: k8s.V1Pod): boolean =>
  !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

/** Waits until the Deployment runs `replicas` pods, all Running, exactly one Ready; returns the leader. */
export async function waitOperator(
  cluster: TestCluster,
  replicas = 2,
  timeoutMs = 120_000,
): Promise<k8s.V1Pod> {
  let leader: k8s.V1Pod | undefined;
  await poll(`${replicas} operator pods Running, one Ready`, timeoutMs, async () => {
    const pods = await operatorPods(cluster);
    const ready = pods.filter(isReady);
    leader = ready[0];
    return pods.length === replicas && pods.every((p) => p.status?.phase === 'Running') && ready.length === 1;
  });
  return leader!;
}

/** A pod on the real node running `node -e script` in the operator's image. */
export async function createNodePod(
  cluster: TestCluster,
  ns: string,
  name: string,
  script: string,
  opts: {
    labels?: Record<string, string>;
    ports?: { name?: string; containerPort: number }[];
    env?: Record<string, string>;
  } = {},
): Promise<k8s.V1Pod> {
  await cluster.core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name, namespace: ns, labels: opts.labels ?? {} },
      spec: {
        nodeSelector: { 'kubernetes.io/hostname': REAL_NODE_NAME },
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'app',
            image: IMAGE,
            imagePullPolicy: 'Never',
            command: ['node', '-e', script],
            env: Object.entries(opts.env ?? {}).map(([k, v]) => ({ name: k, value: v })),
            ports: opts.ports,
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
          },
        ],
      },
    },
  });
  return cluster.waitPodReady(ns, name, 60_000);
}

/** An idle pod to run clients in. */
export function createClientPod(
  cluster: TestCluster,
  ns: string,
  name = 'client',
  labels: Record<string, string> = {},
): Promise<k8s.V1Pod> {
  return createNodePod(cluster, ns, name, 'setInterval(() => {}, 1 << 30)', { labels });
}

/** One TCP connection from inside a pod (kubectl exec): sends `msg`, half-closes, reads to the end. */
export function connectFrom(
  cluster: TestCluster,
  ns: string,
  pod: string,
  host: string,
  port: number,
  msg = 'hello',
): ClientResult {
  return runInPod<ClientResult>(cluster, ns, pod, CLIENT_JS, [host, port, msg]);
}

/** Runs `node -e script args...` in a pod (kubectl exec) and parses the JSON of its last output line. */
export function runInPod<T>(
  cluster: TestCluster,
  ns: string,
  pod: string,
  script: string,
  args: (string | number)[],
): T {
  const out = cluster.kubectl(['exec', '-n', ns, pod, '--', 'node', '-e', script, ...args.map(String)]);
  if (out.code !== 0) throw new Error(`kubectl exec ${ns}/${pod} failed: ${out.stderr}`);
  return JSON.parse(out.stdout.trim().split('\n').pop()!) as T;
}

/**
 * Run inside a client pod: connects to host:port every 100 ms for `ms` milliseconds, each time an echo
 * of 5 bytes then a full close, and prints how many were served, the longest time with none served,
 * why the others were not (error code, `timeout`, `closed`) and when the outcome changed (ms from the
 * start), so that a failure says what the client saw.
 */
const PROBE_JS = `
const net = require('net');
const [host, port, ms] = process.argv.slice(1);
const start = Date.now();
const end = start + Number(ms);
let ok = 0, failed = 0, lastOk = Date.now(), longest = 0, last = '';
const reasons = {}, timeline = [];
const once = () => new Promise((resolve) => {
  const s = net.connect({ host, port: Number(port) });
  let done = false;
  const finish = (why) => { if (done) return; done = true; clearTimeout(t); s.destroy(); resolve(why); };
  const t = setTimeout(() => finish('timeout'), 1000);
  s.on('connect', () => s.write('hello'));
  s.on('data', (d) => { if (String(d) === 'hello') finish('ok'); });
  s.on('error', (e) => finish(e.code || 'error'));
  s.on('close', () => finish('closed'));
});
(async () => {
  while (Date.now() < end) {
    const t0 = Date.now();
    const why = await once();
    if (why === 'ok') { ok++; longest = Math.max(longest, Date.now() - lastOk); lastOk = Date.now(); }
    else { failed++; reasons[why] = (reasons[why] || 0) + 1; }
    if (why !== last && timeline.length < 40) timeline.push((t0 - start) + ' ms: ' + why);
    last = why;
    await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - t0))));
  }
  longest = Math.max(longest, Date.now() - lastOk);
  console.log(JSON.stringify({ ok, failed, longestGapMs: longest, reasons, timeline }));
})();`;

export interface ProbeResult {
  ok: number;
  failed: number;
  longestGapMs: number;
  /** Connections not served, by why: an error code, `timeout` (no echo within 1 s) or `closed`. */
  reasons: Record<string, number>;
  /** Each change of outcome, as `<ms from the start>: <outcome>`. */
  timeline: string[];
}

/**
 * What the operator's namespace and a forward look like now, for a failing test's message: the
 * operator's pods, the Lease, the Service's EndpointSlices, the forward's status and the last lines
 * of each operator pod's log.
 */
export function operatorState(cluster: TestCluster, ns: string, name: string): string {
  const run = (args: string[]): string => {
    const out = cluster.kubectl(args);
    return `$ kubectl ${args.join(' ')}\n${out.stdout}${out.stderr}`;
  };
  const parts = [
    run(['get', 'pods', '-n', OPERATOR_NS, '-o', 'wide']),
    run(['get', 'lease', '-n', OPERATOR_NS, '-o', 'custom-columns=NAME:.metadata.name,HOLDER:.spec.holderIdentity,RENEWED:.spec.renewTime']),
    run(['get', 'endpointslices', '-n', OPERATOR_NS, '-o', 'yaml']),
    run(['get', 'portforward', '-n', ns, name, '-o', 'jsonpath={.status}']),
  ]; // prettier-ignore
  const pods = cluster.kubectl(['get', 'pods', '-n', OPERATOR_NS, '-l', OPERATOR_LABELS, '-o', 'name']);
  for (const pod of pods.stdout.split('\n').filter(Boolean))
    parts.push(run(['logs', '-n', OPERATOR_NS, pod, '--tail=30']));
  return parts.join('\n');
}

/**
 * Follows the logs of the operator's pods running now (`kubectl logs -f`), so that what a pod said
 * before it was replaced is still there when a test fails; stop() ends the followers and returns
 * the last `lines` lines of each, headed by the pod's name.
 */
export async function followOperatorLogs(cluster: TestCluster): Promise<{ stop(lines?: number): string }> {
  const pods = await operatorPods(cluster);
  const followers = pods.map((p) => {
    const name = p.metadata!.name!;
    const child = spawn(cluster.state.kubectl, [
      '--kubeconfig', cluster.state.kubeconfig, 'logs', '-f', '-n', OPERATOR_NS, name,
    ]); // prettier-ignore
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    return { name, child, out: () => out };
  });
  return {
    stop(lines = 40): string {
      return followers
        .map((f) => {
          f.child.kill();
          const tail = f.out().split('\n').filter(Boolean).slice(-lines);
          return `--- the log of ${f.name}, followed from the test's start (last ${lines} lines)\n${tail.join('\n')}`;
        })
        .join('\n');
    },
  };
}

/** Starts PROBE_JS in a client pod; resolves with its result when it ends. */
export function probeFrom(
  cluster: TestCluster,
  ns: string,
  pod: string,
  host: string,
  port: number,
  ms: number,
): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cluster.state.kubectl, [
      '--kubeconfig', cluster.state.kubeconfig, 'exec', '-n', ns, pod, '--', 'node', '-e', PROBE_JS, host, String(port), String(ms),
    ]); // prettier-ignore
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`probe in ${ns}/${pod} failed: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()!) as ProbeResult);
    });
  });
}

/** Run inside a client pod: `n` concurrent echoes of `mib` MiB each, checked byte for byte. */
const LOAD_JS = `
const net = require('net');
const [host, port, n, mib] = process.argv.slice(1);
const size = Number(mib) * 1024 * 1024;
const one = (i) => new Promise((resolve) => {
  const payload = Buffer.alloc(size, i % 251);
  let got = 0, good = true;
  // Written whole, never half-closed: containerd closes the pod's side 1 s after a client's FIN, so
  // an echo still on its way back would be cut (docs/troubleshooting.md). Closed once all came back.
  const s = net.connect({ host, port: Number(port) }, () => s.write(payload));
  s.on('data', (d) => {
    for (const b of d) if (b !== i % 251) { good = false; break; }
    got += d.length;
    if (got >= size) s.destroy();
  });
  s.on('close', () => resolve(good && got === size));
  s.on('error', () => {});
});
const t0 = Date.now();
Promise.all(Array.from({ length: Number(n) }, (_, i) => one(i))).then((r) =>
  console.log(JSON.stringify({ intact: r.filter(Boolean).length, seconds: (Date.now() - t0) / 1000 })));`;

/** `n` concurrent echoes of `mib` MiB from a client pod; how many came back intact, and the wall time. */
export function echoLoadFrom(
  cluster: TestCluster,
  ns: string,
  pod: string,
  host: string,
  port: number,
  n: number,
  mib: number,
): { intact: number; seconds: number } {
  return runInPod(cluster, ns, pod, LOAD_JS, [host, port, n, mib]);
}

/** The pod's cgroup (v1) on the real node: CPU seconds used so far, and memory now and at its peak. */
export function podUsage(pod: k8s.V1Pod): { cpuSeconds: number; memoryBytes: number; peakBytes: number } {
  const uid = pod.metadata!.uid!;
  const find = (hierarchy: string): string => {
    const base = path.join('/sys/fs/cgroup', hierarchy, CGROUP_ROOT, 'kubepods');
    for (const qos of ['', 'burstable', 'besteffort']) {
      const dir = path.join(base, qos, `pod${uid}`);
      if (fs.existsSync(dir)) return dir;
    }
    throw new Error(`no ${hierarchy} cgroup for pod ${pod.metadata!.name} (${uid}) under ${base}`);
  };
  const read = (dir: string, f: string): number => Number(fs.readFileSync(path.join(dir, f), 'utf8').trim());
  const mem = find('memory');
  return {
    cpuSeconds: read(find('cpuacct'), 'cpuacct.usage') / 1e9,
    memoryBytes: read(mem, 'memory.usage_in_bytes'),
    peakBytes: read(mem, 'memory.max_usage_in_bytes'),
  };
}
