// Smoke tests of the path the operator will use, before the operator exists: the real kubectl
// port-forward through the real kube-apiserver to a kwok pod, node-side failures, and RBAC.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { TestCluster } from '../../tools/testenv/cluster';
import { NODE_NAME, POD_CIDR } from '../../tools/testenv/controlplane';
import { echoRoundTrip, EchoServer, randomPayload, sha256, startEchoServer } from '../support/net';
import { applyPortForward } from '../support/portforward';
import { poll } from '../support/wait';

describe('test control plane', function () {
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('smoke');
    echo = await startEchoServer();
  });

  after(async function () {
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it(`has node ${NODE_NAME} Ready, played by kwok`, async function () {
    const node = await cluster.core.readNode({ name: NODE_NAME });
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'True');
    assert.ok(node.status?.daemonEndpoints?.kubeletEndpoint?.Port, 'the node advertises a kubelet port');
  });

  it('runs the pinned Kubernetes release', function () {
    const out = cluster.kubectl(['version', '-o', 'json']);
    assert.equal(out.code, 0, out.stderr);
    const v = JSON.parse(out.stdout) as {
      serverVersion: { gitVersion: string };
      clientVersion: { gitVersion: string };
    };
    assert.equal(v.serverVersion.gitVersion, cluster.state.versions.kubernetes);
    assert.equal(v.clientVersion.gitVersion, cluster.state.versions.kubernetes);
  });

  it(`turns a pod on the kwok node Running and Ready with a pod IP from ${POD_CIDR}, a loopback address`, async function () {
    const pod = await cluster.createPod(ns, 'ready-check', [{ port: 8080, targetPort: echo.port }]);
    assert.equal(pod.status?.phase, 'Running');
    const ip = pod.status?.podIPs?.[0]?.ip ?? '';
    assert.equal(pod.status?.podIP, ip);
    const cidr = new net.BlockList();
    const [base, prefix] = POD_CIDR.split('/');
    cidr.addSubnet(base, Number(prefix), 'ipv4');
    assert.ok(net.isIPv4(ip) && cidr.check(ip, 'ipv4'), `pod IP ${ip} is in ${POD_CIDR}`);
    assert.ok(ip.startsWith('127.') && ip !== '127.0.0.1', 'in 127.0.0.0/8, not the node address');
  });

  it("finds this project's PortForwards under the plain names a newcomer types (no kwok CRD shadows them)", async function () {
    await applyPortForward(cluster, ns, 'plain', { target: { pod: 'nobody' }, ports: [{ port: 80 }] });
    const got = cluster.kubectl(['get', 'portforwards', '-n', ns, '-o', 'name']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.trim(), 'portforward.portforward.dev/plain');
    const described = cluster.kubectl(['describe', 'portforward', 'plain', '-n', ns]);
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /API Version:\s+portforward\.dev\/v1alpha1/);
    const short = cluster.kubectl(['get', 'pf', 'plain', '-n', ns, '-o', 'name']);
    assert.equal(short.stdout.trim(), 'portforward.portforward.dev/plain');
  });

  describe('kubectl port-forward', function () {
    it('reaches the test TCP server behind a pod with 8 MiB echoed intact', async function () {
      await cluster.createPod(ns, 'echo', [{ port: 8080, name: 'echo', targetPort: echo.port }]);
      const pf = await cluster.portForward(['-n', ns, 'pod/echo', ':8080']);
      try {
        const before = echo.accepted();
        const payload = randomPayload(8 * 1024 * 1024);
        const back = await echoRoundTrip(pf.localPort, payload);
        assert.equal(back.length, payload.length);
        assert.equal(sha256(back), sha256(payload));
        assert.equal(echo.accepted(), before + 1, 'the bytes went through the test server');
      } finally {
        await pf.stop();
      }
    });

    it('reports a node-side failure when the pod forward command is not installed', async function () {
      // kwok runs this command for each stream, as the kubelet once ran socat; it does not exist.
      await cluster.createPod(ns, 'no-socat', [
        { port: 5432, command: ['socat-not-installed', '-', 'TCP4:127.0.0.1:5432'] },
      ]);
      const pf = await cluster.portForward(['-n', ns, 'pod/no-socat', ':5432']);
      try {
        const sock = net.connect(pf.localPort, '127.0.0.1');
        sock.on('error', () => undefined);
        await poll('kubectl to report the forwarding error', 15_000, () =>
          Promise.resolve(/socat-not-installed/.test(pf.stderr())),
        );
        sock.destroy();
        assert.match(pf.stderr(), /error forwarding port 5432|an error occurred forwarding/);
        assert.match(pf.stderr(), /executable file not found|not found|no such file/i);
      } finally {
        await pf.stop();
      }
    });
  });

  describe('RBAC', function () {
    it('refuses pods/portforward to a user token without rights, and allows it once granted', async function () {
      const token = cluster.mintUserToken('mallory', ['testers']);
      const kubeconfig = cluster.kubeconfigFor(token);
      const whoami = cluster.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig });
      assert.equal(whoami.code, 0, whoami.stderr);
      const user = (
        JSON.parse(whoami.stdout) as { status: { userInfo: { username: string; groups: string[] } } }
      ).status.userInfo;
      assert.equal(user.username, 'mallory');
      assert.ok(user.groups.includes('testers'), `groups ${user.groups.join(',')}`);

      for (const verb of ['create', 'get']) {
        const can = cluster.kubectl(['auth', 'can-i', verb, 'pods', '--subresource=portforward', '-n', ns], {
          kubeconfig,
        });
        assert.equal(can.stdout.trim(), 'no', `can-i ${verb} pods/portforward`);
        assert.notEqual(can.code, 0);
      }
      const refused = await cluster.portForward(['-n', ns, 'pod/echo', ':8080'], kubeconfig).then(
        async (pf) => {
          // Older kubectl only learns of the refusal on the first connection.
          const sock = net.connect(pf.localPort, '127.0.0.1');
          sock.on('error', () => undefined);
          await poll('kubectl to report the refusal', 15_000, () =>
            Promise.resolve(/forbidden/i.test(pf.stderr())),
          );
          sock.destroy();
          await pf.stop();
          return pf.stderr();
        },
        (err: Error) => err.message,
      );
      assert.match(refused, /forbidden/i);
      assert.match(refused, /mallory/);

      // Granting the group the right proves the refusal was RBAC, and that groups reach the authorizer.
      await cluster.grantRole(
        ns,
        'port-forward',
        [
          { apiGroups: [''], resources: ['pods/portforward'], verbs: ['get', 'create'] },
          { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
        ],
        { group: 'testers' },
        'testers-port-forward',
      );
      await poll('RBAC to allow the group', 10_000, () =>
        Promise.resolve(
          cluster
            .kubectl(['auth', 'can-i', 'create', 'pods', '--subresource=portforward', '-n', ns], {
              kubeconfig,
            })
            .stdout.trim() === 'yes',
        ),
      );
      const pf = await cluster.portForward(['-n', ns, 'pod/echo', ':8080'], kubeconfig);
      try {
        const payload = randomPayload(64 * 1024);
        assert.equal(sha256(await echoRoundTrip(pf.localPort, payload)), sha256(payload));
      } finally {
        await pf.stop();
      }
    });

    it('refuses pods/portforward to a ServiceAccount token without rights', async function () {
      const token = await cluster.mintServiceAccountToken(ns, 'no-rights');
      const kubeconfig = cluster.kubeconfigFor(token);
      const can = cluster.kubectl(
        ['auth', 'can-i', 'create', 'pods', '--subresource=portforward', '-n', ns],
        {
          kubeconfig,
        },
      );
      assert.equal(can.stdout.trim(), 'no');
      const res = await fetchPortForward(cluster, ns, 'echo', token);
      assert.equal(res.status, 403);
      assert.match(res.body, new RegExp(`system:serviceaccount:${ns}:no-rights`));
    });
  });
});

/** A raw port-forward upgrade request, to see the API server's own answer. */
async function fetchPortForward(
  cluster: TestCluster,
  ns: string,
  pod: string,
  token: string,
): Promise<{ status: number; body: string }> {
  const https = await import('node:https');
  const url = new URL(`${cluster.state.server}/api/v1/namespaces/${ns}/pods/${pod}/portforward?ports=8080`);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'GET',
        ca: cluster.kc.getCurrentCluster()?.caData
          ? Buffer.from(cluster.kc.getCurrentCluster()!.caData!, 'base64')
          : undefined,
        headers: {
          authorization: `Bearer ${token}`,
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': Buffer.from('0123456789abcdef').toString('base64'),
          'sec-websocket-protocol': 'v4.channel.k8s.io',
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 101, body: '' });
    });
    req.on('error', reject);
    req.end();
  });
}
