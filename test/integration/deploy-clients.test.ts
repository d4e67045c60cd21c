// Who may connect to the forwards of the cluster install (deploy/): the operator, run with the
// ServiceAccount's token and the listen address of the shipped Deployment (the pod network), serves a
// forward to the pods of its own namespace only unless its spec says otherwise; and the admission
// policy checks a change that opens a forward to other namespaces like any other spec change. kwok's
// pods have addresses in 127.244.0.0/16, so a test client connects as a pod by binding to its address.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { KubectlResult, TestCluster } from '../../tools/testenv/cluster';
import { repoRoot } from '../../tools/testenv/paths';
import { EchoServer, lineFrom, servedFrom, startEchoServer } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, patchSpec, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

const DEPLOY = path.join(repoRoot, 'deploy');
const NS = 'portforward-system';

function ok(res: KubectlResult, what: string): string {
  assert.equal(res.code, 0, `${what} failed:\n${res.stderr}`);
  return res.stdout;
}

describe('deploy/: who may connect to the forwards of the cluster install', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  const namespaces: string[] = [];

  before(function () {
    cluster = TestCluster.connect();
    ok(cluster.kubectl(['apply', '-f', path.join(DEPLOY, 'namespace.yaml')]), 'applying the namespace');
    ok(cluster.kubectl(['apply', '-k', DEPLOY]), 'kubectl apply -k deploy/');
  });

  after(async function () {
    for (const ns of namespaces) await cluster.deleteNamespace(ns);
    // deploy/'s admission policy is cluster-wide: left in force on a reused control plane (make testenv-up),
    // it would answer for the chart's own policy in chart.test.ts and refuse in suites that do not expect it.
    ok(
      cluster.kubectl(['delete', '-f', path.join(DEPLOY, 'admission-policy.yaml'), '--ignore-not-found']),
      "removing deploy/'s admission policy",
    );
  });

  async function namespace(prefix: string): Promise<string> {
    const ns = await cluster.createNamespace(prefix);
    namespaces.push(ns);
    return ns;
  }

  describe("the operator with the ServiceAccount's token, listening as deployed", function () {
    let echo: EchoServer;
    let op: OperatorProcess | undefined;

    before(async function () {
      echo = await startEchoServer();
    });

    after(async function () {
      const code = await op?.stop();
      await echo?.close();
      if (op) {
        assert.equal(code, 0, `the operator exits 0 on SIGTERM; its log:\n${op.logs().slice(-3000)}`);
        // Its namespace watch included: the ServiceAccount holds every right the operator uses.
        assert.doesNotMatch(op.logs(), /forbidden/i, 'the operator was refused nothing');
      }
    });

    it('serves a forward to the pods of its own namespace only, unless its spec says otherwise', async function () {
      // The listen address of the shipped Deployment: the pod network, not loopback.
      const dep = await cluster.kc
        .makeApiClient(k8s.AppsV1Api)
        .readNamespacedDeployment({ name: 'portforward-operator', namespace: NS });
      const listen = dep.spec?.template.spec?.containers[0].args?.find((a) =>
        a.startsWith('--listen-address='),
      );
      assert.equal(listen, '--listen-address=0.0.0.0');
      const home = await namespace('deploy-home');
      const other = await namespace('deploy-other');
      await cluster.createPod(home, 'echo', [{ port: 8080, targetPort: echo.port }]);
      const addressOf = async (ns: string): Promise<string> =>
        (await cluster.createPod(ns, 'client', [])).status!.podIPs![0].ip;
      const [homeClient, otherClient] = [await addressOf(home), await addressOf(other)];
      const kubeconfig = cluster.kubeconfigFor(
        await cluster.mintServiceAccountToken(NS, 'portforward-operator'),
      );
      // Its two namespaces only (--namespace): a namespace other suites leave terminating would refuse
      // Events, and the Namespace watch needs its cluster-wide right all the same.
      op = await startOperator({ kubeconfig, namespaces: [home, other], extraArgs: [listen] });

      await applyPortForward(cluster, home, 'shared', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
      const pf = await waitForStatus(
        cluster,
        home,
        'shared',
        'Ready',
        (p) => p.status?.phase === 'Ready',
        15_000,
      );
      const port = pf.status!.endpoints![0].localPort;
      assert.equal(await servedFrom(port, homeClient), true, 'a pod of its own namespace is served');
      assert.equal(await lineFrom(port, otherClient), '', 'a pod of another namespace is refused');

      // Its spec opens it to the other namespace (every namespace carries kubernetes.io/metadata.name).
      await patchSpec(cluster, home, 'shared', {
        allowedClients: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': other } } }],
      });
      await poll('the other namespace to be served', 10_000, () => servedFrom(port, otherClient));
      assert.equal(await lineFrom(port, homeClient), '', 'its own namespace is no longer listed');
    });
  });

  describe('the admission policy', function () {
    it('checks a change that opens a forward to other namespaces (spec.allowedClients) like any spec change', async function () {
      const ns = await namespace('deploy-open');
      const user = `opener-${crypto.randomBytes(3).toString('hex')}`;
      const kubeconfig = cluster.kubeconfigFor(cluster.mintUserToken(user));
      const bind = (name: string, rules: k8s.V1PolicyRule[]): Promise<void> =>
        cluster.grantRole(ns, name, rules, { user });
      // May change PortForwards in ns, may not port-forward there.
      await bind('manage-portforwards', [
        { apiGroups: ['portforward.dev'], resources: ['portforwards'], verbs: ['get', 'patch'] },
      ]);
      ok(
        cluster.kubectl(['apply', '-f', '-'], {
          input: JSON.stringify({
            apiVersion: 'portforward.dev/v1alpha1',
            kind: 'PortForward',
            metadata: { name: 'opened', namespace: ns },
            spec: { target: { pod: 'web' }, ports: [{ port: 8080 }] },
          }),
        }),
        'creating it as admin',
      );
      const openToAll = (): KubectlResult =>
        cluster.kubectl(
          [
            'patch',
            'portforwards.portforward.dev',
            'opened',
            '-n',
            ns,
            '--type=merge',
            '-p',
            JSON.stringify({ spec: { allowedClients: [{ namespaceSelector: {} }] } }),
          ],
          { kubeconfig },
        );
      await poll('the change to be refused by the policy, saying why', 15_000, () => {
        const res = openToAll();
        return Promise.resolve(
          res.code !== 0 &&
            res.stderr.includes(`${user} may not create or change PortForwards in namespace ${ns}`),
        );
      });
      await bind('may-port-forward', [
        { apiGroups: [''], resources: ['pods/portforward'], verbs: ['create'] },
      ]);
      await poll('the same change to be admitted once the user may port-forward there', 15_000, () =>
        Promise.resolve(openToAll().code === 0),
      );
    });
  });
});
