// The operator's API calls against the real API server share keep-alive connections
// (src/kube/connections.ts): client-node 2.0.1 alone opens one TCP connection and TLS handshake per
// call. Counted with undici's diagnostics channel, which reports every connection it opens.
import * as assert from 'node:assert/strict';
import * as dc from 'node:diagnostics_channel';
import * as k8s from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/kube/client';
import { TestCluster } from '../../tools/testenv/cluster';

describe('API calls on keep-alive connections', function () {
  let cluster: TestCluster;
  let opened = 0;
  const count = (): void => void opened++;

  before(function () {
    cluster = TestCluster.connect();
    dc.subscribe('undici:client:connected', count);
  });
  after(function () {
    dc.unsubscribe('undici:client:connected', count);
  });

  async function connectionsFor(kc: k8s.KubeConfig, calls: number): Promise<number> {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    opened = 0;
    for (let i = 0; i < calls; i++) await core.readNamespace({ name: 'default' });
    await Promise.all(Array.from({ length: calls }, () => core.readNamespace({ name: 'default' })));
    return opened;
  }

  it("the operator's KubeConfig makes 40 calls on at most two connections; client-node alone opens one per call", async function () {
    const plain = new k8s.KubeConfig();
    plain.loadFromFile(cluster.state.kubeconfig);
    const ours = await connectionsFor(loadKubeConfig({ file: cluster.state.kubeconfig }), 20);
    const theirs = await connectionsFor(plain, 20);
    assert.ok(ours >= 1 && ours <= 2, `the operator's calls opened ${ours} connections`);
    assert.ok(
      theirs >= 20,
      `client-node alone opened ${theirs}: if it reuses them now, connections.ts can go`,
    );
  });
});
