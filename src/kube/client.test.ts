import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { apiHint, apiMessage, KubeConfigError, loadKubeConfig } from './client';

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

describe('apiMessage and apiHint: one clear line, and what to do (issue 11)', function () {
  it('says a refused token in a word, with what to do', function () {
    // client-node makes its message "HTTP-Code: 401\nMessage: Unauthorized\nBody: undefined\nHeaders: {...}".
    const err = new k8s.ApiException(401, 'Unauthorized', undefined, {});
    assert.equal(apiMessage(err), 'Unauthorized (HTTP 401)');
    assert.match(apiHint(err) ?? '', /refused the operator's credentials/);
    assert.match(
      apiHint(Object.assign(new Error('writing status failed (401)'), { code: 401 })) ?? '',
      /credentials/,
    );
  });

  it('names the cause of a request that got no answer, and says the API server is unreachable', function () {
    const err = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:6443') });
    assert.equal(apiMessage(err), 'fetch failed: connect ECONNREFUSED 127.0.0.1:6443');
    assert.match(apiHint(err) ?? '', /cannot reach the API server/);
  });

  it("uses the API server's own message when there is one, and hints at RBAC on 403", function () {
    const body = JSON.stringify({
      kind: 'Status',
      code: 403,
      message: 'pods is forbidden: User "x" cannot list',
    });
    const err = new k8s.ApiException(403, 'Forbidden', body, {});
    assert.equal(apiMessage(err), 'pods is forbidden: User "x" cannot list');
    assert.match(apiHint(err) ?? '', /RBAC/);
    assert.equal(apiHint(new Error('something else')), undefined);
  });
});
