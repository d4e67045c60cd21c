// The real node's binaries: kubelet and kube-scheduler of the control plane's release (built in
// hack/controlplane, like kube-apiserver), containerd with its runc shim and ctr (hack/node/containerd),
// CoreDNS (hack/node/coredns) and the pause program of the sandbox image, built with Go from the module
// proxy into the cache; runc, the CNI plugins and iptables from Debian's packages (installed with
// apt-get when missing and root). The sandbox image is made here from the pause program with buildah.
// A second run reuses the cache: its folder is keyed on the three helper modules' go.mod, go.sum and
// sources.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { goBuild, goVersion, ldflags } from '../assets';
import { TestEnvError } from '../errors';
import { required } from '../gotools';
import { cacheDir, controlPlaneModule, repoRoot } from '../paths';
import { readVersions } from '../versions';

type Log = (line: string) => void;

const containerdModule = path.join(repoRoot, 'hack', 'node', 'containerd');
const corednsModule = path.join(repoRoot, 'hack', 'node', 'coredns');

export const NODE_BINARIES = [
  'kubelet',
  'kube-scheduler',
  'containerd',
  'containerd-shim-runc-v2',
  'ctr',
  'pause',
  'coredns',
] as const;
export type NodeBinary = (typeof NODE_BINARIES)[number];

/** The sandbox image every pod's infra container runs; made here, imported into containerd. */
export const PAUSE_IMAGE = 'localhost/portforward-testenv/pause:1';
const PAUSE_ARCHIVE = 'pause.oci.tar';

/** Debian's packages the node uses, by the file each provides. */
const DEBIAN: Record<string, string> = {
  '/usr/sbin/runc': 'runc',
  '/usr/lib/cni/bridge': 'containernetworking-plugins',
  '/usr/sbin/iptables': 'iptables',
  '/usr/bin/buildah': 'buildah',
  '/usr/bin/openssl': 'openssl',
};

export interface NodeAssets {
  bin: Record<NodeBinary, string>;
  runc: string;
  cniBinDir: string;
  pauseArchive: string;
  versions: { kubernetes: string; containerd: string; coredns: string; runc: string; cni: string };
  source: string;
}

/** The version a helper module (by absolute path) requires of a module. */
function moduleVersion(dir: string, module: string): string {
  return required(path.relative(repoRoot, dir), module);
}

function debianVersion(pkg: string): string {
  const out = spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' });
  return out.status === 0 ? out.stdout.trim() : 'unknown';
}

/** Installs the Debian packages the node needs when missing (root and apt-get), else says which. */
function ensureDebianPackages(log: Log): void {
  const missing = [
    ...new Set(
      Object.entries(DEBIAN)
        .filter(([f]) => !fs.existsSync(f))
        .map(([, p]) => p),
    ),
  ];
  if (missing.length === 0) return;
  const root = process.getuid?.() === 0;
  const apt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;
  if (!root || !apt) {
    throw new TestEnvError(
      `the real node needs Debian's ${missing.join(', ')}: install them (apt-get install ${missing.join(' ')}) as root.`,
    );
  }
  log(`  installing ${missing.join(', ')} (Debian) for the real node`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update', '-qq'], { encoding: 'utf8', env });
  const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    encoding: 'utf8',
    env,
  });
  if (update.status !== 0 || install.status !== 0) {
    throw new TestEnvError(
      `apt-get install ${missing.join(' ')} failed: ${(install.stderr || update.stderr).trim()}`,
    );
  }
}

export function nodeCacheFolder(): string {
  const hash = crypto.createHash('sha256');
  for (const [dir, files] of [
    [controlPlaneModule, ['go.mod', 'go.sum']],
    [containerdModule, ['go.mod', 'go.sum', 'cmd/pause/main.go']],
    [corednsModule, ['go.mod', 'go.sum', 'main.go']],
  ] as const) {
    for (const f of files) hash.update(fs.readFileSync(path.join(dir, f)));
  }
  const k8s = readVersions().kubernetes;
  const containerd = moduleVersion(containerdModule, 'github.com/containerd/containerd/v2');
  const key = `node-${k8s}-containerd-${containerd}-${hash.digest('hex').slice(0, 10)}`;
  return path.join(cacheDir(), 'bin', key);
}

