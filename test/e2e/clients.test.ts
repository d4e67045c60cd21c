// End to end: who may connect to a forward on a listener other hosts can reach. The operator listens
// on 0.0.0.0; kwok gives pods addresses in 127.244.0.0/16 (tools/testenv/controlplane.ts), so a client that
// binds its socket to a pod's address connects as that pod, and the operator tells who it is from the
// source address against the pod IPs in its watch caches.
import * as assert from 'node:assert/strict';
import { TestCluster } from '../../tools/testenv/cluster';
import { freePort, httpGet } from '../../tools/testenv/procs';
import { EchoServer, lineFrom, servedFrom, startEchoServer } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import type { PortForwardSpec } from '../../src/api/v1alpha1';
import { applyPortForward, deletePortForward, getPortForward, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

/** An address inside kwok's pod CIDR that no pod has. */
const NO_POD = '127.244.255.254';

describe('operator on 0.0.0.0: who may connect to a forward', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let home: string;
  let other: string;
  let friends: string;
  let echo: EchoServer;
  let op: OperatorProcess;
  let metricsPort: number;
  /** The address of the pod `client` per namespace. */
  const ip: Record<string, string> = {};

  async function podIP(ns: string, name: string): Promise<string> {
    const pod = await cluster.core.readNamespacedPod({ name, namespace: ns });
    return pod.status!.podIPs![0].ip;
  }

  async function forward(name: string, spec: Partial<PortForwardSpec> = {}): Promise<number> {
    await applyPortForward(cluster, home, name, { target: { pod: 'web' }, ports: [{ port: 8080 }], ...spec });
    const pf = await waitForStatus(cluster, home, name, 'Ready', (p) => p.status?.phase === 'Ready', 20_000);
    return pf.status!.endpoints![0].localPort;
  }

  before(async function () {
    cluster = TestCluster.connect();
    home = await cluster.createNamespace('cl-home');
    other = await cluster.createNamespace('cl-other');
    friends = await cluster.createNamespace('cl-friends');
    assert.equal(cluster.kubectl(['label', 'namespace', friends, 'team=friends']).code, 0);
    echo = await startEchoServer();
    await cluster.createPod(home, 'web', [{ port: 8080, targetPort: echo.port }]);
    for (const ns of [home, other, friends]) {
      await cluster.createPod(ns, 'client', [], { role: 'client' });
      ip[ns] = await podIP(ns, 'client');
    }
    metricsPort = await freePort();
    op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [home, other, friends],
      extraArgs: [
        '--listen-address=0.0.0.0',
        '--allowed-listen-addresses=127.0.0.1',
        `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      ],
    });
  });

  after(async function () {
    const code = await op?.stop();
    await echo?.close();
    for (const ns of [home, other, friends]) if (ns) await cluster.deleteNamespace(ns);
    assert.equal(code, 0, 'the operator exits 0 on SIGTERM');
  });

  afterEach(function () {
    assert.ok(op.alive(), `the operator is still running; its log:\n${op.logs().slice(-4000)}`);
  });

  it('runs on a control plane whose pods have addresses in 127.0.0.0/8 (status.podIPs)', async function () {
    const addresses = [home, other, friends].map((ns) => ip[ns]);
    for (const a of addresses) assert.match(a, /^127\.244\.\d+\.\d+$/, `pod IP ${a}`);
    assert.equal(new Set(addresses).size, 3, 'each pod its own address');
    assert.notEqual(await podIP(home, 'web'), '127.0.0.1');
  });

  it('by default serves a pod of its own namespace and refuses a pod of another one and an address that is no pod', async function () {
    const port = await forward('own');
    assert.equal(await servedFrom(port, ip[home]), true, 'a pod of the same namespace is served');
    assert.equal(await lineFrom(port, ip[other]), '', 'a pod of another namespace is refused');
    assert.equal(await lineFrom(port, NO_POD), '', 'an address that is no pod is refused');
    assert.equal(await lineFrom(port, '127.0.0.1'), '', "the node's address (host network) is no pod");
    const pf = await waitForStatus(
      cluster,
      home,
      'own',
      'the refusals counted',
      (p) => p.status?.connections?.refused === 3,
    );
    assert.equal(pf.status?.connections?.total, 1, 'refused clients are not connections');
    assert.deepEqual(
      { ...pf.status?.refusedClients, last: undefined },
      { notAPod: 2, podNotAllowed: 1, outsideSourceRanges: 0, last: undefined },
    );
    assert.equal(pf.status?.refusedClients?.last?.address, '127.0.0.1');
    assert.equal(pf.status?.refusedClients?.last?.reason, 'notAPod');

    const metrics = (await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)).body;
    const series = (reason: string): string =>
      `portforward_clients_refused_total{namespace="${home}",name="own",reason="${reason}"}`;
    assert.ok(metrics.includes(`${series('notAPod')} 2`), `notAPod in:\n${metrics}`);
    assert.ok(metrics.includes(`${series('podNotAllowed')} 1`), 'podNotAllowed');
  });

  it('names the refused pod in the log, at most once in a while, while status counts every refusal', async function () {
    const port = await forward('burst');
    for (let i = 0; i < 20; i++) assert.equal(await lineFrom(port, ip[other]), '');
    await waitForStatus(
      cluster,
      home,
      'burst',
      '20 refusals',
      (p) => p.status?.refusedClients?.podNotAllowed === 20,
    );
    const lines = op
      .logs()
      .split('\n')
      .filter((l) => l.includes('"message":"refused a client"') && l.includes(`${home}/burst`));
    assert.ok(lines.length >= 1 && lines.length < 20, `${lines.length} log lines for 20 refusals`);
    assert.match(lines[0], new RegExp(`"pod":"${other}/client"`));
    assert.match(lines[0], /"reason":"podNotAllowed"/);
  });

  it('with allowedClients [{namespaceSelector: {matchLabels: {team: friends}}}] serves a pod of a team=friends namespace and refuses its own namespace', async function () {
    const port = await forward('friends', {
      allowedClients: [{ namespaceSelector: { matchLabels: { team: 'friends' } } }],
    });
    assert.equal(await servedFrom(port, ip[friends]), true, 'a pod of a team=friends namespace is served');
    assert.equal(await lineFrom(port, ip[home]), '', "a pod of the forward's own namespace is refused");
    assert.equal(await lineFrom(port, ip[other]), '', 'a pod of an unlabelled namespace is refused');

    // A namespace that gets the label is admitted, without a change to the PortForward, and loses it again.
    assert.equal(cluster.kubectl(['label', 'namespace', other, 'team=friends']).code, 0);
    await poll('a pod of the newly labelled namespace to be served', 10_000, () =>
      servedFrom(port, ip[other]),
    );
    assert.equal(cluster.kubectl(['label', 'namespace', other, 'team-']).code, 0);
    await poll(
      'it to be refused again once the label is gone',
      10_000,
      async () => (await lineFrom(port, ip[other])) === '',
    );
  });

  it('follows pods: one created later in its namespace is served, and refused once deleted', async function () {
    const port = await forward('follow');
    await cluster.createPod(home, 'late', []);
    const late = await podIP(home, 'late');
    await poll('the new pod to be served', 10_000, () => servedFrom(port, late));
    await cluster.core.deleteNamespacedPod({ name: 'late', namespace: home, gracePeriodSeconds: 0 });
    await poll(
      'its address to be refused once the pod is gone',
      20_000,
      async () => (await lineFrom(port, late)) === '',
    );
  });

  it('with podSelector serves the selected pods of its namespace only', async function () {
    await cluster.createPod(home, 'plain', []);
    const plain = await podIP(home, 'plain');
    const port = await forward('selected', {
      allowedClients: [{ podSelector: { matchLabels: { role: 'client' } } }],
    });
    assert.equal(await servedFrom(port, ip[home]), true);
    assert.equal(await lineFrom(port, plain), '', 'a pod without the label is refused');
  });

  it('with allowedClients and allowedSourceRanges both set, admits a client either admits', async function () {
    const port = await forward('both', {
      allowedClients: [{ namespaceSelector: { matchLabels: { team: 'friends' } } }],
      allowedSourceRanges: ['127.0.0.1/32'],
    });
    assert.equal(await servedFrom(port, '127.0.0.1'), true, 'inside allowedSourceRanges');
    assert.equal(await servedFrom(port, ip[friends]), true, 'a pod allowedClients selects');
    assert.equal(await lineFrom(port, ip[home]), '', 'neither');
  });

  it('with allowedSourceRanges alone, consults no pods', async function () {
    const port = await forward('ranges', { allowedSourceRanges: ['127.244.0.0/16'] });
    assert.equal(await servedFrom(port, ip[other]), true, 'a pod of another namespace inside the range');
    assert.equal(await servedFrom(port, NO_POD), true, 'an address that is no pod, inside the range');
    assert.equal(await lineFrom(port, '127.0.0.1'), '');
    const pf = await waitForStatus(
      cluster,
      home,
      'ranges',
      'the refusal',
      (p) => p.status?.connections?.refused === 1,
    );
    assert.equal(pf.status?.refusedClients?.outsideSourceRanges, 1);
  });

  it('on a loopback-only listener keeps the behaviour from before: everyone who reaches it', async function () {
    const port = await forward('loopback', { listenAddress: '127.0.0.1' });
    assert.equal(await servedFrom(port, '127.0.0.1'), true);
    assert.equal(await servedFrom(port, ip[other]), true);
    await deletePortForward(cluster, home, 'loopback');
    assert.equal((await getPortForward(cluster, home, 'own')).status?.phase, 'Ready');
  });
});
