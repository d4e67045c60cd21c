// GitOps health as Flux computes it: the real kstatus library (sigs.k8s.io/cli-utils' status.Compute,
// which Flux's kustomize-controller runs for `wait: true` and healthChecks) on real PortForwards that the
// operator, run as a process against the test control plane, brought into each phase. The program is
// hack/kstatus, built from the Go module proxy into the binary cache (tools/testenv/gotools.ts).
// What each phase says, and why Suspended and Expired are Current: docs/adr/0011-gitops-health.md.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { TestCluster } from '../../tools/testenv/cluster';
import { ensureGoTool } from '../../tools/testenv/gotools';
import { EchoServer, startEchoServer } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, condition, patchSpec, waitForStatus } from '../support/portforward';
import type { PortForward } from '../../src/api/v1alpha1';

interface KStatus {
  namespace: string;
  name: string;
  status: string;
  message: string;
}

describe('kstatus (Flux health checks) on each phase of a real PortForward', function () {
  this.timeout(120_000);
  let kstatusBin: string;
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let op: OperatorProcess;

  before(async function () {
    kstatusBin = ensureGoTool('kstatus');
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('kstatus');
    echo = await startEchoServer();
    await cluster.createPod(ns, 'echo', [{ port: 8080, name: 'http', targetPort: echo.port }]);
    op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns] });
  });

  after(async function () {
    await op?.stop();
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  /** The object as the API server returns it, through kstatus. */
  function kstatus(name: string): KStatus {
    const obj = cluster.kubectl(['get', 'portforward', name, '-n', ns, '-o', 'json']);
    assert.equal(obj.code, 0, obj.stderr);
    const out = spawnSync(kstatusBin, [], { input: obj.stdout, encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    const k = JSON.parse(out.stdout) as KStatus;
    // The observation itself, for the record (issue 23's closing note): phase, conditions, kstatus' verdict.
    const pf = JSON.parse(obj.stdout) as PortForward;
    const conds = (pf.status?.conditions ?? []).map((c) => `${c.type}=${c.status}`).join(' ');
    console.log(
      `      ${name}: phase ${pf.status?.phase ?? '-'} (generation ${pf.metadata.generation}, observed ` +
        `${pf.status?.observedGeneration ?? '-'}; ${conds || 'no conditions'}) -> kstatus ${k.status}: ${k.message}`,
    );
    return k;
  }

  async function phase(
    name: string,
    want: string,
    check: (p: PortForward) => boolean = () => true,
  ): Promise<PortForward> {
    return waitForStatus(
      cluster,
      ns,
      name,
      `phase ${want} of generation`,
      (p) => p.status?.phase === want && p.status.observedGeneration === p.metadata.generation && check(p),
      20_000,
    );
  }

  it('reads a Ready forward as Current', async function () {
    await applyPortForward(cluster, ns, 'ready', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    await phase('ready', 'Ready');
    assert.deepEqual(kstatus('ready').status, 'Current');
  });

  it('reads a forward waiting for its pod as InProgress', async function () {
    await applyPortForward(cluster, ns, 'waiting', { target: { pod: 'not-yet' }, ports: [{ port: 8080 }] });
    const pf = await waitForStatus(
      cluster,
      ns,
      'waiting',
      'a status without a pod',
      (p) => p.status?.observedGeneration === p.metadata.generation && !!p.status?.phase,
      20_000,
    );
    assert.notEqual(pf.status?.phase, 'Ready');
    const k = kstatus('waiting');
    assert.equal(k.status, 'InProgress', `${pf.status?.phase}: ${k.message}`);
  });

  it('reads a forward to a named port no container has as Failed, with the reason', async function () {
    await applyPortForward(cluster, ns, 'no-port', { target: { pod: 'echo' }, ports: [{ port: 'grpc' }] });
    await phase('no-port', 'Failed', (p) => condition(p, 'Stalled')?.status === 'True');
    const k = kstatus('no-port');
    assert.equal(k.status, 'Failed');
    assert.match(k.message, /grpc/);
  });

  it('reads a suspended forward as Current, and kubectl wait --for=condition=Ready does not claim it forwards', async function () {
    await applyPortForward(cluster, ns, 'paused', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
    await phase('paused', 'Ready');
    await patchSpec(cluster, ns, 'paused', { suspend: true });
    const pf = await phase('paused', 'Suspended');
    assert.equal(condition(pf, 'Ready'), undefined, 'no Ready condition');
    assert.equal(kstatus('paused').status, 'Current');
    const wait = cluster.kubectl([
      'wait',
      '--for=condition=Ready',
      '--timeout=1s',
      '-n',
      ns,
      'portforward/paused',
    ]);
    assert.notEqual(wait.code, 0, 'kubectl wait for Ready times out on a suspended forward');
    assert.match(wait.stderr, /timed out/, 'it failed by waiting, not for another reason');
  });

  it('reads an expired forward as Current', async function () {
    await applyPortForward(cluster, ns, 'short', {
      target: { pod: 'echo' },
      ports: [{ port: 8080 }],
      ttl: '2s',
    });
    const pf = await phase('short', 'Expired');
    assert.equal(condition(pf, 'Ready'), undefined, 'no Ready condition');
    assert.equal(kstatus('short').status, 'Current');
  });

  it('reads a forward whose spec changed before the operator saw it as InProgress (generation not observed)', async function () {
    await op.stop();
    try {
      await patchSpec(cluster, ns, 'ready', { ports: [{ port: 8080, name: 'http' }] });
      const k = kstatus('ready');
      assert.equal(k.status, 'InProgress');
      assert.match(k.message, /generation/);
    } finally {
      op = await startOperator({ kubeconfig: cluster.state.kubeconfig, namespaces: [ns] });
    }
    await phase('ready', 'Ready');
    assert.equal(kstatus('ready').status, 'Current');
  });
});
