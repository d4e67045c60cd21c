// Reliability: bad input. Random PortForward specs that pass the CRD's schema, created and edited on the
// real API server: the operator never crashes, and each one gets a phase and a reason. An API server
// that cannot be reached, a token that is invalid, and one revoked while the operator runs: clear log
// lines, retries with growing delays, never a crash loop, and service once the API server is reachable.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { PortForward } from '../../src/api/v1alpha1';
import { closedOnPurpose } from '../../src/reconcile/status';
import { TestCluster } from '../../tools/testenv/cluster';
import { freePort, httpGet } from '../../tools/testenv/procs';
import { fuzzReport, fuzzSeed, Random } from '../support/fuzz';
import { EchoServer, startEchoServer } from '../support/net';
import { freshPortRange, OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';
import { randomSpec, World } from '../support/spec-gen';
import { verifiedEcho } from '../support/traffic';
import { poll } from '../support/wait';
import { assertAlive, figure, size } from './support';

type LogLine = {
  level: string;
  message: string;
  retryInMs?: number;
  error?: string;
  hint?: string;
  code?: number;
};

/** A copy of a kubeconfig with another server URL, or another token. */
function withServer(kubeconfig: string, server?: string, token?: string): string {
  const json = JSON.parse(fs.readFileSync(kubeconfig, 'utf8')) as {
    clusters: { cluster: { server: string } }[];
    users: { user: { token?: string } }[];
  };
  if (server) json.clusters[0].cluster.server = server;
  if (token) json.users[0].user.token = token;
  const file = `${kubeconfig}-${server ? new URL(server).port : 'token'}-${process.pid}-${Date.now()}`;
  fs.writeFileSync(file, JSON.stringify(json), { mode: 0o600 });
  return file;
}

function lines(op: OperatorProcess): LogLine[] {
  return op
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

describe('reliability: bad input', function () {
  this.timeout(size(600_000, 300_000));
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  const ops: OperatorProcess[] = [];

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('rel-input');
    echo = await startEchoServer();
    await cluster.createPod(ns, 'web-0', [{ port: 8080, name: 'http', targetPort: echo.port }], {
      app: 'web',
    });
    await cluster.createPod(ns, 'web-1', [{ port: 8080, name: 'http', targetPort: echo.port }], {
      app: 'web',
    });
    await cluster.createPod(ns, 'db-0', [{ port: 5432, name: 'pg', targetPort: echo.port }], { app: 'db' });
    await cluster.core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'web' },
        spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
      },
    });
  });

  after(async function () {
    for (const op of ops) await op.stop();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it(`gives each of ${size(300, 60)} random schema-valid PortForwards a phase and a reason, through edits, without a crash`, async function () {
    const count = size(300, 60);
    const seed = fuzzSeed();
    const rnd = new Random(seed);
    // Room for every port of every forward, so that most are not refused for want of a port.
    const base = freshPortRange().min;
    const range = { min: base, max: base + 49 + 8 * count };
    const op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      portRange: range,
      extraArgs: ['--log-level=info', '--allowed-listen-addresses=::1'],
    });
    ops.push(op);
    const world: World = {
      pods: ['web-0', 'web-1', 'db-0'],
      services: ['web'],
      deployments: [],
      statefulSets: [],
      labels: [{ app: 'web' }, { app: 'db' }],
      portNames: ['http', 'pg'],
      portNumbers: [8080, 5432, 80],
      localPorts: range,
    };
    const custom = cluster.custom;
    let refused = 0;
    const names: string[] = [];
    for (let i = 0; i < count; i++) {
      const spec = randomSpec(rnd, world);
      try {
        await applyPortForward(cluster, ns, `f${i}`, spec);
        names.push(`f${i}`);
      } catch (err) {
        refused++; // the generator's slip past the schema: the API server's message says why
        assert.match(
          String((err as { body?: unknown }).body ?? err),
          /Invalid|invalid|must/,
          JSON.stringify(spec),
        );
      }
    }
    const settled = async (what: string): Promise<Map<string, PortForward>> => {
      const seen = new Map<string, PortForward>();
      await poll(what, 180_000, async () => {
        const list = (await custom.listNamespacedCustomObject({
          group: 'portforward.dev',
          version: 'v1alpha1',
          namespace: ns,
          plural: 'portforwards',
        })) as { items: PortForward[] };
        for (const pf of list.items) seen.set(pf.metadata.name, pf);
        return names.every((n) => {
          const pf = seen.get(n);
          const ready = pf?.status?.conditions?.find((c) => c.type === 'Ready');
          // Suspended and Expired carry no Ready condition (ADR 11): their phase is their reason.
          return (
            !!pf?.status?.phase &&
            (closedOnPurpose(pf.status.phase) || !!ready?.reason) &&
            pf.status.observedGeneration === pf.metadata.generation
          );
        });
      });
      for (const n of names) {
        const st = seen.get(n)!.status!;
        if (closedOnPurpose(st.phase))
          assert.equal(
            st.conditions?.find((c) => c.type === 'Ready'),
            undefined,
            `${n}: a Ready condition on a ${st.phase} forward`,
          );
      }
      return seen;
    };
    const first = await settled('every PortForward to get a phase and a reason');

    // Edits: a third of them get a new random spec.
    let edited = 0;
    for (const n of names) {
      if (!rnd.bool(1 / 3)) continue;
      await custom
        .patchNamespacedCustomObject(
          {
            group: 'portforward.dev',
            version: 'v1alpha1',
            namespace: ns,
            plural: 'portforwards',
            name: n,
            body: [{ op: 'replace', path: '/spec', value: randomSpec(rnd, world) }],
          },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
        )
        .then(
          () => edited++,
          () => refused++,
        );
    }
    const after = await settled('every edited PortForward to get a phase and a reason');
    assertAlive(op);

    // One connection to each forward that says Ready: the relay takes whatever it gets.
    let ok = 0;
    let failed = 0;
    for (const pf of after.values()) {
      const ep =
        pf.status?.phase === 'Ready'
          ? pf.status.endpoints?.find((e) => e.address === '127.0.0.1')
          : undefined;
      if (!ep) continue;
      if ((await verifiedEcho(ep.localPort, 1024, 5_000)).ok) ok++;
      else failed++;
    }
    assertAlive(op);
    const byReason = new Map<string, number>();
    for (const pf of after.values()) {
      const k = `${pf.status?.phase}/${pf.status?.conditions?.find((c) => c.type === 'Ready')?.reason ?? pf.status?.phase}`;
      byReason.set(k, (byReason.get(k) ?? 0) + 1);
    }
    const errors = lines(op).filter((l) => l.level === 'error');
    assert.deepEqual(errors, [], 'no error-level log line');
    // The next tests run operators of their own on this namespace: leave them nothing to fight over.
    await op.stop();
    await custom.deleteCollectionNamespacedCustomObject({
      group: 'portforward.dev',
      version: 'v1alpha1',
      namespace: ns,
      plural: 'portforwards',
    });
    fuzzReport(
      'PortForward specs on the API server',
      names.length + edited,
      seed,
      `${names.length} created, ${edited} edited, ${refused} refused by the schema; ${first.size} PortForwards; ` +
        [...byReason].map(([k, v]) => `${k} ${v}`).join(', ') +
        `; one connection to each Ready forward: ${ok} echoed, ${failed} failed (ports the pod does not serve)`,
    );
  });

  /** An operator that cannot list PortForwards with `kubeconfig`, once it retried its watch 4 times. */
  async function startRetrying(kubeconfig: string): Promise<OperatorProcess> {
    const op = await startOperator({
      kubeconfig,
      namespaces: [ns],
      ready: false,
      extraArgs: ['--log-level=info'],
    });
    ops.push(op);
    await poll('a few retries', 30_000, () =>
      Promise.resolve(lines(op).filter((l) => /watch of PortForward/.test(l.message)).length >= 4),
    );
    return op;
  }

  it('waits for an API server it cannot reach, with growing retry delays and clear log lines, and serves once it is reachable', async function () {
    const port = await freePort();
    const real = new URL(cluster.state.server);
    const file = withServer(cluster.state.kubeconfig, `https://127.0.0.1:${port}`);
    // The API server is unreachable for a while: the operator stays up, not ready, and retries.
    const op = await startRetrying(file);
    assertAlive(op);
    const ready = await httpGet(`http://127.0.0.1:${op.healthPort}/readyz`);
    assert.notEqual(ready.status, 200, 'not ready while it cannot list');
    const retries = lines(op).filter((l) => /watch of PortForward/.test(l.message));
    const delays = retries.map((l) => l.retryInMs ?? 0);
    assert.ok(
      delays.every((d, i) => i === 0 || d >= delays[i - 1]),
      `growing delays: ${delays.join(', ')}`,
    );
    assert.match(retries.at(-1)!.error ?? '', /ECONNREFUSED|connect/, 'the log says why');
    figure(
      `unreachable API server: operator up, not ready; retries of the PortForward watch after ${delays.join(', ')} ms; last line: "${retries.at(-1)!.message}: ${retries.at(-1)!.error}"${retries.at(-1)!.hint ? ` (${retries.at(-1)!.hint})` : ''}`,
    );

    // Then it becomes reachable (a TCP proxy on that port to the real API server).
    const proxy = net.createServer((c) => {
      const up = net.connect(Number(real.port), real.hostname);
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => proxy.listen(port, '127.0.0.1', r));
    try {
      const t0 = Date.now();
      await poll(
        'the operator to be ready',
        60_000,
        async () => (await httpGet(`http://127.0.0.1:${op.healthPort}/readyz`)).status === 200,
      );
      await applyPortForward(cluster, ns, 'reachable', { target: { pod: 'web-0' }, ports: [{ port: 8080 }] });
      const pf = await waitForStatus(
        cluster,
        ns,
        'reachable',
        'Ready',
        (p) => p.status?.phase === 'Ready' && !!p.status.endpoints?.length,
        30_000,
      );
      assert.ok((await verifiedEcho(pf.status!.endpoints![0].localPort, 1024, 10_000)).ok);
      figure(`once reachable: ready ${((Date.now() - t0) / 1000).toFixed(1)} s later and serving`);
    } finally {
      await op.stop();
      proxy.close();
    }
  });

  it('says so when its token is refused, retries with growing delays and stays up, at start and after a revocation', async function () {
    // A token the API server does not know, from the start.
    const op = await startRetrying(withServer(cluster.state.kubeconfig, undefined, 'not-a-valid-token'));
    assertAlive(op);
    const refusedAtStart = lines(op).filter((l) => /watch of PortForward/.test(l.message));
    assert.ok(
      refusedAtStart.every((l) => l.code === 401),
      JSON.stringify(refusedAtStart.filter((l) => l.code !== 401)),
    );
    assert.match(refusedAtStart.at(-1)!.hint ?? '', /credentials|token/, 'the log line says what to do');
    const delays = refusedAtStart.map((l) => l.retryInMs ?? 0);
    assert.ok(
      delays.every((d, i) => i === 0 || d >= delays[i - 1]),
      `growing delays: ${delays.join(', ')}`,
    );
    figure(
      `invalid token: up, not ready; "${refusedAtStart.at(-1)!.message}: ${refusedAtStart.at(-1)!.error}" (${refusedAtStart.at(-1)!.hint}); retries after ${delays.join(', ')} ms`,
    );
    await op.stop();

    // A ServiceAccount token that works, then is revoked (the ServiceAccount deleted) while it runs.
    await cluster.rbac.createClusterRoleBinding({
      body: {
        metadata: { name: `${ns}-operator` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'ServiceAccount', name: 'operator', namespace: ns }],
      },
    });
    try {
      const token = await cluster.mintServiceAccountToken(ns, 'operator');
      const sa = await startOperator({
        kubeconfig: cluster.kubeconfigFor(token),
        namespaces: [ns],
        extraArgs: ['--log-level=info'],
      });
      ops.push(sa);
      await applyPortForward(cluster, ns, 'revoked', { target: { pod: 'web-0' }, ports: [{ port: 8080 }] });
      const pf = await waitForStatus(
        cluster,
        ns,
        'revoked',
        'Ready',
        (p) => p.status?.phase === 'Ready',
        30_000,
      );
      const port = pf.status!.endpoints![0].localPort;
      assert.ok((await verifiedEcho(port, 1024, 10_000)).ok);
      const before = lines(sa).length;
      await cluster.core.deleteNamespacedServiceAccount({ name: 'operator', namespace: ns });
      // New connections need the API server: they fail now, each with a clear reason, and the watches retry.
      await poll('the revocation to show', 60_000, async () => {
        await verifiedEcho(port, 1024, 5_000);
        return lines(sa)
          .slice(before)
          .some((l) => l.code === 401 || /Unauthorized|401/.test(l.error ?? ''));
      });
      await new Promise((r) => setTimeout(r, 5_000)); // watch it keep retrying instead of exiting
      assertAlive(sa);
      const after = lines(sa).slice(before);
      const sample = after.find((l) => l.hint && /401|Unauthorized/.test(`${l.code} ${l.error}`));
      assert.ok(sample, 'a log line says the credentials were refused, and what to do');
      figure(
        `revoked token: still up after the ServiceAccount was deleted; ${after.length} log lines since, e.g. "${sample.message}: ${sample.error}" (${sample.hint})`,
      );
      await sa.stop();
    } finally {
      await cluster.rbac.deleteClusterRoleBinding({ name: `${ns}-operator` }).catch(() => undefined);
    }
  });
});
