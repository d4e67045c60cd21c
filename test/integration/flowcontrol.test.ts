// deploy/flowcontrol.yaml on a real API server: the operator's ServiceAccount is classified into the
// priority level shipped for it (kube-apiserver names the FlowSchema and the priority level that served
// a request in the X-Kubernetes-PF-* response headers), and nobody else is.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import * as https from 'node:https';
import * as path from 'node:path';
import { TestCluster } from '../../tools/testenv/cluster';
import { repoRoot } from '../../tools/testenv/paths';
import { statusCode } from '../../src/kube/client';

const FILE = path.join(repoRoot, 'deploy', 'flowcontrol.yaml');
const NAME = 'portforward-operator';

/** GETs `apiPath` as the kubeconfig's user; the status and the APF headers of the answer. */
async function classify(
  kc: k8s.KubeConfig,
  apiPath: string,
): Promise<{ status: number; fs?: string; pl?: string }> {
  const o: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(o);
  return new Promise((resolve, reject) => {
    const req = https.get(`${kc.getCurrentCluster()!.server}${apiPath}`, o, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          fs: res.headers['x-kubernetes-pf-flowschema-uid'] as string | undefined,
          pl: res.headers['x-kubernetes-pf-prioritylevel-uid'] as string | undefined,
        }),
      );
    });
    req.on('error', reject);
  });
}

describe('deploy/flowcontrol.yaml: API Priority and Fairness for the operator on a real API server', function () {
  let cluster: TestCluster;
  let uids: { fs: string; pl: string };

  before(async function () {
    cluster = TestCluster.connect();
    const applied = cluster.kubectl(['apply', '-f', FILE]);
    assert.equal(applied.code, 0, applied.stderr);
    await cluster.core
      .createNamespace({ body: { metadata: { name: 'portforward-system' } } })
      .catch((err: unknown) => {
        if (statusCode(err) !== 409) throw err;
      });
    const fc = cluster.kc.makeApiClient(k8s.FlowcontrolApiserverV1Api);
    const fs = await fc.readFlowSchema({ name: NAME });
    const pl = await fc.readPriorityLevelConfiguration({ name: NAME });
    uids = { fs: fs.metadata!.uid!, pl: pl.metadata!.uid! };
  });

  after(function () {
    cluster?.kubectl(['delete', '--ignore-not-found', '-f', FILE]);
  });

  it("classifies the operator's ServiceAccount into its own priority level, whatever it asks for", async function () {
    const token = await cluster.mintServiceAccountToken('portforward-system', NAME);
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cluster.kubeconfigFor(token));
    for (const p of ['/apis/portforward.dev/v1alpha1/portforwards', '/api/v1/namespaces/default/pods']) {
      const r = await classify(kc, p);
      assert.equal(r.fs, uids.fs, `${p}: the FlowSchema ${NAME} (status ${r.status})`);
      assert.equal(r.pl, uids.pl, `${p}: the priority level ${NAME}`);
    }
  });

  it('leaves every other client where it was', async function () {
    const other = await cluster.mintServiceAccountToken('default', 'not-the-operator');
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cluster.kubeconfigFor(other));
    for (const k of [kc, cluster.kc]) {
      const r = await classify(k, '/api/v1/namespaces/default/pods');
      assert.ok(r.fs, 'the API server names a FlowSchema (APF is on)');
      assert.notEqual(r.fs, uids.fs);
      assert.notEqual(r.pl, uids.pl);
    }
  });
});
