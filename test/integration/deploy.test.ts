// deploy/ on the real test control plane: the kustomization applies; the operator's ServiceAccount has
// exactly the rights the operator uses (kubectl auth can-i, as the ServiceAccount) and none of those it
// must not have; the operator run with that ServiceAccount's token relays traffic end to end; the
// ValidatingAdmissionPolicy refuses a PortForward from a user who could not port-forward themselves,
// with a message that says so; and the aggregated roles give admin/edit/view their PortForward verbs.
// Who may connect to the forwards of the cluster install is tested in deploy-clients.test.ts.
// There is no kubelet for the operator's image here: the Deployment's pods are created (which proves
// the restricted Pod Security Standard admits them) but never scheduled, and that is expected.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_LEASE_NAME, LeaderElector } from '../../src/kube/leader';
import { KubectlResult, TestCluster } from '../../tools/testenv/cluster';
import { repoRoot } from '../../tools/testenv/paths';
import { echoRoundTrip, EchoServer, randomPayload, sha256, startEchoServer } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

const DEPLOY = path.join(repoRoot, 'deploy');
const NS = 'portforward-system';
const SA = 'portforward-operator';
const SA_USER = `system:serviceaccount:${NS}:${SA}`;

/** Each right the operator uses: [verb, resource, subresource?, namespace?]. */
type Right = [verb: string, resource: string, subresource?: string, namespace?: string];

const NEEDED: Right[] = [
  ['get', 'pods', 'portforward', 'default'],
  ['create', 'pods', 'portforward', 'default'],
  ['get', 'pods'],
  ['list', 'pods'],
  ['watch', 'pods'],
  ['list', 'pods', undefined, '*'],
  ['watch', 'pods', undefined, '*'],
  ['get', 'services'],
  ['list', 'services'],
  ['watch', 'services'],
  ['get', 'deployments.apps'],
  ['list', 'deployments.apps'],
  ['watch', 'deployments.apps'],
  ['get', 'statefulsets.apps'],
  ['list', 'statefulsets.apps'],
  ['watch', 'statefulsets.apps'],
  ['get', 'portforwards.portforward.dev'],
  ['list', 'portforwards.portforward.dev', undefined, '*'],
  ['watch', 'portforwards.portforward.dev', undefined, '*'],
  ['patch', 'portforwards.portforward.dev', 'status'],
  ['create', 'events.events.k8s.io'],
  ['patch', 'events.events.k8s.io'],
  ['list', 'namespaces', undefined, ''],
  ['watch', 'namespaces', undefined, ''],
  ['create', 'leases.coordination.k8s.io', undefined, NS],
  ['get', `leases.coordination.k8s.io/${DEFAULT_LEASE_NAME}`, undefined, NS],
  ['update', `leases.coordination.k8s.io/${DEFAULT_LEASE_NAME}`, undefined, NS],
];

const FORBIDDEN: Right[] = [
  ['get', 'secrets'],
  ['list', 'secrets', undefined, '*'],
  ['watch', 'secrets', undefined, '*'],
  ['get', 'secrets', undefined, NS],
  ['create', 'pods', 'exec'],
  ['get', 'pods', 'exec'],
  ['create', 'pods', 'attach'],
  ['get', 'nodes', 'proxy', ''],
  ['create', 'nodes', 'proxy', ''],
  ['get', 'pods', 'proxy'],
  ['get', 'services', 'proxy'],
  ['create', 'pods'],
  ['update', 'pods'],
  ['patch', 'pods'],
  ['delete', 'pods'],
  ['create', 'pods', 'eviction'],
  ['create', 'serviceaccounts', 'token'],
  ['create', 'services'],
  ['patch', 'deployments.apps'],
  ['create', 'portforwards.portforward.dev'],
  ['update', 'portforwards.portforward.dev'],
  ['patch', 'portforwards.portforward.dev'],
  ['delete', 'portforwards.portforward.dev'],
  ['update', 'leases.coordination.k8s.io/some-other-lease', undefined, NS],
  ['create', 'leases.coordination.k8s.io', undefined, 'default'],
  ['update', `leases.coordination.k8s.io/${DEFAULT_LEASE_NAME}`, undefined, 'default'],
  ['create', 'events'],
  ['get', 'namespaces', undefined, ''],
  ['patch', 'namespaces', undefined, ''],
  ['create', 'namespaces', undefined, ''],
  ['create', 'clusterrolebindings.rbac.authorization.k8s.io', undefined, ''],
  ['impersonate', 'users', undefined, ''],
];

