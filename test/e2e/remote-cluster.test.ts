// End to end on two control planes: PortForwards whose spec.kubeConfig names a Secret with a
// kubeconfig of "the remote cluster" (tools/testenv/remote.ts) forward to pods over there, for
// every target kind, through the remote API server and with the Secret's credentials (a user of the
// remote cluster with the least privilege docs/remote-clusters.md lists). The Secret's failures say
// what to fix, a rotated Secret is used for new connections while open ones go on, a restarted remote
// API server is followed, and no credential appears in the operator's log.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import type { PortForward } from '../../src/api/v1alpha1';
import { TestCluster } from '../../tools/testenv/cluster';
import { freePort } from '../../tools/testenv/procs';
import { EchoServer, startNamedEchoServer, whoAnswers } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, condition, patchSpec, waitForStatus } from '../support/portforward';
import { RemoteCluster, startRemoteCluster } from '../../tools/testenv/remote';
import { poll } from '../support/wait';

describe('operator: targets in a remote cluster (spec.kubeConfig)', function () {
  this.timeout(180_000);
  let local: TestCluster;
  let remote: RemoteCluster;
  let ns: string;
  let remoteNs: string;
  let op: OperatorProcess;
  const servers: Record<string, EchoServer> = {};
  const tokens: string[] = [];

  /** A token of a remote user allowed what FORWARDER_RULES say in the remote namespace. */
  async function remoteUser(user: string): Promise<string> {
    const token = await remote.forwarderToken(remoteNs, user);
    tokens.push(token);
    return token;
  }

  async function putSecret(name: string, data: Record<string, string>): Promise<void> {
    const body = { metadata: { name }, stringData: data };
    await local.core.deleteNamespacedSecret({ namespace: ns, name }).catch(() => undefined);
    await poll(`Secret ${name} gone`, 10_000, async () =>
      local.core.readNamespacedSecret({ namespace: ns, name }).then(
        () => false,
        () => true,
      ),
    );
    await local.core.createNamespacedSecret({ namespace: ns, body });
  }

  async function endpointOf(name: string, timeoutMs = 30_000): Promise<number> {
    const pf = await waitForStatus(local, ns, name, 'Ready', (p) => p.status?.phase === 'Ready', timeoutMs);
    return pf.status!.endpoints![0].localPort;
  }

  function readyReason(
    name: string,
    reason: string,
    message: RegExp,
    timeoutMs = 30_000,
  ): Promise<PortForward> {
    return waitForStatus(
      local,
      ns,
      name,
      `Ready=False ${reason} ${message}`,
      (p) =>
        condition(p, 'Ready')?.status === 'False' &&
        condition(p, 'Ready')?.reason === reason &&
        message.test(p.status?.message ?? ''),
      timeoutMs,
    );
  }

  before(async function () {
    local = TestCluster.connect();
    remote = await startRemoteCluster();
    ns = await local.createNamespace('e2e-remote');
    remoteNs = await remote.cluster.createNamespace('orders');
    for (const name of ['web-a', 'web-b', 'any', 'web-a2']) servers[name] = await startNamedEchoServer(name);
    for (const name of ['web-a', 'web-b']) {
      await remote.cluster.createPod(
        remoteNs,
        name,
        [{ port: 8080, name: 'http', targetPort: servers[name].port }],
        {
          app: 'web',
        },
      );
    }
    await remote.cluster.createService(remoteNs, 'web', { app: 'web' }, [
      { name: 'http', port: 80, targetPort: 'http' },
    ]);
    await putSecret('remote-kubeconfig', { value: remote.kubeconfig(await remoteUser('forwarder-a')) });
    op = await startOperator({ kubeconfig: local.state.kubeconfig, namespaces: [ns] });
  });

  after(async function () {
    await op?.stop();
    for (const s of Object.values(servers)) await s.close();
    if (remoteNs) {
      await remote.cluster.deleteNamespacePodForwards(remoteNs, 9000);
      await remote.cluster.deleteNamespace(remoteNs);
    }
    if (ns) await local.deleteNamespace(ns);
    await remote?.stop();
  });

  afterEach(function () {
    assert.ok(op.alive(), `the operator is still running; its log:\n${op.logs().slice(-3000)}`);
  });

  const kubeConfig = { secretRef: { name: 'remote-kubeconfig' } };

  it('forwards to a pod over there, and says which API server in status (kubectl get pf -o wide)', async function () {
    await applyPortForward(local, ns, 'pod', {
      kubeConfig,
      target: { pod: 'web-a', namespace: remoteNs },
      ports: [{ port: 8080 }],
    });
    assert.equal(await whoAnswers(await endpointOf('pod')), 'web-a');
    const pf = await waitForStatus(local, ns, 'pod', 'status.remote', (p) => !!p.status?.remote);
    assert.deepEqual(pf.status!.remote, { server: remote.server, namespace: remoteNs });
    assert.equal(pf.status!.pod?.name, 'web-a');
    const wide = local.kubectl(['-n', ns, 'get', 'pf', 'pod', '-o', 'wide']);
    assert.equal(wide.code, 0, wide.stderr);
    assert.match(wide.stdout, /CLUSTER/);
    assert.ok(wide.stdout.includes(remote.server), wide.stdout);
  });

  it('forwards to a service by port name, and to a selector, over there', async function () {
    await applyPortForward(local, ns, 'svc', {
      kubeConfig,
      target: { service: 'web', namespace: remoteNs },
      ports: [{ port: 'http' }],
    });
    assert.match(await whoAnswers(await endpointOf('svc')), /^web-[ab]$/);
    await applyPortForward(local, ns, 'sel', {
      kubeConfig,
      target: { selector: { matchLabels: { app: 'web' } }, namespace: remoteNs },
      ports: [{ port: 'http' }],
    });
    assert.match(await whoAnswers(await endpointOf('sel')), /^web-[ab]$/);
  });

  it('forwards to the pods of a Deployment and a StatefulSet over there', async function () {
    await remote.cluster.forwardNamespacePods(remoteNs, 9000, servers.any.port);
    const ports = [{ name: 'sql', containerPort: 9000 }];
    await remote.cluster.createWorkload(remoteNs, 'Deployment', 'api', ports);
    await remote.cluster.createWorkload(remoteNs, 'StatefulSet', 'db', ports);
    await applyPortForward(local, ns, 'deploy', {
      kubeConfig,
      target: { deployment: 'api', namespace: remoteNs },
      ports: [{ port: 9000 }],
    });
    await applyPortForward(local, ns, 'sts', {
      kubeConfig,
      target: { statefulSet: 'db', namespace: remoteNs },
      ports: [{ port: 'sql' }],
    });
    assert.equal(await whoAnswers(await endpointOf('deploy', 60_000)), 'any');
    assert.equal(await whoAnswers(await endpointOf('sts', 60_000)), 'any');
    const sts = await waitForStatus(local, ns, 'sts', 'pod db-0', (p) => p.status?.pod?.name === 'db-0');
    assert.equal(sts.status!.endpoints![0].targetPort, 9000);
  });

  it('follows a pod replaced over there', async function () {
    const port = await endpointOf('pod');
    assert.equal(await whoAnswers(port), 'web-a');
    const before = (await waitForStatus(local, ns, 'pod', 'uid', (p) => !!p.status?.pod?.uid)).status!.pod!
      .uid;
    await remote.cluster.core.deleteNamespacedPod({
      namespace: remoteNs,
      name: 'web-a',
      gracePeriodSeconds: 0,
    });
    await poll('web-a gone', 30_000, () =>
      remote.cluster.core.readNamespacedPod({ namespace: remoteNs, name: 'web-a' }).then(
        () => false,
        () => true,
      ),
    );
    await remote.cluster.createPod(
      remoteNs,
      'web-a',
      [{ port: 8080, name: 'http', targetPort: servers['web-a2'].port }],
      {
        app: 'web',
      },
    );
    await waitForStatus(
      local,
      ns,
      'pod',
      'the new pod',
      (p) => !!p.status?.pod?.uid && p.status.pod.uid !== before,
      30_000,
    );
    await poll(
      'the new pod answers',
      30_000,
      async () => (await whoAnswers(port).catch(() => '')) === 'web-a2',
    );
  });

  it('says KubeConfigNotFound, KubeConfigInvalid, KubeConfigInsecure, RemoteUnauthorized and RemoteUnreachable, and recovers', async function () {
    const spec = { target: { pod: 'web-b', namespace: remoteNs }, ports: [{ port: 8080 }] };
    await applyPortForward(local, ns, 'broken', { ...spec, kubeConfig: { secretRef: { name: 'missing' } } });
    let pf = await readyReason(
      'broken',
      'KubeConfigNotFound',
      new RegExp(`Secret ${ns}/missing does not exist`),
    );
    assert.equal(pf.status!.phase, 'Degraded');

    const cases: [Record<string, string>, string, RegExp][] = [
      [{ value: 'clusters: [' }, 'KubeConfigInvalid', /not valid YAML/],
      [{ other: remote.kubeconfig('t') }, 'KubeConfigInvalid', /has no key "value" or "value.yaml"/],
      [
        {
          'value.yaml': remote.kubeconfig('', {
            user: { exec: { command: '/bin/true', apiVersion: 'client.authentication.k8s.io/v1' } },
          }),
        },
        'KubeConfigInsecure',
        /exec credentials.*--insecure-kubeconfig-exec/,
      ],
      [
        {
          value: remote.kubeconfig('t', {
            cluster: { 'insecure-skip-tls-verify': true, 'certificate-authority-data': undefined },
          }),
        },
        'KubeConfigInsecure',
        /insecure-skip-tls-verify.*--insecure-kubeconfig-tls/,
      ],
      [{ value: remote.kubeconfig('not-a-token-of-that-cluster') }, 'RemoteUnauthorized', /401/],
      // No API server there (a port nothing listens on): refused before the first list.
      [
        {
          value: remote.kubeconfig(tokens[0], {
            cluster: { server: `https://127.0.0.1:${await freePort()}` },
          }),
        },
        'RemoteUnreachable',
        /https:\/\/127\.0\.0\.1:\d+ is out of reach.*ECONNREFUSED/,
      ],
    ];
    for (const [i, [data, reason, message]] of cases.entries()) {
      const name = `broken-${i}`;
      await putSecret(name, data);
      await patchSpec(local, ns, 'broken', { kubeConfig: { secretRef: { name } } });
      pf = await readyReason('broken', reason, message);
      assert.equal(pf.status!.phase, 'Degraded');
    }
    // Fixed in the Secret (not the spec): picked up on the next read, with backoff.
    await putSecret('missing', { value: remote.kubeconfig(tokens[0]) });
    await patchSpec(local, ns, 'broken', { kubeConfig: { secretRef: { name: 'missing' } } });
    assert.equal(await whoAnswers(await endpointOf('broken', 90_000)), 'web-b');
  });

  it('uses a rotated Secret for new connections within 60 s, and keeps the open ones', async function () {
    const port = await endpointOf('svc');
    const open = net.connect({ port, host: '127.0.0.1' });
    const greeting = await new Promise<string>((resolve, reject) => {
      open.once('data', (d: Buffer) => resolve(d.toString()));
      open.once('error', reject);
    });
    assert.match(greeting, /^web-[ab]\n$/);
    // A new user's token; then the old user loses every right over there.
    await putSecret('remote-kubeconfig', { value: remote.kubeconfig(await remoteUser('forwarder-b')) });
    await poll('the operator to read the rotated Secret', 70_000, () =>
      Promise.resolve(/kubeconfig Secret changed/.test(op.logs())),
    );
    await remote.cluster.rbac.deleteNamespacedRoleBinding({ namespace: remoteNs, name: 'forwarder-a' });
    assert.match(await whoAnswers(port), /^web-[ab]$/, 'a new connection, with the new credentials');
    const echoed = await new Promise<string>((resolve, reject) => {
      open.once('data', (d: Buffer) => resolve(d.toString()));
      open.once('error', reject);
      open.write('still here\n');
    });
    assert.equal(echoed, 'still here\n', 'the connection opened before the rotation still relays');
    open.destroy();
  });

  it('resumes its watches after the remote API server restarts', async function () {
    await remote.restartApiServer(2_000);
    // kwok's own watches come back with a backoff of their own: wait until it forwards a new pod's
    // ports, so that what follows tests the operator's watches, not kwok's.
    await remote.cluster.waitNodeForwards();
    await remote.cluster.core.deleteNamespacedPod({
      namespace: remoteNs,
      name: 'web-a',
      gracePeriodSeconds: 0,
    });
    await waitForStatus(
      local,
      ns,
      'pod',
      'PodNotFound after the restart',
      (p) => condition(p, 'TargetResolved')?.reason === 'PodNotFound',
      60_000,
    );
    await remote.cluster.createPod(
      remoteNs,
      'web-a',
      [{ port: 8080, name: 'http', targetPort: servers['web-a'].port }],
      {
        app: 'web',
      },
    );
    const port = await endpointOf('pod', 60_000);
    await poll(
      'the re-created pod to answer',
      30_000,
      async () => (await whoAnswers(port).catch(() => '')) === 'web-a',
    );
  });

  it('says RemoteUnauthorized when the remote cluster stops accepting the credentials', async function () {
    // 'broken' reads Secret 'missing', with the token of forwarder-a, whose rights the rotation took.
    await remote.cluster.core.deleteNamespacedPod({
      namespace: remoteNs,
      name: 'web-b',
      gracePeriodSeconds: 0,
    });
    const pf = await readyReason('broken', 'RemoteUnauthorized', /403/, 60_000);
    assert.match(pf.status!.message!, /forbids the kubeconfig's user to list and watch targets/);
  });

  it('writes no credential into its log, status or Events', async function () {
    const log = op.logs();
    const events = await local.core.listNamespacedEvent({ namespace: ns });
    const pfs = local.kubectl(['-n', ns, 'get', 'pf', '-o', 'json']);
    for (const token of [...tokens, 'not-a-token-of-that-cluster']) {
      assert.ok(!log.includes(token), 'a token in the operator log');
      assert.ok(!JSON.stringify(events).includes(token), 'a token in an Event');
      assert.ok(!pfs.stdout.includes(token), 'a token in a status');
    }
    assert.match(log, /remote-kubeconfig|KubeConfig/, 'the log was read');
  });
});
