// The test control plane: etcd, kube-apiserver (RBAC, token authentication, service-account token
// signing), kube-controller-manager and kwok as the kubelet of node kwok-node-0, real processes on
// loopback with ports chosen at run time. `up` starts it (or reuses a running one) and returns once it
// is ready; `down` stops every process it started and removes the state folder.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAll } from 'js-yaml';
import { Assets, ensureAssets } from './assets';
import { TestEnvError } from './errors';
import {
  assertRoot,
  ensureNodeAssets,
  GATEWAY,
  kubeletClientPki,
  nodeImages,
  reimportImages,
  SERVICE_CIDR,
  setUpNetwork,
  startRealNode,
  tearDownRealNode,
  wantRealNode,
} from './node';
import type { NodeAssets } from './node/assets';
import { repoRoot, stateDir } from './paths';
import { adminToken, ProcessRecord, readState, TestEnvState, writeState } from './state';
import {
  assertPortFree,
  belongsTo,
  freePort,
  httpGet,
  lastLines,
  processesUsing,
  runChecked,
  sleep,
  Started,
  startProcess,
  stopProcess,
  waitReady,
} from './procs';

export const NODE_NAME = 'kwok-node-0';

/**
 * kwok's pod CIDR: inside 127.0.0.0/8, which Linux routes to the loopback interface whole, so a test
 * can connect from a pod's own address by binding its client socket to it (the operator identifies
 * clients by source address). It leaves out 127.0.0.1, the node's address and the one hostNetwork
 * pods (and every other test client) get.
 */
export const POD_CIDR = '127.244.0.1/16';

export { adminToken, readState, writeState };
export type { ProcessRecord, TestEnvState };

type Log = (line: string) => void;

/** A running env whose processes are all alive and whose API server answers. */
export async function runningState(dir = stateDir()): Promise<TestEnvState | undefined> {
  const state = readState(dir);
  if (!state || !state.processes.every((p) => belongsTo(p, dir))) return undefined;
  const token = adminToken(dir);
  const res = await httpGet(`${state.server}/readyz`, token).catch(() => undefined);
  return res?.status === 200 ? state : undefined;
}

/** Starts the control plane, or returns the running one. `started` says which. */
export async function up(log: Log = console.log): Promise<{ state: TestEnvState; started: boolean }> {
  const dir = stateDir();
  const running = await runningState(dir);
  if (running) {
    log(`test control plane already running at ${running.server} (kubeconfig ${running.kubeconfig})`);
    await reimportImages(dir, nodeImages(), log);
    return { state: running, started: false };
  }
  if (fs.existsSync(dir)) await down(() => undefined); // leftovers of a crashed run

  const fixedPort = process.env.TESTENV_APISERVER_PORT;
  if (fixedPort !== undefined && !/^\d+$/.test(fixedPort)) {
    throw new TestEnvError(
      `TESTENV_APISERVER_PORT=${fixedPort} is not a port number: give 1-65535 or unset it.`,
    );
  }
  if (fixedPort) await assertPortFree(Number(fixedPort), 'kube-apiserver', 'TESTENV_APISERVER_PORT');

  if (wantRealNode()) assertRoot();
  const assets = await ensureAssets(log);
  log(`binaries from ${assets.source}`);
  const nodeAssets = wantRealNode() ? await ensureNodeAssets(log) : undefined;
  if (nodeAssets) log(`real node's binaries from ${nodeAssets.source}`);
  const started: Started[] = [];
  try {
    const apiPort = fixedPort ? Number(fixedPort) : await freePort();
    const state = await start(dir, assets, apiPort, started, log, nodeAssets);
    return { state, started: true };
  } catch (err) {
    for (const p of started.reverse()) await stopProcess(p, 3000);
    await tearDownRealNode(dir, () => undefined);
    const keep = path.join(path.dirname(dir), `${path.basename(dir)}-failed`);
    fs.rmSync(keep, { recursive: true, force: true });
    if (fs.existsSync(dir)) fs.renameSync(dir, keep);
    if (err instanceof TestEnvError) {
      err.message += `\n  (state and logs of the failed start kept in ${keep})`;
    }
    throw err;
  }
}

