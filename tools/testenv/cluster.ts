// Test fixtures on the running test control plane: namespaces, kwok-backed pods whose ports lead to a
// TCP server the test started (or to a command, to reproduce node-side failures), Services,
// Deployments and StatefulSets over them, tokens for ServiceAccounts and for users with groups, Roles
// and RoleBindings that grant those users, and the pinned kubectl.
import * as k8s from '@kubernetes/client-node';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { statusCode } from '../../src/kube/client';
import { reuseConnections } from '../../src/kube/connections';
import { NODE_NAME, readState, TestEnvState } from './controlplane';
import { TestEnvError } from './errors';
import { stateDir } from './paths';
import { EchoServer, startEchoServer, startNamedEchoServer, whoAnswers } from './peers';
import { mintToken } from './token-webhook';
import { poll } from './wait';

export interface PodPort {
  /** The container port the pod declares (what port-forward asks for). */
  port: number;
  name?: string;
  /** Where kwok sends that port's streams: a local TCP port ... */
  targetPort?: number;
  /** ... or a command speaking on stdin/stdout (kwok runs it per stream). */
  command?: string[];
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Whom a RoleBinding names: a user, or a group (as a token from mintUserToken carries it). */
export type RbacSubject = { user: string } | { group: string };

export class TestCluster {
  readonly kc: k8s.KubeConfig;
  readonly core: k8s.CoreV1Api;
  readonly apps: k8s.AppsV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly rbac: k8s.RbacAuthorizationV1Api;

  private constructor(readonly state: TestEnvState) {
    this.kc = new k8s.KubeConfig();
    this.kc.loadFromFile(state.kubeconfig);
    reuseConnections(this.kc); // one TLS handshake per test run, not per call
    this.core = this.kc.makeApiClient(k8s.CoreV1Api);
    this.apps = this.kc.makeApiClient(k8s.AppsV1Api);
    this.custom = this.kc.makeApiClient(k8s.CustomObjectsApi);
    this.rbac = this.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  }

  /**
   * The running test control plane (started by the mocha fixture or `make testenv-up`); `dir`: the
   * one of that state folder (a second control plane, as tools/testenv/remote.ts runs).
   */
  static connect(dir?: string): TestCluster {
    const state = readState(dir);
    if (!state) throw new TestEnvError('no test control plane is running: run `make testenv-up` first');
    return new TestCluster(state);
  }

