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

  /** Connections opened by `calls` reads, one after another (`atOnce`: all at the same time). */
  async function connectionsFor(core: k8s.CoreV1Api, calls: number, atOnce = false): Promise<number> {
    opened = 0;
    const read = (): Promise<unknown> => core.readNamespace({ name: 'default' });
    if (atOnce) await Promise.all(Array.from({ length: calls }, read));
    else for (let i = 0; i < calls; i++) await read();
    return opened;
  }

  it("the operator's KubeConfig makes 20 calls in turn on one or two connections; client-node alone opens one per call", async function () {
    const ours = loadKubeConfig({ file: cluster.state.kubeconfig }).makeApiClient(k8s.CoreV1Api);
    const plain = new k8s.KubeConfig();
    plain.loadFromFile(cluster.state.kubeconfig);
    const theirs = plain.makeApiClient(k8s.CoreV1Api);

    const inTurn = await connectionsFor(ours, 20);
    assert.ok(inTurn >= 1 && inTurn <= 2, `20 calls in turn opened ${inTurn} connections`);
    const alone = await connectionsFor(theirs, 20);
    assert.ok(alone >= 20, `client-node alone opened ${alone}: if it reuses them now, connections.ts can go`);
    // Calls at the same time take a connection each (HTTP/1.1), kept for the next ones: 5 rounds of
    // 8 at once open far fewer than 40 (a round may start before the last one's sockets are free).
    let rounds = 0;
    for (let r = 0; r < 5; r++) rounds += await connectionsFor(ours, 8, true);
    assert.ok(rounds >= 1 && rounds <= 24, `5 rounds of 8 calls at once opened ${rounds} connections`);
  });
});
