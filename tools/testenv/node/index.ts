// The real node beside kwok's (REAL_NODE=1): kube-scheduler, containerd, CoreDNS and a kubelet that
// registers `real-node-0`, on a bridge network that network.ts keeps on this machine. kwok-node-0
// stays for the fast suites and is tainted, so the scheduler places pods on the real node only.
// `startRealNode` runs after kube-apiserver and kube-controller-manager; `tearDownRealNode` after
// `down` stopped the processes: it removes containers, shims, mounts, network namespaces, cgroups and
// the network, also those a crashed run left.
import { spawnSync } from 'node:child_process';
import * as dns from 'node:dns';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestEnvError } from '../errors';
import { httpGet, processesUsing, ProcessRef, sleep, Started, stopProcess, waitReady } from '../procs';
import { ensureNodeAssets, NodeAssets, PAUSE_IMAGE } from './assets';
import { importImage, runtimePaths, writeRuntimeConfig } from './containerd';
import { CGROUP_ROOT, REAL_NODE_LABEL, REAL_NODE_NAME, writeCorefile, writeKubeletConfig } from './kubelet';
import {
  checkListeners,
  checkNetwork,
  GATEWAY,
  networkOwner,
  routeKubernetesService,
  tearDownNetwork,
} from './network';

export { ensureNodeAssets, REAL_NODE_LABEL, REAL_NODE_NAME };
export { GATEWAY, KUBERNETES_SERVICE_IP, SERVICE_CIDR, setUpNetwork } from './network';
export { kubeletClientPki } from './kubelet';

type Log = (line: string) => void;

export interface RealNodeContext {
  dir: string;
  kubeconfig: string;
  kubectl: (args: string[], input?: string) => string;
  kubectlOk: (args: string[]) => Promise<boolean>;
  apiPort: number;
  clientCA: string;
  run: (name: string, command: string, args: string[], ready?: { url: string }) => Started;
  freePort: () => Promise<number>;
  /** OCI archives to import besides the sandbox image (`make image`'s). */
  images: string[];
  log: Log;
}

/** The operator's image as deploy/ names it; `make image` builds it and the real node imports it. */
export const OPERATOR_IMAGE = 'ghcr.io/portforward-dev/portforward-operator:0.1.0';

/** The OCI archives NODE_IMAGES names (colon-separated), to import besides the sandbox image. */
export function nodeImages(): string[] {
  return (process.env.NODE_IMAGES ?? '').split(':').filter(Boolean);
}

export function wantRealNode(): boolean {
  return process.env.REAL_NODE === '1' || process.env.REAL_NODE === 'true';
}