async function start(
  dir: string,
  assets: Assets,
  apiPort: number,
  started: Started[],
  log: Log,
  nodeAssets?: NodeAssets,
): Promise<TestEnvState> {
  const t0 = Date.now();
  const logs = path.join(dir, 'logs');
  const pki = path.join(dir, 'pki');
  for (const d of [logs, pki, path.join(dir, 'etcd')]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });

  // Credentials: an admin token (system:masters), the service-account signing key, the webhook secret.
  const token = crypto.randomBytes(24).toString('hex');
  fs.writeFileSync(path.join(pki, 'admin-token'), token, { mode: 0o600 });
  fs.writeFileSync(path.join(pki, 'tokens.csv'), `${token},testenv-admin,testenv-admin,system:masters\n`, {
    mode: 0o600,
  });
  const sa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(pki, 'sa.key'), sa.privateKey.export({ type: 'pkcs1', format: 'pem' }), {
    mode: 0o600,
  });
  fs.writeFileSync(path.join(pki, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
  const webhookSecretFile = path.join(pki, 'webhook-secret');
  fs.writeFileSync(webhookSecretFile, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });

  const ready = new Map<string, ProcessRecord['ready']>();
  const run = (name: string, command: string, args: string[], readyUrl?: ProcessRecord['ready']): Started => {
    const p = startProcess(name, command, args, path.join(logs, `${name}.log`));
    started.push(p);
    if (readyUrl) ready.set(name, readyUrl);
    return p;
  };

  // 1. The token webhook (tests mint tokens for users with groups through it).
  const webhookPort = await freePort();
  const webhook = run('token-webhook', process.execPath, [
    path.join(__dirname, 'token-webhook.js'),
    String(webhookPort),
    webhookSecretFile,
  ]);
  await waitReady(
    webhook,
    'listening',
    10_000,
    async () => (await httpGet(`http://127.0.0.1:${webhookPort}/`)).status > 0,
  );
  writeKubeconfig(path.join(pki, 'webhook.kubeconfig'), `http://127.0.0.1:${webhookPort}/authenticate`, {});

  // 2. etcd.
  const [etcdPort, etcdPeer] = [await freePort(), await freePort()];
  const etcd = run(
    'etcd',
    assets.bin.etcd,
    [
      '--name=testenv',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=testenv=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync', // a throw-away store: durability is not worth the disk waits
      '--log-level=warn',
    ],
    { url: `http://127.0.0.1:${etcdPort}/health` },
  );
  await waitReady(
    etcd,
    'healthy',
    30_000,
    async () => (await httpGet(`http://127.0.0.1:${etcdPort}/health`)).status === 200,
  );
  log(`  etcd ${assets.versions.etcd} on 127.0.0.1:${etcdPort}`);

  // 3. kube-apiserver. With a real node it listens on the bridge's address, where pods reach it, and
  //    calls the kubelet with a client certificate; kwok's node needs neither.
  const host = nodeAssets ? GATEWAY : '127.0.0.1';
  if (nodeAssets) setUpNetwork(dir);
  const kubeletPki = nodeAssets ? kubeletClientPki(pki) : undefined;
  const server = `https://${host}:${apiPort}`;
  const apiserver = run(
    'kube-apiserver',
    assets.bin['kube-apiserver'],
    [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      `--bind-address=${host}`,
      `--advertise-address=${host}`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${pki}`, // a self-signed serving certificate for 127.0.0.1 and localhost
      `--token-auth-file=${path.join(pki, 'tokens.csv')}`,
      `--authentication-token-webhook-config-file=${path.join(pki, 'webhook.kubeconfig')}`,
      '--authentication-token-webhook-version=v1',
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${path.join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(pki, 'sa.key')}`,
      `--service-cluster-ip-range=${nodeAssets ? SERVICE_CIDR : '10.96.0.0/16'}`,
      '--kubelet-preferred-address-types=InternalIP', // kwok's node answers on its InternalIP, 127.0.0.1
      ...(kubeletPki
        ? [`--kubelet-client-certificate=${kubeletPki.cert}`, `--kubelet-client-key=${kubeletPki.key}`]
        : ['--endpoint-reconciler-type=none']), // 127.0.0.1 may not be an endpoint of the kubernetes Service
      '--allow-privileged=true',
      '--profiling=false',
    ],
    { url: `${server}/readyz`, auth: true },
  );
  await waitReady(
    apiserver,
    'ready',
    90_000,
    async () => (await httpGet(`${server}/readyz`, token)).status === 200,
  );
  log(`  kube-apiserver ${assets.versions.kubernetes} at ${server}`);

  const ca = fs.readFileSync(path.join(pki, 'apiserver.crt'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  writeKubeconfig(kubeconfig, server, { token, ca });

  // 4. kube-controller-manager: namespaces get their default ServiceAccount and can be deleted,
  //    workloads get pods, garbage collection follows ownerReferences.
  run('kube-controller-manager', assets.bin['kube-controller-manager'], [
    `--kubeconfig=${kubeconfig}`,
    '--leader-elect=false',
    '--secure-port=0',
    // nodelifecycle would taint and evict on any missed kwok heartbeat; node IPAM and cloud controllers
    // have nothing to do here.
    '--controllers=*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller',
    `--service-account-private-key-file=${path.join(pki, 'sa.key')}`,
    `--root-ca-file=${path.join(pki, 'apiserver.crt')}`,
  ]);

  // 5. kwok as the kubelet of kwok-node-0, serving port-forward from kwok ClusterPortForward objects.
  // Only that CRD: kwok's namespaced `portforwards.kwok.x-k8s.io` would shadow this project's
  // `portforwards` in `kubectl get portforwards` and `kubectl describe portforward NAME`.
  const kwokPort = await freePort();
  const kubectl = (args: string[], input?: string): string =>
    runKubectl(assets.bin.kubectl, kubeconfig, args, input);
  const kwokCrds = (
    loadAll(fs.readFileSync(assets.kwokCrds, 'utf8')) as { metadata?: { name?: string } }[]
  ).filter((d) => d?.metadata?.name === 'clusterportforwards.kwok.x-k8s.io');
  if (kwokCrds.length !== 1) throw new TestEnvError(`${assets.kwokCrds} has no ClusterPortForward CRD`);
  kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify(kwokCrds[0]));
  kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/clusterportforwards.kwok.x-k8s.io']);
  const kwok = run(
    'kwok',
    assets.bin.kwok,
    [
      `--kubeconfig=${kubeconfig}`,
      `--config=${assets.kwokStages}`,
      `--manage-single-node=${NODE_NAME}`,
      '--node-ip=127.0.0.1',
      `--node-port=${kwokPort}`,
      `--server-address=127.0.0.1:${kwokPort}`,
      '--enable-crds=ClusterPortForward',
      `--cidr=${POD_CIDR}`,
    ],
    { url: `http://127.0.0.1:${kwokPort}/healthz` },
  );
  await waitReady(
    kwok,
    'serving',
    30_000,
    async () => (await httpGet(`http://127.0.0.1:${kwokPort}/healthz`)).status === 200,
  );
  kubectl(['apply', '-f', '-'], nodeManifest(!!nodeAssets));
  await waitReady(kwok, `turning node ${NODE_NAME} Ready`, 30_000, async () =>
    kubectlOk(assets.bin.kubectl, kubeconfig, [
      'wait',
      '--for=condition=Ready',
      '--timeout=1s',
      `node/${NODE_NAME}`,
    ]),
  );
  log(`  kwok ${assets.versions.kwok} is the kubelet of node ${NODE_NAME} (127.0.0.1:${kwokPort})`);

  // 6. This project's CRDs, and a namespace that is usable (its default ServiceAccount exists).
  const crds = path.join(repoRoot, 'crds');
  if (fs.existsSync(crds) && fs.readdirSync(crds).some((f) => /\.ya?ml$/.test(f))) {
    kubectl(['apply', '--server-side', '-f', crds]);
    kubectl(['wait', '--for=condition=Established', '--timeout=30s', '-f', crds]);
  }
  const kcm = started.find((p) => p.name === 'kube-controller-manager')!;
  await waitReady(kcm, 'creating ServiceAccounts', 60_000, async () =>
    kubectlOk(assets.bin.kubectl, kubeconfig, ['get', 'serviceaccount', 'default', '-n', 'default']),
  );

  // 7. The real node, when asked for (REAL_NODE=1).
  if (nodeAssets) {
    await startRealNode(
      {
        dir,
        kubeconfig,
        kubectl,
        kubectlOk: (args) => kubectlOk(assets.bin.kubectl, kubeconfig, args),
        apiPort,
        clientCA: kubeletPki!.ca,
        run,
        freePort,
        images: nodeImages(),
        log,
      },
      nodeAssets,
    );
  }

  // kubectl of the pinned release, next to the kubeconfig, for people at a terminal.
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.symlinkSync(assets.bin.kubectl, path.join(dir, 'bin', 'kubectl'));

  const state: TestEnvState = {
    apiVersion: 'testenv.portforward.dev/v1',
    server,
    kubeconfig,
    webhookSecretFile,
    kubectl: assets.bin.kubectl,
    versions: assets.versions,
    processes: started.map(({ name, pid, command, logFile, args, startTicks }) => ({
      name,
      pid,
      command,
      startTicks,
      logFile,
      args,
      ready: ready.get(name),
    })),
  };
  writeState(state, dir);
  log(`test control plane ready in ${((Date.now() - t0) / 1000).toFixed(1)} s; kubeconfig: ${kubeconfig}`);
  return state;
}

/**
 * Stops every process of this state folder and removes it: those state.json records while they are
 * still the processes it started (a restarted component is recorded anew), and any other process of
 * the control plane's binaries whose command line names the folder (one restarted by a run that
 * crashed before recording it, an operator a test left behind, a start that died before writing
 * state.json). A process of another state folder is never signalled, even if it was given a pid
 * recorded here.
 */
export async function down(log: Log = console.log): Promise<void> {
  const dir = stateDir();
  const state = readState(dir);
  const procs = ownProcesses(dir, state);
  for (const p of [...procs].reverse()) {
    log(`stopping ${p.name} (pid ${p.pid})`);
    await stopProcess(p);
  }
  await tearDownRealNode(dir, log);
  fs.rmSync(dir, { recursive: true, force: true });
  log(
    state || procs.length
      ? 'test control plane stopped and its state removed'
      : 'no test control plane was running',
  );
}

/** The live processes of `dir`: recorded ones first (in start order), then any others found. */
export function ownProcesses(
  dir: string,
  state = readState(dir),
): { name: string; pid: number; command: string; startTicks?: number }[] {
  if (!fs.existsSync(dir)) return [];
  const recorded = (state?.processes ?? []).filter((p) => belongsTo(p, dir));
  const seen = new Set(recorded.map((p) => p.pid));
  // Without state.json every process naming the folder is a leftover of it; with one, only the
  // binaries a control plane runs (so a `tail -f .testenv/logs/...` in a terminal is left alone).
  const binaries = state ? new Set([...state.processes.map((p) => p.command), state.kubectl]) : undefined;
  const found = processesUsing(dir)
    .filter((p) => !seen.has(p.pid) && (!binaries || binaries.has(p.command)))
    .map((p) => ({ ...p, name: path.basename(p.command) }));
  return [...recorded, ...found];
}

/** kwok's node; beside a real node it is tainted, so that the scheduler places pods on the real one. */
function nodeManifest(tainted: boolean): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Node',
    spec: tainted
      ? { taints: [{ key: 'portforward.dev/testenv-node', value: 'kwok', effect: 'NoSchedule' }] }
      : {},
    metadata: {
      name: NODE_NAME,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: { type: 'kwok', 'kubernetes.io/hostname': NODE_NAME, 'kubernetes.io/os': 'linux' },
    },
  });
}

function writeKubeconfig(file: string, server: string, opts: { token?: string; ca?: Buffer }): void {
  const cluster: Record<string, string> = { server };
  if (opts.ca) cluster['certificate-authority-data'] = opts.ca.toString('base64');
  const user: Record<string, string> = opts.token ? { token: opts.token } : {};
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'pfo-testenv', cluster }],
    users: [{ name: 'pfo-testenv-admin', user }],
    contexts: [{ name: 'pfo-testenv', context: { cluster: 'pfo-testenv', user: 'pfo-testenv-admin' } }],
    'current-context': 'pfo-testenv',
  };
  fs.writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
}

export function runKubectl(kubectl: string, kubeconfig: string, args: string[], input?: string): string {
  return runChecked(kubectl, ['--kubeconfig', kubeconfig, ...args], {
    input,
    name: 'kubectl',
    shownArgs: args,
  });
}

function kubectlOk(kubectl: string, kubeconfig: string, args: string[]): Promise<boolean> {
  const out = spawnSync(kubectl, ['--kubeconfig', kubeconfig, ...args], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  return Promise.resolve(out.status === 0);
}

export { lastLines, sleep };
