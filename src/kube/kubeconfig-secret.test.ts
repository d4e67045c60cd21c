import * as assert from 'node:assert/strict';
import * as https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { parseKubeConfigSecret, readKubeConfigSecret, safeServer } from './kubeconfig-secret';

const TOKEN = 'sekret-token-6f1d2a';
const STRICT = { allowExec: false, allowInsecureTls: false };
const REF = { namespace: 'team-a', name: 'staging-kubeconfig' };

function kubeconfig(user: string, cluster = "server: 'https://user:pw@10.0.0.1:6443/'"): string {
  return `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {${cluster}}}, {name: other, cluster: {server: 'https://other'}}]
users: [{name: u, user: {${user}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('a kubeconfig in a Secret (spec.kubeConfig)', function () {
  it('is read under "value", else "value.yaml", on its current context, with the server shown without user info', async function () {
    for (const key of ['value', 'value.yaml']) {
      const got = parseKubeConfigSecret({ [key]: b64(kubeconfig(`token: ${TOKEN}`)) }, REF, STRICT);
      assert.ok(got.ok, JSON.stringify(got));
      assert.equal(got.server, 'https://10.0.0.1:6443');
      assert.equal(got.kc.getCurrentCluster()?.server, 'https://10.0.0.1:6443', 'no user info to quote');
      const opts: https.RequestOptions = {};
      await got.kc.applyToHTTPSOptions(opts);
      assert.equal((opts.headers as Record<string, string>).Authorization, `Bearer ${TOKEN}`);
    }
  });

  it('is read under the key secretRef names, and only there', function () {
    const data = { value: b64(kubeconfig(`token: ${TOKEN}`)) };
    const got = parseKubeConfigSecret(data, { ...REF, key: 'config' }, STRICT);
    assert.deepEqual(got, {
      ok: false,
      reason: 'KubeConfigInvalid',
      message: 'Secret team-a/staging-kubeconfig has no key "config"',
    });
    const none = parseKubeConfigSecret({}, REF, STRICT);
    assert.match(none.ok ? '' : none.message, /no key "value" or "value.yaml"/);
  });

  it('that is not YAML is KubeConfigInvalid, told by line and column, without quoting the text', function () {
    const got = parseKubeConfigSecret({ value: b64(`a: [\n token: ${TOKEN}\n b`) }, REF, STRICT);
    assert.equal(got.ok, false);
    assert.equal(!got.ok && got.reason, 'KubeConfigInvalid');
    assert.match(!got.ok ? got.message : '', /not valid YAML \(line 3, column \d+\)/);
    assert.doesNotMatch(JSON.stringify(got), new RegExp(TOKEN));
  });

  it('without a usable current context is KubeConfigInvalid, saying which part is missing', function () {
    const cases: [string, RegExp][] = [
      ['just: text', /it has no clusters and contexts/],
      [kubeconfig('token: t').replace('current-context: x', ''), /has no current-context/],
      [
        kubeconfig('token: t').replace('current-context: x', 'current-context: y'),
        /context "y" is not defined/,
      ],
      [kubeconfig('token: t', 'insecure: false'), /cluster "c" of context "x" has no server/],
      [
        kubeconfig('token: t').replace('user: u}', 'user: nobody}'),
        /user "nobody" of context "x" is not defined/,
      ],
      [kubeconfig('token: t', "server: 'not a url'"), /is not a URL/],
    ];
    for (const [text, message] of cases) {
      const got = parseKubeConfigSecret({ value: b64(text) }, REF, STRICT);
      assert.equal(got.ok ? 'ok' : got.reason, 'KubeConfigInvalid', text);
      assert.match(!got.ok ? got.message : '', message);
    }
  });

  it('with exec or auth-provider users is refused (KubeConfigInsecure) unless --insecure-kubeconfig-exec', function () {
    for (const user of [
      'exec: {command: /bin/sh, apiVersion: client.authentication.k8s.io/v1}',
      'auth-provider: {name: oidc}',
    ]) {
      const got = parseKubeConfigSecret({ value: b64(kubeconfig(user)) }, REF, STRICT);
      assert.equal(got.ok ? 'ok' : got.reason, 'KubeConfigInsecure');
      assert.match(!got.ok ? got.message : '', /--insecure-kubeconfig-exec/);
      const allowed = parseKubeConfigSecret({ value: b64(kubeconfig(user)) }, REF, {
        ...STRICT,
        allowExec: true,
      });
      assert.ok(allowed.ok);
    }
  });

  it('with insecure-skip-tls-verify is refused unless --insecure-kubeconfig-tls', function () {
    const text = kubeconfig('token: t', "server: 'https://h', insecure-skip-tls-verify: true");
    const got = parseKubeConfigSecret({ value: b64(text) }, REF, STRICT);
    assert.equal(got.ok ? 'ok' : got.reason, 'KubeConfigInsecure');
    assert.match(!got.ok ? got.message : '', /--insecure-kubeconfig-tls/);
    assert.ok(parseKubeConfigSecret({ value: b64(text) }, REF, { ...STRICT, allowInsecureTls: true }).ok);
  });

  it('naming files is refused even with both flags: they would be read on the operator (its own token)', function () {
    const both = { allowExec: true, allowInsecureTls: true };
    for (const [user, cluster] of [
      ['token-file: /var/run/secrets/kubernetes.io/serviceaccount/token', undefined],
      ['client-certificate: /etc/cert, client-key: /etc/key', undefined],
      ['token: t', "server: 'https://h', certificate-authority: /etc/ca.crt"],
    ] as [string, string | undefined][]) {
      const got = parseKubeConfigSecret({ value: b64(kubeconfig(user, cluster)) }, REF, both);
      assert.equal(got.ok ? 'ok' : got.reason, 'KubeConfigInsecure', user);
      assert.match(!got.ok ? got.message : '', /names files .* embed the data/);
    }
  });

  it('is KubeConfigNotFound for a missing Secret and KubeConfigForbidden, naming the RoleBinding, for a 403', async function () {
    const answering = (code: number): Pick<k8s.CoreV1Api, 'readNamespacedSecret'> => ({
      readNamespacedSecret: () => Promise.reject(new k8s.ApiException(code, 'no', '{}', {})),
    });
    const missing = await readKubeConfigSecret(
      answering(404),
      REF,
      STRICT,
      'portforward-system/portforward-operator',
    );
    assert.deepEqual(missing, {
      ok: false,
      reason: 'KubeConfigNotFound',
      message: 'Secret team-a/staging-kubeconfig does not exist',
    });
    const forbidden = await readKubeConfigSecret(
      answering(403),
      REF,
      STRICT,
      'portforward-system/portforward-operator',
    );
    assert.equal(forbidden.ok ? 'ok' : forbidden.reason, 'KubeConfigForbidden');
    assert.match(
      !forbidden.ok ? forbidden.message : '',
      /kubectl -n team-a create rolebinding portforward-operator-kubeconfig-reader --clusterrole=portforward-operator-kubeconfig-reader --serviceaccount=portforward-system:portforward-operator/,
    );
    await assert.rejects(
      readKubeConfigSecret(answering(500), REF, STRICT, 'a/b'),
      /could not read Secret team-a\/staging-kubeconfig/,
    );
  });

  it('shows a server URL without its user info', function () {
    assert.equal(
      safeServer('https://admin:hunter2@api.example:6443/prefix/'),
      'https://api.example:6443/prefix',
    );
  });
});
