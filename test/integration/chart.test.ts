// charts/portforward-operator with a real Helm 4 (built from the Go module proxy, cached: tools/testenv/
// gotools.ts) against deploy/ and the real test control plane. One source of truth: the chart's
// defaults render, object by object, what `kubectl kustomize deploy/` renders (only the labels Helm adds
// differ), and its monitoring toggles what deploy/components/monitoring adds. `helm lint --strict` is
// clean; values.schema.json refuses bad values at install with a message; `helm install` brings the
// operator's objects up with the admission policy in force; `helm upgrade` with a changed value rolls the
// Deployment; `helm uninstall` leaves nothing behind but the CRD (Helm never deletes what crds/ installed).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAll } from 'js-yaml';
import { TestCluster } from '../../tools/testenv/cluster';
import { ensureGoTool } from '../../tools/testenv/gotools';
import { repoRoot } from '../../tools/testenv/paths';
import { poll } from '../support/wait';

const CHART = path.join(repoRoot, 'charts', 'portforward-operator');
const DEPLOY = path.join(repoRoot, 'deploy');
const MONITORING = path.join(DEPLOY, 'components', 'monitoring');

/** Labels a Helm chart carries that a plain kustomization has no value for. */
const HELM_LABELS = [
  'app.kubernetes.io/instance',
  'app.kubernetes.io/managed-by',
  'app.kubernetes.io/version',
  'helm.sh/chart',
];

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}

