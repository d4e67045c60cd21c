// "A remote cluster": a second test control plane (etcd, kube-apiserver, kube-controller-manager,
// kwok) in its own state folder, `.testenv-remote/`, for PortForwards whose spec.kubeConfig names a
// Secret with a kubeconfig of it. Started by the testenv CLI with TESTENV_DIR (as `make testenv-up`
// starts the first), reused when one runs already, stopped by the suite that started it.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { statusCode } from '../../src/kube/client';
import { TestCluster } from './cluster';
import { restartComponent } from './components';
import { runningState } from './controlplane';
import { TestEnvError } from './errors';
import { repoRoot, stateDir } from './paths';

/** What docs/remote-clusters.md grants the kubeconfig's user in a remote namespace, and no more. */
export const FORWARDER_RULES: k8s.V1PolicyRule[] = [
  { apiGroups: [''], resources: ['pods', 'services'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['apps'], resources: ['deployments', 'statefulsets'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['pods/portforward'], verbs: ['get', 'create'] },
];

export interface RemoteCluster {
  cluster: TestCluster;
  dir: string;
  /** The remote API server's URL. */
  server: string;
  /**
   * A kubeconfig of the remote cluster with every datum embedded (as a Secret holds it): its CA, its
   * server, and `token` as the user's credentials; `user` replaces the user entry whole.
   */
  kubeconfig(
    token: string,
    extra?: { user?: Record<string, unknown>; cluster?: Record<string, unknown> },
  ): string;
  /**
   * A token of remote user `user`, bound in `namespace` to Role `forwarder` (created on first use),
   * which allows FORWARDER_RULES.
   */
  forwarderToken(namespace: string, user: string): Promise<string>;
  /** Stops and starts the remote kube-apiserver (same port and data). */
  restartApiServer(downMs?: number): Promise<void>;
  /** Stops the control plane if this fixture started it. */
  stop(): Promise<void>;
}

/** The state folder of the remote cluster: beside the first one's. */
export function remoteDir(): string {
  return `${stateDir()}-remote`;
}

function cli(cmd: 'up' | 'down', dir: string): void {
  const res = spawnSync(process.execPath, [path.join(repoRoot, 'build', 'tools', 'testenv', 'cli.js'), cmd], {
    env: { ...process.env, TESTENV_DIR: dir },
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (res.status !== 0) {
    throw new TestEnvError(`testenv ${cmd} of the remote cluster failed:\n${res.stdout}\n${res.stderr}`);
  }
}

/** Starts the remote cluster, or connects to the one running. */
export async function startRemoteCluster(): Promise<RemoteCluster> {
  const dir = remoteDir();
  const running = await runningState(dir);
  if (!running) cli('up', dir);
  const cluster = TestCluster.connect(dir);
  const own = JSON.parse(fs.readFileSync(cluster.state.kubeconfig, 'utf8')) as {
    clusters: { cluster: Record<string, unknown> }[];
  };
  const ca = own.clusters[0].cluster['certificate-authority-data'];
  return {
    cluster,
    dir,
    server: cluster.state.server,
    kubeconfig: (token, extra = {}) =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'remote',
            cluster: { server: cluster.state.server, 'certificate-authority-data': ca, ...extra.cluster },
          },
        ],
        users: [{ name: 'forwarder', user: extra.user ?? { token } }],
        contexts: [{ name: 'remote', context: { cluster: 'remote', user: 'forwarder' } }],
        'current-context': 'remote',
      }),
    forwarderToken: async (namespace, user) => {
      await cluster.rbac
        .createNamespacedRole({
          namespace,
          body: { metadata: { name: 'forwarder' }, rules: FORWARDER_RULES },
        })
        .catch((err: unknown) => {
          if (statusCode(err) !== 409) throw err;
        });
      await cluster.bindRole(namespace, user, { kind: 'Role', name: 'forwarder' }, { user });
      return cluster.mintUserToken(user);
    },
    restartApiServer: async (downMs = 0) => {
      await restartComponent('kube-apiserver', { dir, downMs });
    },
    stop: () => {
      if (!running && process.env.TESTENV_KEEP !== '1') cli('down', dir);
      return Promise.resolve();
    },
  };
}