export async function startRealNode(ctx: RealNodeContext, assets: NodeAssets): Promise<void> {
  const { dir, log } = ctx;
  const t0 = Date.now();
  routeKubernetesService(ctx.apiPort);
  const checked = checkNetwork();
  log(`  network checked (read back): ${checked.join(' | ')}`);

  // kube-scheduler: places the Deployments' pods (on the real node; kwok-node-0 is tainted).
  const schedPort = await ctx.freePort();
  const sched = ctx.run('kube-scheduler', assets.bin['kube-scheduler'], [
    `--kubeconfig=${ctx.kubeconfig}`,
    `--authentication-kubeconfig=${ctx.kubeconfig}`,
    `--authorization-kubeconfig=${ctx.kubeconfig}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${schedPort}`,
  ]);
  await waitReady(
    sched,
    'healthy',
    60_000,
    async () => (await httpGet(`https://127.0.0.1:${schedPort}/healthz`)).status === 200,
  );

  // containerd, then the images it may run.
  const rt = runtimePaths(dir);
  writeRuntimeConfig(rt, assets, PAUSE_IMAGE);
  const containerd = ctx.run('containerd', assets.bin.containerd, ['--config', rt.config]);
  await waitReady(containerd, 'serving', 60_000, () =>
    Promise.resolve(
      spawnSync(assets.bin.ctr, ['--address', rt.socket, 'version'], { timeout: 5000 }).status === 0,
    ),
  );
  for (const archive of [assets.pauseArchive, ...ctx.images]) {
    const t = Date.now();
    importImage(assets, rt, archive);
    log(`  imported ${path.basename(archive)} into containerd in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }

  // CoreDNS, the cluster DNS the kubelet hands to pods.
  const coredns = ctx.run('coredns', assets.bin.coredns, [
    '-conf',
    writeCorefile(rt.nodeDir, ctx.kubeconfig),
  ]);
  const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([GATEWAY]);
  await waitReady(
    coredns,
    'answering',
    60_000,
    async () => (await resolver.resolve4('kubernetes.default.svc.cluster.local')).length > 0,
  );

  // The kubelet; the node must turn Ready. Its cgroup root exists first (the kubelet does not make it).
  makeCgroupRoot();
  const [port, healthzPort] = [await ctx.freePort(), await ctx.freePort()];
  const kubelet = writeKubeletConfig({
    nodeDir: rt.nodeDir,
    kubeconfig: ctx.kubeconfig,
    clientCA: ctx.clientCA,
    socket: rt.socket,
    port,
    healthzPort,
  });
  const k = ctx.run('kubelet', assets.bin.kubelet, kubelet.args, { url: kubelet.healthz });
  await waitReady(k, `registering node ${REAL_NODE_NAME} Ready`, 120_000, () =>
    ctx.kubectlOk(['wait', '--for=condition=Ready', '--timeout=1s', `node/${REAL_NODE_NAME}`]),
  );
  // The kubelet registers with the not-ready taint, which kube-controller-manager's node lifecycle
  // controller removes once the node is Ready; that controller is off in the test env (it would taint
  // and evict kwok's node on any missed heartbeat), so the taint goes here, as it would there.
  ctx.kubectl(['taint', 'node', REAL_NODE_NAME, 'node.kubernetes.io/not-ready:NoSchedule-']);
  const listening = checkListeners([sched, containerd, coredns, k].map((p) => p.pid));
  log(`  the node's processes listen on ${listening.join(', ')} (read back: loopback and ${GATEWAY} only)`);
  const runtime = ctx.kubectl([
    'get',
    'node',
    REAL_NODE_NAME,
    '-o',
    'jsonpath={.status.nodeInfo.containerRuntimeVersion}',
  ]);
  log(
    `  ${REAL_NODE_NAME} Ready (kubelet ${assets.versions.kubernetes}, ${runtime}, runc ${assets.versions.runc}, ` +
      `CNI plugins ${assets.versions.cni}, CoreDNS ${assets.versions.coredns}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}

/**
 * Imports the images again into a running real node (an up that reuses it): a rebuilt image must
 * not leave the pods on the old one. Idempotent; a few seconds.
 */
export async function reimportImages(dir: string, images: string[], log: Log): Promise<void> {
  if (images.length === 0 || !fs.existsSync(runtimePaths(dir).nodeDir)) return;
  const assets = await ensureNodeAssets(log);
  for (const archive of images) importImage(assets, runtimePaths(dir), archive);
  log(`  imported ${images.map((i) => path.basename(i)).join(', ')} into the running node's containerd`);
}

/** Removes everything a real node of `dir` left: pods' processes, shims, mounts, netns, cgroups, network. */
export async function tearDownRealNode(dir: string, log: Log = console.log): Promise<void> {
  const rt = runtimePaths(dir);
  const hadNode = fs.existsSync(rt.nodeDir) || fs.existsSync(rt.runDir) || networkOwner() === dir;
  if (!hadNode) return;
  // 1. The pods' processes (every process in a cgroup under the node's root) and the shims.
  const victims: ProcessRef[] = [...processesUsing(rt.runDir), ...processesUsing(rt.nodeDir)];
  for (const pid of cgroupPids()) victims.push({ pid, command: readArgv0(pid) });
  for (const p of victims) await stopProcess(p, 0);
  // 2. Mounts under the node's folders, deepest first (rootfs, shm, volumes, network namespaces).
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && [rt.nodeDir, rt.runDir].some((d) => m === d || m.startsWith(d + '/')))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
  }
  // 3. The cgroups (empty now), deepest first, in every v1 hierarchy.
  for (const d of cgroupDirs().sort((a, b) => b.length - a.length)) {
    for (let i = 0; i < 20; i++) {
      try {
        fs.rmdirSync(d);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
        await sleep(100); // a process still leaving it
      }
    }
  }
  fs.rmSync(rt.runDir, { recursive: true, force: true });
  if (networkOwner() === dir || networkOwner() === undefined) tearDownNetwork();
  log(`real node removed (${victims.length} processes, ${mounts.length} mounts)`);
}

/** CGROUP_ROOT in every v1 hierarchy; cpuset's copies its parent's cpus and mems (v1 starts them empty). */
function makeCgroupRoot(): void {
  for (const h of fs.readdirSync('/sys/fs/cgroup')) {
    const parent = path.join('/sys/fs/cgroup', h);
    if (h === 'unified' || !fs.existsSync(path.join(parent, 'cgroup.procs'))) continue;
    const dir = path.join(parent, CGROUP_ROOT);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      if (fs.existsSync(path.join(parent, f)))
        fs.writeFileSync(path.join(dir, f), fs.readFileSync(path.join(parent, f)));
    }
  }
}

function cgroupDirs(): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    found.push(d);
    for (const e of fs.readdirSync(d, { withFileTypes: true }))
      if (e.isDirectory()) walk(path.join(d, e.name));
  };
  for (const h of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
    const root = path.join('/sys/fs/cgroup', h, CGROUP_ROOT);
    if (fs.existsSync(root)) walk(root);
  }
  return found;
}

function cgroupPids(): number[] {
  const pids = new Set<number>();
  for (const d of cgroupDirs()) {
    try {
      for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n'))
        if (l) pids.add(Number(l));
    } catch {
      // gone meanwhile
    }
  }
  return [...pids];
}

function readArgv0(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  } catch {
    return '';
  }
}

export function assertRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new TestEnvError(
      'REAL_NODE=1 needs root (network namespaces, a bridge, iptables, mounts, cgroups).',
    );
  }
}