const keyOf = (o: K8sObject): string =>
  `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;

function parse(yaml: string): Map<string, K8sObject> {
  const out = new Map<string, K8sObject>();
  for (const doc of loadAll(yaml)) {
    if (!doc) continue;
    const o = doc as K8sObject;
    assert.ok(!out.has(keyOf(o)), `${keyOf(o)} rendered twice`);
    out.set(keyOf(o), o);
  }
  return out;
}

/** The object without the labels Helm adds (and without an empty labels map left behind). */
function withoutHelmLabels(o: K8sObject): K8sObject {
  const copy = structuredClone(o);
  for (const l of HELM_LABELS) delete copy.metadata.labels?.[l];
  return copy;
}

/** `kubectl get KIND NAME [-n NS]` of a rendered object. */
const getArgs = (o: K8sObject): string[] => [
  'get',
  o.kind,
  o.metadata.name,
  ...(o.metadata.namespace ? ['-n', o.metadata.namespace] : []),
];

/** Helm with its own config, cache and data folders, so nothing of the user's Helm setup leaks in. */
class Helm {
  readonly bin = ensureGoTool('helm');
  readonly home = fs.mkdtempSync(path.join(os.tmpdir(), 'pfo-helm-'));

  run(args: string[], kubeconfig?: string): { code: number; stdout: string; stderr: string } {
    const out = spawnSync(this.bin, args, {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        HOME: this.home,
        HELM_CONFIG_HOME: path.join(this.home, 'config'),
        HELM_CACHE_HOME: path.join(this.home, 'cache'),
        HELM_DATA_HOME: path.join(this.home, 'data'),
        ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
      },
      timeout: 180_000,
    });
    return { code: out.status ?? -1, stdout: out.stdout, stderr: out.stderr };
  }

  ok(args: string[], kubeconfig?: string): string {
    const res = this.run(args, kubeconfig);
    assert.equal(res.code, 0, `helm ${args.join(' ')}:\n${res.stdout}${res.stderr}`);
    return res.stdout;
  }

  template(...set: string[]): Map<string, K8sObject> {
    return parse(
      this.ok([
        'template',
        'portforward-operator',
        CHART,
        '--namespace',
        'portforward-system',
        ...set.flatMap((s) => ['--set', s]),
      ]),
    );
  }
}

describe('charts/portforward-operator: the Helm chart', function () {
  this.timeout(300_000);
  let helm: Helm;
  let cluster: TestCluster;

  before(function () {
    helm = new Helm();
    cluster = TestCluster.connect();
  });

  after(function () {
    if (helm) fs.rmSync(helm.home, { recursive: true, force: true });
  });

  const kustomize = (dir: string): Map<string, K8sObject> => {
    const res = cluster.kubectl(['kustomize', dir]);
    assert.equal(res.code, 0, res.stderr);
    return parse(res.stdout);
  };

  function assertSameObjects(chart: Map<string, K8sObject>, kust: Map<string, K8sObject>): void {
    assert.deepEqual([...chart.keys()].sort(), [...kust.keys()].sort(), 'the same objects, by kind and name');
    for (const [key, want] of kust) {
      assert.deepEqual(withoutHelmLabels(chart.get(key)!), want, `${key} differs from deploy/`);
    }
  }

  describe('rendering', function () {
    it('is clean under helm lint --strict, with its defaults and with every toggle on', function () {
      helm.ok(['lint', '--strict', CHART]);
      helm.ok([
        'lint',
        '--strict',
        CHART,
        '--set',
        'namespace.create=true,serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true',
        '--set',
        'className=dev,watchNamespaces={a,b},portRange=30000-30099,logLevel=debug,extraArgs={--workers=8}',
      ]);
    });

    it('renders with its defaults what kubectl kustomize deploy/ renders, object by object (Helm labels aside)', function () {
      const kust = kustomize(DEPLOY);
      // The Namespace is optional in the chart (off by default, the Helm way: --create-namespace).
      assertSameObjects(helm.template('namespace.create=true'), kust);
      const defaults = helm.template();
      const withoutNs = new Map([...kust].filter(([, o]) => o.kind !== 'Namespace'));
      assertSameObjects(defaults, withoutNs);
      // Every object carries the Helm labels, with the release's name.
      for (const o of defaults.values()) {
        assert.equal(o.metadata.labels?.['app.kubernetes.io/instance'], 'portforward-operator', keyOf(o));
      }
    });

    it('renders with its monitoring toggles what deploy/components/monitoring adds to deploy/', function () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pfo-kustomize-'));
      try {
        // A user's kustomization: deploy/ plus the component.
        fs.writeFileSync(
          path.join(dir, 'kustomization.yaml'),
          JSON.stringify({
            apiVersion: 'kustomize.config.k8s.io/v1beta1',
            kind: 'Kustomization',
            resources: [path.relative(dir, DEPLOY)],
            components: [path.relative(dir, MONITORING)],
          }),
        );
        const kust = kustomize(dir);
        const chart = helm.template(
          'namespace.create=true',
          'serviceMonitor.enabled=true',
          'prometheusRule.enabled=true',
          'dashboard.enabled=true',
        );
        for (const kind of ['ServiceMonitor', 'PrometheusRule', 'ConfigMap']) {
          assert.ok(
            [...kust.values()].some((o) => o.kind === kind),
            `the component adds a ${kind}`,
          );
        }
        assertSameObjects(chart, kust);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('ships the CRD in crds/ exactly as crds/portforward.yaml has it', function () {
      assert.equal(
        fs.readFileSync(path.join(CHART, 'crds', 'portforward.yaml'), 'utf8'),
        fs.readFileSync(path.join(repoRoot, 'crds', 'portforward.yaml'), 'utf8'),
        'copy crds/portforward.yaml into charts/portforward-operator/crds/',
      );
    });

    it('maps its values to the operator flags, RBAC and Lease they change', function () {
      const objs = helm.template(
        'className=dev',
        'watchNamespaces={team-a,team-b}',
        'portRange=30000-30099',
        'image.digest=sha256:' + 'a'.repeat(64),
        'image.pullPolicy=IfNotPresent',
        'replicas=3',
        'extraArgs={--workers=8}',
      );
      const dep = objs.get('Deployment portforward-system/portforward-operator') as unknown as {
        spec: {
          replicas: number;
          template: { spec: { containers: { image: string; imagePullPolicy: string; args: string[] }[] } };
        };
      };
      const c = dep.spec.template.spec.containers[0];
      assert.equal(dep.spec.replicas, 3);
      assert.equal(c.image, `ghcr.io/portforward-dev/portforward-operator:0.1.0@sha256:${'a'.repeat(64)}`);
      assert.equal(c.imagePullPolicy, 'IfNotPresent');
      for (const a of [
        '--class=dev',
        '--namespace=team-a',
        '--namespace=team-b',
        '--port-range=30000-30099',
        '--workers=8',
      ]) {
        assert.ok(c.args.includes(a), `${a} in ${c.args.join(' ')}`);
      }
      // Watched namespaces: RoleBindings there instead of the ClusterRoleBinding; Namespaces stay cluster-wide.
      assert.ok(objs.has('RoleBinding team-a/portforward-operator'));
      assert.ok(objs.has('RoleBinding team-b/portforward-operator'));
      assert.ok(!objs.has('ClusterRoleBinding portforward-operator'));
      assert.ok(objs.has('ClusterRoleBinding portforward-operator-namespaces'));
      const role = objs.get('Role portforward-system/portforward-operator-leader-election') as unknown as {
        rules: { resourceNames?: string[] }[];
      };
      assert.deepEqual(role.rules[0].resourceNames, ['portforward-operator-leader-dev']);
    });

    const bad: [what: string, set: string, message: RegExp][] = [
      ['a misspelt key', 'replica=3', /additional properties 'replica' not allowed|replica/],
      ['a wrong type', 'replicas=two', /replicas/],
      ['a value outside its enum', 'image.pullPolicy=Sometimes', /pullPolicy/],
      ['a malformed digest', 'image.digest=latest', /digest/],
      ['a flag without its dashes', 'extraArgs={workers=8}', /extraArgs/],
    ];
    for (const [what, set, message] of bad) {
      it(`refuses ${what} (${set}) with a message that names it`, function () {
        const res = helm.run(['template', 'x', CHART, '--set', set]);
        assert.notEqual(res.code, 0, `helm template --set ${set} should fail`);
        assert.match(res.stderr, /values don't meet the specifications of the schema|schema/i, res.stderr);
        assert.match(res.stderr, message, res.stderr);
      });
    }
  });

  describe('on the test control plane: install, upgrade, uninstall', function () {
    const suffix = crypto.randomBytes(3).toString('hex');
    const release = `pfo-${suffix}`;
    const ns = `pfo-helm-${suffix}`;
    // Names apart from deploy/'s, which deploy.test.ts applies to the same control plane.
    const fullname = `pfo-helm-${suffix}`;
    const policy = `pfo-helm-${suffix}-requester-may-port-forward`;
    let installed: Map<string, K8sObject>;
    const kubeconfig = (): string => cluster.state.kubeconfig;

    after(async function () {
      helm?.run(['uninstall', release, '--namespace', ns, '--wait'], kubeconfig());
      await cluster?.deleteNamespace(ns).catch(() => undefined);
    });

    it('refuses bad values at install, before it creates anything', function () {
      const res = helm.run(
        ['install', release, CHART, '--namespace', ns, '--create-namespace', '--set', 'replicas=-1'],
        kubeconfig(),
      );
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /replicas/);
      assert.equal(helm.run(['status', release, '--namespace', ns], kubeconfig()).code, 1, 'no release');
    });

    it('installs the operator: every object of the chart exists, with the RBAC in force', function () {
      const values = ['--set', `fullnameOverride=${fullname}`];
      helm.ok(['install', release, CHART, '--namespace', ns, '--create-namespace', ...values], kubeconfig());
      installed = parse(helm.ok(['get', 'manifest', release, '--namespace', ns], kubeconfig()));
      assert.ok(installed.size >= 14, `${installed.size} objects`);
      for (const o of installed.values()) {
        const res = cluster.kubectl(getArgs(o));
        assert.equal(res.code, 0, `${keyOf(o)} exists: ${res.stderr}`);
      }
      const sa = `system:serviceaccount:${ns}:${fullname}`;
      const can = (args: string[]): string =>
        cluster.kubectl(['auth', 'can-i', ...args, `--as=${sa}`]).stdout.trim();
      assert.equal(can(['create', 'pods', '--subresource=portforward', '-n', 'default']), 'yes');
      assert.equal(
        can(['patch', 'portforwards.portforward.dev', '--subresource=status', '-n', 'default']),
        'yes',
      );
      assert.equal(can(['get', 'secrets', '-n', 'default']), 'no');
      assert.equal(
        can(['update', 'leases.coordination.k8s.io/portforward-operator-leader', '-n', ns]),
        'yes',
      );
    });

    it("puts the chart's admission policy in force: a PortForward from a user who may not port-forward is refused", async function () {
      const user = `bob-${suffix}`;
      const target = await cluster.createNamespace('helm-vap');
      try {
        await cluster.grantRole(
          target,
          'pf-user',
          [{ apiGroups: ['portforward.dev'], resources: ['portforwards'], verbs: ['get', 'create'] }],
          { user },
        );
        const kc = cluster.kubeconfigFor(cluster.mintUserToken(user));
        const manifest = JSON.stringify({
          apiVersion: 'portforward.dev/v1alpha1',
          kind: 'PortForward',
          metadata: { name: 'web', namespace: target },
          spec: { target: { pod: 'web' }, ports: [{ port: 8080 }] },
        });
        let last = '';
        // The policy is in force once the API server's policy informer has seen it: poll with a deadline.
        await poll(`the chart's policy ${policy} to refuse`, 30_000, () => {
          const res = cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], {
            kubeconfig: kc,
            input: manifest,
          });
          last = res.stderr;
          return Promise.resolve(
            res.code !== 0 && res.stderr.includes(`ValidatingAdmissionPolicy '${policy}'`),
          );
        }).catch((err: Error) => {
          const other = /ValidatingAdmissionPolicy '([^']+)'/.exec(last)?.[1];
          assert.fail(
            `${err.message}; last answer: ${last}` +
              (other && other !== policy
                ? `\n(another policy, ${other}, refused first: it hides the chart's; was it left on this control plane?)`
                : ''),
          );
        });
        const res = cluster.kubectl(['apply', '-f', '-'], { kubeconfig: kc, input: manifest });
        assert.notEqual(res.code, 0);
        assert.match(
          res.stderr,
          new RegExp(`${user} may not create or change PortForwards in namespace ${target}`),
        );
      } finally {
        await cluster.deleteNamespace(target);
      }
    });

    it('rolls the Deployment on helm upgrade with a changed value', async function () {
      const rsHashes = (): string[] =>
        (
          JSON.parse(cluster.kubectl(['get', 'replicasets', '-n', ns, '-o', 'json']).stdout) as {
            items: { metadata: { labels: Record<string, string> } }[];
          }
        ).items.map((rs) => rs.metadata.labels['pod-template-hash']);
      await poll('the first ReplicaSet', 30_000, () => Promise.resolve(rsHashes().length === 1));
      const before = rsHashes();
      helm.ok(
        [
          'upgrade',
          release,
          CHART,
          '--namespace',
          ns,
          '--set',
          `fullnameOverride=${fullname}`,
          '--set',
          'logLevel=debug',
        ],
        kubeconfig(),
      );
      const dep = JSON.parse(
        cluster.kubectl(['get', 'deployment', fullname, '-n', ns, '-o', 'json']).stdout,
      ) as {
        spec: { template: { spec: { containers: { args: string[] }[] } } };
      };
      assert.ok(dep.spec.template.spec.containers[0].args.includes('--log-level=debug'));
      await poll('a new ReplicaSet for the changed pod template', 30_000, () =>
        Promise.resolve(rsHashes().some((h) => !before.includes(h))),
      );
      const history = helm.ok(['history', release, '--namespace', ns, '-o', 'json'], kubeconfig());
      assert.equal((JSON.parse(history) as unknown[]).length, 2, 'two revisions');
    });

    it('leaves no object of the chart behind on helm uninstall, only the CRD', async function () {
      helm.ok(['uninstall', release, '--namespace', ns, '--wait'], kubeconfig());
      const left = (): string[] =>
        [...installed.values()]
          .filter((o) => {
            return cluster.kubectl(getArgs(o)).code === 0;
          })
          .map(keyOf);
      await poll('every object of the release to be gone', 30_000, () =>
        Promise.resolve(left().length === 0),
      ).catch(() => assert.deepEqual(left(), [], 'objects left after helm uninstall'));
      assert.equal(cluster.kubectl(['get', 'crd', 'portforwards.portforward.dev']).code, 0, 'the CRD stays');
    });
  });
});
