import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KubeConfigError, loadKubeConfig } from './client';

const GOOD = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;

describe('loadKubeConfig: where the kubeconfig comes from, and one clear line when it cannot', function () {
  let dir: string;
  let home: string;
  let good: string;
  const none = { KUBERNETES_SERVICE_HOST: undefined };

  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kc-'));
    home = path.join(dir, 'home');
    fs.mkdirSync(path.join(home, '.kube'), { recursive: true });
    good = path.join(dir, 'good');
    fs.writeFileSync(good, GOOD);
  });
  afterEach(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function refuses(sources: Parameters<typeof loadKubeConfig>[0], message: RegExp): void {
    assert.throws(
      () => loadKubeConfig(sources),
      (err: Error) =>
        err instanceof KubeConfigError && message.test(err.message) && !err.message.includes('\n'),
    );
  }

  it('--kubeconfig wins over a missing, malformed or unreadable $KUBECONFIG and a malformed ~/.kube/config', function () {
    const malformed = path.join(dir, 'malformed');
    fs.writeFileSync(malformed, 'clusters: [: nope');
    fs.writeFileSync(path.join(home, '.kube', 'config'), 'clusters: [: nope');
    for (const broken of ['/nonexistent/kc', malformed, dir]) {
      const kc = loadKubeConfig({ file: good, env: { KUBECONFIG: broken }, home });
      assert.equal(kc.getCurrentCluster()?.server, 'https://127.0.0.1:6443');
    }
  });

  it('names the file and the flag when --kubeconfig cannot be used', function () {
    refuses(
      { file: '/nonexistent/kc', home },
      /^cannot read the kubeconfig \/nonexistent\/kc \(--kubeconfig\): no such file$/,
    );
    const malformed = path.join(dir, 'm');
    fs.writeFileSync(malformed, 'clusters: [: nope');
    refuses({ file: malformed, home }, /the kubeconfig .*\/m \(--kubeconfig\) is not valid: /);
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, 'apiVersion: v1\nkind: Config\n');
    refuses({ file: empty, home }, /\(--kubeconfig\) has no current context/);
  });

  it('reads $KUBECONFIG, then ~/.kube/config, naming which one failed', function () {
    assert.ok(loadKubeConfig({ env: { KUBECONFIG: good }, home }).getCurrentCluster());
    refuses(
      { env: { KUBECONFIG: '/nonexistent/kc' }, home },
      /\/nonexistent\/kc \(\$KUBECONFIG\): no such file/,
    );
    fs.writeFileSync(path.join(home, '.kube', 'config'), 'clusters: [: nope');
    refuses({ env: {}, home }, /\.kube\/config \(the default location\) is not valid/);
    fs.writeFileSync(path.join(home, '.kube', 'config'), GOOD);
    assert.ok(loadKubeConfig({ env: {}, home }).getCurrentCluster());
  });

  it('refuses an unreadable file as such', function () {
    if (process.getuid?.() === 0) {
      // root reads any file whatever its mode: a folder stands in for an unreadable file here.
      refuses({ env: { KUBECONFIG: dir }, home }, /\(\$KUBECONFIG\): it is a folder/);
      return;
    }
    const locked = path.join(dir, 'locked');
    fs.writeFileSync(locked, GOOD, { mode: 0o000 });
    refuses({ env: { KUBECONFIG: locked }, home }, /\(\$KUBECONFIG\): permission denied/);
  });

  it('with nothing to find outside a cluster, names every place it looked', function () {
    refuses(
      { env: none, home },
      /^no kubeconfig: --kubeconfig is not given, \$KUBECONFIG is not set, .*\.kube\/config does not exist, and this is not a pod \(KUBERNETES_SERVICE_HOST is unset\)/,
    );
  });
});