  kubectl(args: string[], opts: { kubeconfig?: string; input?: string } = {}): KubectlResult {
    const out = spawnSync(
      this.state.kubectl,
      ['--kubeconfig', opts.kubeconfig ?? this.state.kubeconfig, ...args],
      {
        input: opts.input,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    return { code: out.status ?? -1, stdout: out.stdout, stderr: out.stderr };
  }

  /**
   * A new namespace with a unique name, ready for pods (its default ServiceAccount exists, which
   * kube-controller-manager creates: within `saTimeoutMs`).
   */
  async createNamespace(prefix: string, saTimeoutMs = 30_000): Promise<string> {
    const name = `${prefix}-${crypto.randomBytes(3).toString('hex')}`;
    await this.core.createNamespace({
      body: { metadata: { name, labels: { 'portforward.dev/test': 'true' } } },
    });
    await poll(`ServiceAccount ${name}/default`, saTimeoutMs, async () => {
      await this.core.readNamespacedServiceAccount({ name: 'default', namespace: name });
      return true;
    });
    return name;
  }

  async deleteNamespace(name: string): Promise<void> {
    await this.core.deleteNamespace({ name }).catch(() => undefined);
  }

  /**
   * A pod on the kwok node whose ports kwok forwards as told (a kwok.x-k8s.io PortForward named like
   * the pod); resolves once the pod is Running and Ready.
   */
  async createPod(
    ns: string,
    name: string,
    ports: PodPort[],
    labels: Record<string, string> = {},
  ): Promise<k8s.V1Pod> {
    // A pod re-created under the same name gets its forwards anew. A ClusterPortForward selecting
    // this one pod, not kwok's namespaced PortForward, whose CRD would shadow ours (controlplane.ts).
    const forward = podForwardName(ns, name);
    await this.deleteForward(forward);
    await this.createForward(forward, {
      selector: { matchNamespaces: [ns], matchNames: [name] },
      forwards: ports.map((p) =>
        p.command
          ? { ports: [p.port], command: p.command }
          : { ports: [p.port], target: { port: p.targetPort, address: '127.0.0.1' } },
      ),
    });
    await this.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name, namespace: ns, labels },
        spec: {
          nodeName: NODE_NAME,
          containers: [
            {
              name: 'app',
              image: 'registry.invalid/fake:latest', // never pulled: kwok plays the kubelet
              ports: ports.map((p) => ({ containerPort: p.port, ...(p.name ? { name: p.name } : {}) })),
            },
          ],
        },
      },
    });
    return this.waitPodReady(ns, name);
  }

  /** A new echo server, and pod `name` whose container port `port` kwok sends to it (Running and Ready). */
  async createEchoPod(ns: string, name = 'echo', port = 8080): Promise<EchoServer> {
    const echo = await startEchoServer();
    await this.createPod(ns, name, [{ port, targetPort: echo.port }]);
    return echo;
  }

  /** Service `name` over the pods labelled `selector`. */
  async createService(
    ns: string,
    name: string,
    selector: Record<string, string>,
    ports: k8s.V1ServicePort[],
  ): Promise<void> {
    await this.core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name }, spec: { selector, ports } },
    });
  }

  /**
   * A Deployment or StatefulSet `name` (a StatefulSet's serviceName is its name too) of `replicas` pods
   * labelled app=`name` on the kwok node, each with one container `name` that declares `ports`.
   * kube-controller-manager creates the pods; where their ports lead, forwardNamespacePods says.
   */
  async createWorkload(
    ns: string,
    kind: 'Deployment' | 'StatefulSet',
    name: string,
    ports: k8s.V1ContainerPort[],
    replicas = 1,
  ): Promise<void> {
    const selector = { matchLabels: { app: name } };
    const template: k8s.V1PodTemplateSpec = {
      metadata: { labels: { app: name } },
      spec: {
        nodeName: NODE_NAME,
        containers: [{ name, image: `registry.invalid/${name}`, ports }],
      },
    };
    if (kind === 'Deployment') {
      await this.apps.createNamespacedDeployment({
        namespace: ns,
        body: { metadata: { name }, spec: { replicas, selector, template } },
      });
    } else {
      await this.apps.createNamespacedStatefulSet({
        namespace: ns,
        body: { metadata: { name }, spec: { serviceName: name, replicas, selector, template } },
      });
    }
  }

  /**
   * Forwards a port of every pod of a namespace (also pods a controller creates later, whose names
   * are not known in advance) to a local TCP port: a kwok ClusterPortForward for that namespace.
   */
  async forwardNamespacePods(ns: string, port: number, targetPort: number): Promise<void> {
    await this.createForward(`${ns}-${port}`, {
      selector: { matchNamespaces: [ns] },
      forwards: [{ ports: [port], target: { port: targetPort, address: '127.0.0.1' } }],
    });
  }

  async deleteNamespacePodForwards(ns: string, port: number): Promise<void> {
    await this.deleteForward(`${ns}-${port}`);
  }

  /** Creates a kwok ClusterPortForward: which pods (`spec.selector`) send which ports where. */
  private async createForward(name: string, spec: Record<string, unknown>): Promise<void> {
    await this.custom.createClusterCustomObject({
      group: 'kwok.x-k8s.io',
      version: 'v1alpha1',
      plural: 'clusterportforwards',
      body: { apiVersion: 'kwok.x-k8s.io/v1alpha1', kind: 'ClusterPortForward', metadata: { name }, spec },
    });
  }

  /** Deletes a kwok ClusterPortForward, if there is one. */
  private async deleteForward(name: string): Promise<void> {
    await this.custom
      .deleteClusterCustomObject({
        group: 'kwok.x-k8s.io',
        version: 'v1alpha1',
        plural: 'clusterportforwards',
        name,
      })
      .catch(() => undefined);
  }

  async waitPodReady(ns: string, name: string, timeoutMs = 30_000): Promise<k8s.V1Pod> {
    let pod: k8s.V1Pod | undefined;
    await poll(`pod ${ns}/${name} Running and Ready`, timeoutMs, async () => {
      pod = await this.core.readNamespacedPod({ name, namespace: ns });
      const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      return pod.status?.phase === 'Running' && !!ready;
    });
    return pod!;
  }

  /**
   * Role `role` in `ns` allowing `rules`, and RoleBinding `binding` (by default named as the role) of
   * it to `subject`.
   */
  async grantRole(
    ns: string,
    role: string,
    rules: k8s.V1PolicyRule[],
    subject: RbacSubject,
    binding = role,
  ): Promise<void> {
    await this.rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: role }, rules } });
    await this.bindRole(ns, binding, { kind: 'Role', name: role }, subject);
  }

  /** RoleBinding `binding` in `ns` of an existing Role or ClusterRole to `subject`. */
  async bindRole(
    ns: string,
    binding: string,
    role: { kind: 'Role' | 'ClusterRole'; name: string },
    subject: RbacSubject,
  ): Promise<void> {
    const apiGroup = 'rbac.authorization.k8s.io';
    await this.rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: binding },
        roleRef: { apiGroup, ...role },
        subjects: [
          'user' in subject
            ? { apiGroup, kind: 'User', name: subject.user }
            : { apiGroup, kind: 'Group', name: subject.group },
        ],
      },
    });
  }

  /** A bearer token for any user name and groups (served by the test env's token webhook). */
  mintUserToken(user: string, groups: string[] = []): string {
    const secret = fs.readFileSync(this.state.webhookSecretFile, 'utf8').trim();
    return mintToken(secret, { user, groups: [...groups, 'system:authenticated'] });
  }

  /** A token for a ServiceAccount (created if missing), from the TokenRequest API. */
  async mintServiceAccountToken(ns: string, name: string): Promise<string> {
    await this.core
      .createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } })
      .catch((err: unknown) => {
        if (statusCode(err) !== 409) throw err;
      });
    const res = await this.core.createNamespacedServiceAccountToken({
      name,
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const token = res.status?.token;
    if (!token) throw new TestEnvError(`TokenRequest for ${ns}/${name} returned no token`);
    return token;
  }

  /** A kubeconfig file that authenticates with `token` against the test control plane. */
  kubeconfigFor(token: string): string {
    const file = path.join(
      stateDir(),
      `kubeconfig-${crypto.createHash('sha256').update(token).digest('hex').slice(0, 12)}`,
    );
    const base = JSON.parse(fs.readFileSync(this.state.kubeconfig, 'utf8')) as {
      users: { name: string; user: Record<string, string> }[];
    };
    base.users = [{ name: 'pfo-testenv-admin', user: { token } }];
    fs.writeFileSync(file, JSON.stringify(base, null, 2), { mode: 0o600 });
    return file;
  }

  /**
   * Waits until kwok forwards the ports of a pod created now. After kube-apiserver or etcd restarts,
   * kwok's watches of ClusterPortForwards come back with a backoff of their own (client-go's
   * reflector), and until then a new pod's port-forward fails on the node with "no forward found for
   * port" (seen for tens of seconds). kube-controller-manager's watches come back the same way, so
   * the probe namespace's default ServiceAccount gets the same time (once more than 30 s in CI-like
   * runs). A test that restarts a component calls this before it leaves the control plane to the
   * next test. Checked with the pinned kubectl, not the operator.
   */
  async waitNodeForwards(timeoutMs = 90_000): Promise<void> {
    const ns = await this.createNamespace('testenv-probe', timeoutMs);
    const server = await startNamedEchoServer('probe');
    try {
      await this.createPod(ns, 'probe', [{ port: 8080, targetPort: server.port }]);
      await poll('kwok to forward the port of a new pod', timeoutMs, async () => {
        // kubectl ends its whole session on a node-side error: a new one for each try.
        const pf = await this.portForward(['-n', ns, 'pod/probe', ':8080']).catch(() => undefined);
        if (!pf) return false;
        try {
          return (await whoAnswers(pf.localPort, 5_000)) === 'probe';
        } finally {
          await pf.stop();
        }
      });
    } finally {
      await server.close();
      await this.deleteForward(podForwardName(ns, 'probe'));
      await this.deleteNamespace(ns);
    }
  }

  /**
   * `kubectl port-forward` running in the background; resolves once it printed its local port.
   * `stderr()` returns what it printed to stderr so far.
   */
  async portForward(args: string[], kubeconfig?: string): Promise<KubectlPortForward> {
    const child = spawn(
      this.state.kubectl,
      ['--kubeconfig', kubeconfig ?? this.state.kubeconfig, 'port-forward', ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    let exitCode: number | undefined;
    void exited.then((c) => (exitCode = c));
    let localPort = 0;
    await poll('kubectl port-forward to print "Forwarding from"', 15_000, () => {
      if (exitCode !== undefined) {
        throw new TestEnvError(`kubectl port-forward exited with ${exitCode}: ${stderr.trim()}`);
      }
      const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(stdout);
      if (m) localPort = Number(m[1]);
      return Promise.resolve(!!m);
    });
    return {
      localPort,
      stderr: () => stderr,
      exited,
      stop: async () => {
        if (exitCode === undefined) child.kill('SIGTERM');
        await exited;
      },
    };
  }
}

export interface KubectlPortForward {
  localPort: number;
  stderr(): string;
  exited: Promise<number>;
  stop(): Promise<void>;
}

/** The kwok ClusterPortForward that serves one pod's ports (cluster-scoped, so namespace and name). */
export function podForwardName(ns: string, pod: string): string {
  return `pod.${ns}.${pod}`;
}