/** Rules every authenticated user holds (system:basic-user), left out of the `can-i --list` comparison. */
const GRANTED_TO_ALL = /^self(subject(access|rules)?)?reviews\./;

function canI(cluster: TestCluster, as: string, [verb, resource, sub, ns]: Right): boolean {
  const args = ['auth', 'can-i', verb, resource, `--as=${as}`];
  if (sub) args.push(`--subresource=${sub}`);
  if (ns === '*') args.push('--all-namespaces');
  else if (ns !== '') args.push('-n', ns ?? 'default');
  const res = cluster.kubectl(args);
  const answer = res.stdout.trim();
  assert.ok(answer === 'yes' || answer === 'no', `kubectl ${args.join(' ')}: ${res.stdout}${res.stderr}`);
  return answer === 'yes';
}

function describeRight([verb, resource, sub, ns]: Right): string {
  const where = ns === '*' ? ' in all namespaces' : ns === '' ? '' : ` in ${ns ?? 'default'}`;
  return `${verb} ${resource}${sub ? `/${sub}` : ''}${where}`;
}

function ok(res: KubectlResult, what: string): string {
  assert.equal(res.code, 0, `${what} failed:\n${res.stderr}`);
  return res.stdout;
}

function portForwardManifest(ns: string, name: string): string {
  return JSON.stringify({
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { name, namespace: ns },
    spec: { target: { pod: 'web' }, ports: [{ port: 8080 }] },
  });
}