export async function ensureNodeAssets(log: Log = console.log): Promise<NodeAssets> {
  ensureDebianPackages(log);
  const dir = nodeCacheFolder();
  const complete = (d: string): boolean =>
    [...NODE_BINARIES, PAUSE_ARCHIVE].every((f) => fs.existsSync(path.join(d, f)));
  let source = 'cache';
  if (!complete(dir)) {
    await build(dir, log);
    source = 'cache (just built)';
  }
  const versions = readVersions();
  return {
    bin: Object.fromEntries(NODE_BINARIES.map((b) => [b, path.join(dir, b)])) as Record<NodeBinary, string>,
    runc: '/usr/sbin/runc',
    cniBinDir: '/usr/lib/cni',
    pauseArchive: path.join(dir, PAUSE_ARCHIVE),
    versions: {
      kubernetes: versions.kubernetes,
      containerd: moduleVersion(containerdModule, 'github.com/containerd/containerd/v2'),
      coredns: moduleVersion(corednsModule, 'github.com/coredns/coredns'),
      runc: debianVersion('runc'),
      cni: debianVersion('containernetworking-plugins'),
    },
    source: `${source} ${dir}`,
  };
}

async function build(dir: string, log: Log): Promise<void> {
  const go = goVersion();
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(`${dir}.tmp-`);
  fs.chmodSync(tmp, 0o755);
  const logBase = path.join(path.dirname(dir), `build-${path.basename(dir)}`);
  log(
    `building the real node (kubelet, kube-scheduler, containerd, CoreDNS, pause) with ${go.replace(/^go version /, '')}`,
  );
  log(`  the first build takes 5-15 minutes on 2 cores; later runs reuse it. Logs: ${logBase}-*.log`);
  const started = Date.now();
  const k8s = readVersions();
  try {
    await goBuild({
      moduleDir: controlPlaneModule,
      pkgs: ['k8s.io/kubernetes/cmd/kubelet', 'k8s.io/kubernetes/cmd/kube-scheduler'],
      outDir: tmp,
      ldflags: ldflags(k8s),
      logFile: `${logBase}-kubernetes.log`,
      log,
    });
    const containerd = moduleVersion(containerdModule, 'github.com/containerd/containerd/v2');
    const x = (v: string): string =>
      `-s -w -X github.com/containerd/containerd/v2/version.Version=${v} ` +
      '-X github.com/containerd/containerd/v2/version.Revision=module-proxy';
    await goBuild({
      moduleDir: containerdModule,
      pkgs: [
        'github.com/containerd/containerd/v2/cmd/containerd',
        'github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2',
        'github.com/containerd/containerd/v2/cmd/ctr',
        './cmd/pause',
      ],
      outDir: tmp,
      ldflags: x(containerd),
      env: { CGO_ENABLED: '0' }, // static: the pause binary runs alone in its image
      logFile: `${logBase}-containerd.log`,
      log,
    });
    await goBuild({
      moduleDir: corednsModule,
      pkgs: ['.'],
      outDir: tmp, // named after the module's last element: coredns
      ldflags: '-s -w',
      logFile: `${logBase}-coredns.log`,
      log,
    });
    pauseImage(tmp, `${logBase}-pause.log`);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  log(`  built in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** The sandbox image: the pause program alone, saved as an OCI archive for `ctr images import`. */
function pauseImage(dir: string, logFile: string): void {
  const sh = (script: string): string => {
    const out = spawnSync('sh', ['-euc', script], { encoding: 'utf8', env: { ...process.env, DIR: dir } });
    fs.appendFileSync(logFile, `$ ${script}\n${out.stdout}${out.stderr}`);
    if (out.status !== 0)
      throw new TestEnvError(`making the pause image failed: ${out.stderr.trim()}; see ${logFile}`);
    return out.stdout.trim();
  };
  const ctr = sh('buildah from scratch');
  try {
    sh(`buildah copy ${ctr} "$DIR/pause" /pause`);
    sh(`buildah config --entrypoint '["/pause"]' --user 65535:65535 ${ctr}`);
    sh(`buildah commit -q ${ctr} ${PAUSE_IMAGE}`);
  } finally {
    spawnSync('buildah', ['rm', ctr]);
  }
  sh(`buildah push -q ${PAUSE_IMAGE} "oci-archive:$DIR/${PAUSE_ARCHIVE}:${PAUSE_IMAGE}"`);
}
