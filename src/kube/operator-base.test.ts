// The parts of @dot-i/k8s-operator the operator uses (the constructor, start() -> init(), stop() and the
// kubeConfig/k8sApi fields), on the one @kubernetes/client-node 2.x copy that npm overrides give it.
import Operator from '@dot-i/k8s-operator';
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { constructOnKubeConfig } from './operator-base';

class Probe extends Operator {
  inits = 0;
  get config(): k8s.KubeConfig {
    return this.kubeConfig;
  }
  get core(): k8s.CoreV1Api {
    return this.k8sApi;
  }
  protected init(): Promise<void> {
    this.inits++;
    return Promise.resolve();
  }
}

function goodKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: false }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

describe('dot-i on client-node 2.x', function () {
  let saved: string | undefined;
  beforeEach(function () {
    saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = '/nonexistent/kc';
  });
  afterEach(function () {
    if (saved === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = saved;
  });

  it('shares the operator’s client-node module (one copy)', function () {
    const fromDotI = require.resolve('@kubernetes/client-node', {
      paths: [require.resolve('@dot-i/k8s-operator')],
    });
    assert.equal(fromDotI, require.resolve('@kubernetes/client-node'));
  });

  it('cannot be constructed on its own while $KUBECONFIG is broken (why the wrapper exists)', function () {
    assert.throws(() => new Probe(), /ENOENT|nonexistent/);
  });

  it('constructs on the given KubeConfig, whatever $KUBECONFIG says, and runs init on start', async function () {
    const kc = goodKubeConfig();
    const op = constructOnKubeConfig(kc, () => new Probe());
    assert.equal(op.config.getCurrentCluster()?.server, 'https://127.0.0.1:1');
    assert.ok(op.core instanceof k8s.CoreV1Api);
    await op.start();
    assert.equal(op.inits, 1);
    op.stop();
    // The override ended with the construction: a plain KubeConfig searches again.
    assert.throws(() => new k8s.KubeConfig().loadFromDefault(), /ENOENT|nonexistent/);
  });
});