describe('deploy/: the kustomization, its RBAC and admission policy on a real API server', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  const namespaces: string[] = [];

  let applied: KubectlResult | undefined;
  /** `kubectl apply -k deploy/`, once: the first case looks at it, the others need it done. */
  const applyDeploy = (): KubectlResult => (applied ??= cluster.kubectl(['apply', '-k', DEPLOY]));

  before(function () {
    cluster = TestCluster.connect();
    // A server-side dry run cannot create the namespace the other objects go into: apply it first.
    ok(cluster.kubectl(['apply', '-f', path.join(DEPLOY, 'namespace.yaml')]), 'applying the namespace');
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

  describe('kubectl apply -k deploy/', function () {
    it('passes a server-side dry run and applies every object without a warning, and again without a change', function () {
      const dry = cluster.kubectl(['apply', '-k', DEPLOY, '--dry-run=server']);
      ok(dry, 'the server-side dry run');
      assert.match(
        dry.stdout,
        /validatingadmissionpolicy\.admissionregistration\.k8s\.io\/\S+ \S+ \(server dry run\)/,
      );
      const applied = applyDeploy();
      ok(applied, 'kubectl apply -k deploy/');
      assert.doesNotMatch(applied.stderr, /warning/i, 'no warning (Pod Security, deprecations)');
      for (const kind of [
        'namespace/portforward-system',
        'serviceaccount/portforward-operator',
        'clusterrole.rbac.authorization.k8s.io/portforward-operator',
        'clusterrolebinding.rbac.authorization.k8s.io/portforward-operator',
        'clusterrole.rbac.authorization.k8s.io/portforward-operator-namespaces',
        'clusterrolebinding.rbac.authorization.k8s.io/portforward-operator-namespaces',
        'role.rbac.authorization.k8s.io/portforward-operator-leader-election',
        'rolebinding.rbac.authorization.k8s.io/portforward-operator-leader-election',
        'clusterrole.rbac.authorization.k8s.io/portforward-operator-aggregate-to-edit',
        'clusterrole.rbac.authorization.k8s.io/portforward-operator-aggregate-to-view',
        'clusterrole.rbac.authorization.k8s.io/portforward-operator-kubeconfig-reader',
        'deployment.apps/portforward-operator',
        'service/portforward-operator',
        'service/portforward-operator-metrics',
        'validatingadmissionpolicy.admissionregistration.k8s.io/portforward-requester-may-port-forward',
        'validatingadmissionpolicybinding.admissionregistration.k8s.io/portforward-requester-may-port-forward',
      ]) {
        assert.match(applied.stdout, new RegExp(`^${kind.replace(/\./g, '\\.')} `, 'm'), `${kind} applied`);
      }
      const again = ok(cluster.kubectl(['apply', '-k', DEPLOY]), 'applying again');
      assert.doesNotMatch(again, / (created|configured)$/m, `nothing changes the second time:\n${again}`);
    });

    it('runs 2 non-root, read-only, capability-free replicas that the restricted Pod Security level admits', async function () {
      ok(applyDeploy(), 'kubectl apply -k deploy/');
      const dep = await cluster.kc
        .makeApiClient(k8s.AppsV1Api)
        .readNamespacedDeployment({ name: 'portforward-operator', namespace: NS });
      assert.equal(dep.spec?.replicas, 2);
      const pod = dep.spec?.template.spec ?? { containers: [] };
      assert.equal(pod.containers.length, 1);
      const c = pod.containers[0];
      assert.equal(pod.serviceAccountName, SA);
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
      assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, 'resource requests');
      assert.ok(c.resources?.limits?.cpu && c.resources.limits.memory, 'resource limits');
      for (const arg of [
        '--leader-elect',
        '--listen-address=0.0.0.0',
        '--advertise-address=$(POD_IP)',
        '--metrics-bind-address=:8080',
        '--health-probe-bind-address=:8081',
      ]) {
        assert.ok(c.args?.includes(arg), `args include ${arg}`);
      }
      assert.equal(c.env?.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
      assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
      assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
      // One slow answer must not drop the leader from the Service: several misses in a row do.
      assert.ok((c.readinessProbe?.failureThreshold ?? 1) >= 3, 'readiness survives one slow answer');
      assert.ok((c.readinessProbe?.timeoutSeconds ?? 1) >= 2, 'readiness waits more than a second');
      assert.equal(c.startupProbe?.httpGet?.path, '/healthz');
      assert.equal(c.livenessProbe?.initialDelaySeconds, undefined, 'the startupProbe holds liveness back');
      // A tag can move: every node pulls what it names now (a digest would make IfNotPresent safe).
      if (!c.image?.includes('@sha256:')) assert.equal(c.imagePullPolicy, 'Always');
      const healthPort = c.ports?.find((p) => p.name === 'health')?.containerPort;
      assert.equal(healthPort, 8081);
      assert.equal(c.ports?.find((p) => p.name === 'metrics')?.containerPort, 8080);

      // The ReplicaSet controller creates the pods through Pod Security admission (enforce: restricted).
      await poll('the 2 operator pods to be created', 30_000, async () => {
        const pods = await cluster.core.listNamespacedPod({
          namespace: NS,
          labelSelector: 'app.kubernetes.io/name=portforward-operator',
        });
        return pods.items.length === 2;
      });
      const ns = await cluster.core.readNamespace({ name: NS });
      assert.equal(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    });

    it('ships a headless Service that routes to ready (leader) pods only, and a metrics Service for all', async function () {
      ok(applyDeploy(), 'kubectl apply -k deploy/');
      const forwards = await cluster.core.readNamespacedService({
        name: 'portforward-operator',
        namespace: NS,
      });
      assert.equal(forwards.spec?.clusterIP, 'None');
      assert.ok(!forwards.spec?.publishNotReadyAddresses);
      const metrics = await cluster.core.readNamespacedService({
        name: 'portforward-operator-metrics',
        namespace: NS,
      });
      assert.equal(metrics.spec?.publishNotReadyAddresses, true);
      assert.deepEqual(
        metrics.spec?.ports?.map((p) => [p.name, p.port]),
        [['metrics', 8080]],
      );
    });
  });

  describe("the operator's ServiceAccount (kubectl auth can-i --as)", function () {
    before(function () {
      ok(applyDeploy(), 'kubectl apply -k deploy/');
    });

    for (const right of NEEDED) {
      it(`may ${describeRight(right)}`, function () {
        assert.equal(canI(cluster, SA_USER, right), true);
      });
    }

    it(`may do none of: ${FORBIDDEN.map(describeRight).join('; ')}`, function () {
      const granted = FORBIDDEN.filter((r) => canI(cluster, SA_USER, r)).map(describeRight);
      assert.deepEqual(granted, [], `rights it must not have: ${granted.join(', ')}`);
    });

    it('holds no rule beyond those (can-i --list, in its own namespace and another)', function () {
      const expected = [
        'deployments.apps [] [get list watch]',
        'events.events.k8s.io [] [create patch]',
        'namespaces [] [list watch]',
        'pods [] [get list watch]',
        'pods/portforward [] [get create]',
        'portforwards.portforward.dev [] [get list watch]',
        'portforwards.portforward.dev/status [] [patch]',
        'services [] [get list watch]',
        'statefulsets.apps [] [get list watch]',
      ];
      const lease = [
        'leases.coordination.k8s.io [] [create]',
        `leases.coordination.k8s.io [${DEFAULT_LEASE_NAME}] [get update]`,
      ];
      for (const [ns, want] of [
        [NS, [...expected, ...lease].sort()],
        ['default', expected],
      ] as const) {
        const out = ok(
          cluster.kubectl(['auth', 'can-i', '--list', `--as=${SA_USER}`, '-n', ns]),
          'can-i --list',
        );
        const rules = out
          .split('\n')
          .slice(1)
          .map((l) => l.trim().split(/\s{2,}/))
          .filter((cols) => cols.length === 4 && !GRANTED_TO_ALL.test(cols[0]))
          .map(([res, , names, verbs]) => `${res} ${names} ${verbs}`)
          .sort();
        assert.deepEqual(rules, want, `resource rules in ${ns}`);
      }
    });
  });

  describe('the aggregated roles', function () {
    before(function () {
      ok(applyDeploy(), 'kubectl apply -k deploy/');
    });

    it('let admin and edit manage PortForwards and view read them', async function () {
      const ns = await namespace('deploy-agg');
      for (const role of ['admin', 'edit', 'view']) {
        await cluster.bindRole(
          ns,
          `${role}-user`,
          { kind: 'ClusterRole', name: role },
          { user: `${role}-user` },
        );
      }
      const pf = 'portforwards.portforward.dev';
      const manage = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'];
      // The aggregation controller fills the built-in roles in shortly after the ClusterRoles appear.
      await poll('admin, edit and view to include PortForward verbs', 30_000, () =>
        Promise.resolve(
          ['admin', 'edit'].every((r) =>
            manage.every((v) => canI(cluster, `${r}-user`, [v, pf, undefined, ns])),
          ) && ['get', 'list', 'watch'].every((v) => canI(cluster, 'view-user', [v, pf, undefined, ns])),
        ),
      );
      for (const v of ['create', 'update', 'patch', 'delete']) {
        assert.equal(canI(cluster, 'view-user', [v, pf, undefined, ns]), false, `view may not ${v}`);
      }
      assert.equal(canI(cluster, 'view-user', ['get', pf, 'status', ns]), true, 'view reads status');
      assert.equal(
        canI(cluster, 'edit-user', ['patch', pf, 'status', ns]),
        false,
        'status is the operator’s',
      );
    });
  });

  describe('the admission policy (a user acting with a token of their own)', function () {
    before(function () {
      ok(applyDeploy(), 'kubectl apply -k deploy/');
    });

    let ns: string;
    let kubeconfig: string;
    let user: string;

    before(async function () {
      ns = await namespace('deploy-vap');
      user = `alice-${crypto.randomBytes(3).toString('hex')}`;
      kubeconfig = cluster.kubeconfigFor(cluster.mintUserToken(user, ['pf-users']));
      // May manage PortForwards in ns, may not port-forward.
      await cluster.grantRole(
        ns,
        'portforward-user',
        [
          {
            apiGroups: ['portforward.dev'],
            resources: ['portforwards'],
            verbs: ['get', 'list', 'create', 'update', 'patch', 'delete'],
          },
        ],
        { user },
      );
      await poll('the policy to be in force', 30_000, () => {
        const res = cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], {
          kubeconfig,
          input: portForwardManifest(ns, 'probe'),
        });
        return Promise.resolve(res.code !== 0 && /ValidatingAdmissionPolicy/.test(res.stderr));
      });
    });

    it('refuses a PortForward from a user who may create PortForwards but may not port-forward, saying why', function () {
      const res = cluster.kubectl(['apply', '-f', '-'], {
        kubeconfig,
        input: portForwardManifest(ns, 'web'),
      });
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /Forbidden/);
      assert.match(res.stderr, /ValidatingAdmissionPolicy 'portforward-requester-may-port-forward'/);
      assert.ok(
        res.stderr.includes(
          `${user} may not create or change PortForwards in namespace ${ns}: a PortForward forwards with the ` +
            `operator's rights, so it requires the right to port-forward to pods in its namespace ` +
            `(create on pods/portforward), which ${user} lacks`,
        ),
        res.stderr,
      );
    });

    it('admits the same user once they may port-forward there; then refuses spec changes, not label changes, after the right is gone', async function () {
      await cluster.grantRole(
        ns,
        'may-port-forward',
        [{ apiGroups: [''], resources: ['pods/portforward'], verbs: ['create'] }],
        { user },
      );
      await poll('the PortForward to be admitted', 15_000, () =>
        Promise.resolve(
          cluster.kubectl(['apply', '-f', '-'], { kubeconfig, input: portForwardManifest(ns, 'web') })
            .code === 0,
        ),
      );

      await cluster.rbac.deleteNamespacedRoleBinding({ name: 'may-port-forward', namespace: ns });
      const changed = JSON.parse(portForwardManifest(ns, 'web')) as { spec: { ports: object[] } };
      changed.spec.ports = [{ port: 9090 }];
      await poll('a spec change to be refused', 15_000, () => {
        const res = cluster.kubectl(['apply', '-f', '-'], { kubeconfig, input: JSON.stringify(changed) });
        return Promise.resolve(res.code !== 0 && /may not create or change PortForwards/.test(res.stderr));
      });
      ok(
        cluster.kubectl(['label', 'portforwards.portforward.dev', 'web', '-n', ns, 'team=blue'], {
          kubeconfig,
        }),
        'a label change by the same user',
      );
      ok(
        cluster.kubectl(['delete', 'portforwards.portforward.dev', 'web', '-n', ns], { kubeconfig }),
        'deleting it',
      );
    });

    it('admits a user holding the built-in edit role (which includes port-forward)', async function () {
      const editor = `ed-${crypto.randomBytes(3).toString('hex')}`;
      await cluster.bindRole(ns, editor, { kind: 'ClusterRole', name: 'edit' }, { user: editor });
      const kc = cluster.kubeconfigFor(cluster.mintUserToken(editor));
      await poll('the edit role to include PortForwards', 30_000, () =>
        Promise.resolve(
          cluster.kubectl(['apply', '-f', '-'], {
            kubeconfig: kc,
            input: portForwardManifest(ns, 'by-editor'),
          }).code === 0,
        ),
      );
    });
  });

  describe('the kubeconfig Secrets of spec.kubeConfig (docs/remote-clusters.md)', function () {
    before(function () {
      ok(applyDeploy(), 'kubectl apply -k deploy/');
    });

    it('ships a ClusterRole that gets Secrets and nothing else, bound by nobody', async function () {
      const role = await cluster.rbac.readClusterRole({ name: 'portforward-operator-kubeconfig-reader' });
      assert.deepEqual(
        role.rules?.map((r) => ({ apiGroups: r.apiGroups, resources: r.resources, verbs: r.verbs })),
        [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
      );
      const crbs = await cluster.rbac.listClusterRoleBinding();
      const rbs = await cluster.rbac.listRoleBindingForAllNamespaces();
      const bound = [...crbs.items, ...rbs.items].filter(
        (b) => b.roleRef.name === 'portforward-operator-kubeconfig-reader',
      );
      assert.deepEqual(bound, [], 'no binding of it in deploy/');
    });

    it('refuses a PortForward naming a Secret the requester may not get, naming the Secret; admits once they may get that one', async function () {
      const ns = await namespace('deploy-kubeconfig');
      const user = `bob-${crypto.randomBytes(3).toString('hex')}`;
      const kubeconfig = cluster.kubeconfigFor(cluster.mintUserToken(user));
      // May manage PortForwards and port-forward in ns; may not read Secrets.
      await cluster.grantRole(
        ns,
        'forwarder',
        [
          {
            apiGroups: ['portforward.dev'],
            resources: ['portforwards'],
            verbs: ['get', 'create', 'update', 'patch'],
          },
          { apiGroups: [''], resources: ['pods/portforward'], verbs: ['create'] },
        ],
        { user },
      );
      const manifest = (secret: string): string => {
        const pf = JSON.parse(portForwardManifest(ns, `remote-${secret}`)) as {
          spec: Record<string, unknown>;
        };
        pf.spec.kubeConfig = { secretRef: { name: secret } };
        pf.spec.target = { pod: 'web', namespace: 'orders' };
        return JSON.stringify(pf);
      };
      const apply = (secret: string): KubectlResult =>
        cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], { kubeconfig, input: manifest(secret) });
      await poll('the requester to be refused for the Secret alone', 30_000, () => {
        const res = apply('staging-kubeconfig');
        return Promise.resolve(res.code !== 0 && /may not name Secret/.test(res.stderr));
      });
      const refused = apply('staging-kubeconfig');
      assert.ok(
        refused.stderr.includes(
          `${user} may not name Secret ${ns}/staging-kubeconfig in spec.kubeConfig: a PortForward uses it ` +
            `with the operator's rights, so it requires the right to get that Secret, which ${user} lacks`,
        ),
        refused.stderr,
      );
      // The same PortForward without kubeConfig is admitted: the refusal is about the Secret.
      ok(
        cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], {
          kubeconfig,
          input: portForwardManifest(ns, 'local'),
        }),
        'the same user, no kubeConfig',
      );
      await cluster.grantRole(
        ns,
        'reads-staging',
        [{ apiGroups: [''], resources: ['secrets'], resourceNames: ['staging-kubeconfig'], verbs: ['get'] }],
        { user },
      );
      await poll('the requester to be admitted once they may get the Secret', 30_000, () =>
        Promise.resolve(apply('staging-kubeconfig').code === 0),
      );
      const other = apply('production-kubeconfig');
      assert.notEqual(other.code, 0, 'another Secret is still refused');
      assert.match(other.stderr, new RegExp(`may not name Secret ${ns}/production-kubeconfig`));
    });
  });

  describe("the operator run with its ServiceAccount's token", function () {
    before(function () {
      ok(applyDeploy(), 'kubectl apply -k deploy/');
    });

    let echo: EchoServer;
    let kubeconfig: string;
    let op: OperatorProcess | undefined;

    before(async function () {
      echo = await startEchoServer();
      kubeconfig = cluster.kubeconfigFor(await cluster.mintServiceAccountToken(NS, SA));
    });

    afterEach(async function () {
      if (op) {
        const code = await op.stop();
        assert.equal(code, 0, `the operator exits 0 on SIGTERM; its log:\n${op.logs().slice(-3000)}`);
        assert.doesNotMatch(op.logs(), /forbidden/i, 'the operator was refused nothing');
        op = undefined;
      }
    });

    after(async function () {
      await echo?.close();
    });

    async function relayThrough(namespaces: string[], ns: string): Promise<void> {
      await cluster.createPod(ns, 'echo', [{ port: 8080, targetPort: echo.port }]);
      op = await startOperator({ kubeconfig, namespaces });
      await applyPortForward(cluster, ns, 'echo', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
      const pf = await waitForStatus(
        cluster,
        ns,
        'echo',
        'phase Ready',
        (p) => p.status?.phase === 'Ready',
        15_000,
      );
      const payload = randomPayload(256 * 1024);
      const port = pf.status!.endpoints![0].localPort;
      assert.equal(sha256(await echoRoundTrip(port, payload)), sha256(payload));
      await waitForStatus(
        cluster,
        ns,
        'echo',
        'the connection counted',
        (p) => p.status?.connections?.total === 1,
      );

      // A target that does not exist: status says so, and so does a Warning Event (events.k8s.io).
      await applyPortForward(cluster, ns, 'nowhere', { target: { pod: 'nope' }, ports: [{ port: 8080 }] });
      await waitForStatus(cluster, ns, 'nowhere', 'Degraded', (p) => p.status?.phase === 'Degraded', 15_000);
      await poll('a Warning Event from the operator', 10_000, async () => {
        const events = await cluster.kc.makeApiClient(k8s.EventsV1Api).listNamespacedEvent({ namespace: ns });
        return events.items.some(
          (e) =>
            e.regarding?.name === 'nowhere' &&
            e.type === 'Warning' &&
            e.reportingController === 'portforward.dev/operator',
        );
      });
    }

    it('relays traffic end to end, watching one namespace (--namespace)', async function () {
      const ns = await namespace('deploy-op');
      await relayThrough([ns], ns);
    });

    it('relays traffic end to end, watching all namespaces', async function () {
      const ns = await namespace('deploy-op-all');
      await relayThrough([], ns);
    });

    it('says KubeConfigForbidden naming the RoleBinding for a kubeConfig Secret, and forwards once the namespace binds the role', async function () {
      const ns = await namespace('deploy-remote');
      await cluster.createPod(ns, 'echo', [{ port: 8080, targetPort: echo.port }]);
      // "The other cluster" is this one, through a user of its own that may read targets and
      // port-forward in ns (docs/remote-clusters.md's least privilege).
      const user = `remote-${crypto.randomBytes(3).toString('hex')}`;
      await cluster.grantRole(
        ns,
        'remote-forwarder',
        [
          { apiGroups: [''], resources: ['pods', 'services'], verbs: ['get', 'list', 'watch'] },
          {
            apiGroups: ['apps'],
            resources: ['deployments', 'statefulsets'],
            verbs: ['get', 'list', 'watch'],
          },
          { apiGroups: [''], resources: ['pods/portforward'], verbs: ['get', 'create'] },
        ],
        { user },
      );
      const own = JSON.parse(fs.readFileSync(cluster.state.kubeconfig, 'utf8')) as {
        users: { name: string; user: Record<string, string> }[];
      };
      own.users = [{ name: 'pfo-testenv-admin', user: { token: cluster.mintUserToken(user) } }];
      await cluster.core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: 'here-kubeconfig' }, stringData: { value: JSON.stringify(own) } },
      });
      const started = await startOperator({ kubeconfig, namespaces: [ns] });
      try {
        await applyPortForward(cluster, ns, 'remote', {
          kubeConfig: { secretRef: { name: 'here-kubeconfig' } },
          target: { pod: 'echo' },
          ports: [{ port: 8080 }],
        });
        const forbidden = await waitForStatus(
          cluster,
          ns,
          'remote',
          'KubeConfigForbidden',
          (p) => p.status?.conditions?.find((c) => c.type === 'Ready')?.reason === 'KubeConfigForbidden',
          15_000,
        );
        const command =
          `kubectl -n ${ns} create rolebinding portforward-operator-kubeconfig-reader ` +
          `--clusterrole=portforward-operator-kubeconfig-reader --serviceaccount=${NS}:${SA}`;
        assert.ok(forbidden.status!.message!.includes(command), forbidden.status!.message);
        ok(cluster.kubectl(command.split(' ').slice(1)), 'the RoleBinding of the message');
        const pf = await waitForStatus(
          cluster,
          ns,
          'remote',
          'Ready',
          (p) => p.status?.phase === 'Ready',
          45_000,
        );
        assert.equal(pf.status!.remote?.server, cluster.state.server);
        const payload = randomPayload(64 * 1024);
        assert.equal(
          sha256(await echoRoundTrip(pf.status!.endpoints![0].localPort, payload)),
          sha256(payload),
        );
      } finally {
        assert.equal(await started.stop(), 0);
      }
    });

    it('holds, renews and releases the leader Lease in portforward-system', async function () {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(kubeconfig);
      const identity = `deploy-test-${crypto.randomBytes(3).toString('hex')}`;
      const elector = new LeaderElector({
        kubeConfig: kc,
        namespace: NS,
        name: DEFAULT_LEASE_NAME,
        identity,
        leaseDurationMs: 3000,
        renewDeadlineMs: 2000,
        retryPeriodMs: 300,
      });
      void elector.run();
      try {
        await poll('the ServiceAccount to lead', 15_000, () => Promise.resolve(elector.isLeader()));
        const coordination = cluster.kc.makeApiClient(k8s.CoordinationV1Api);
        const first = await coordination.readNamespacedLease({ name: DEFAULT_LEASE_NAME, namespace: NS });
        assert.equal(first.spec?.holderIdentity, identity);
        await poll('a renewal', 5_000, async () => {
          const now = await coordination.readNamespacedLease({ name: DEFAULT_LEASE_NAME, namespace: NS });
          return now.metadata?.resourceVersion !== first.metadata?.resourceVersion;
        });
        assert.equal(elector.isLeader(), true);
      } finally {
        await elector.stop({ release: true });
      }
      const released = await cluster.kc
        .makeApiClient(k8s.CoordinationV1Api)
        .readNamespacedLease({ name: DEFAULT_LEASE_NAME, namespace: NS });
      assert.equal(released.spec?.holderIdentity ?? '', '');
    });
  });
});
