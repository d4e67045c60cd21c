// Finds the control-plane binaries, or builds them with Go from the module proxy into a cache outside
// the repository. Order: $KUBE_ASSETS (all of them, or a clear error), then the cache, then PATH when
// every binary there reports the pinned version, then a build. A second run reuses the cache.
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestEnvError } from './errors';
import { cacheDir, controlPlaneModule } from './paths';
import { readVersions, Versions } from './versions';

export const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl', 'kwok'] as const;
export type Binary = (typeof BINARIES)[number];

/** Manifests generated from the pinned kwok module (see hack/controlplane/cmd/kwok-assets). */
export const MANIFESTS = { kwokCrds: 'kwok-crds.yaml', kwokStages: 'kwok-stages.yaml' } as const;

export interface Assets {
  versions: Versions;
  bin: Record<Binary, string>;
  kwokCrds: string;
  kwokStages: string;
  /** Where they came from, for the progress line. */
  source: string;
}

type Log = (line: string) => void;

/** Go packages of each binary, built in the helper module. */
const PACKAGES: Record<Binary, string> = {
  etcd: 'go.etcd.io/etcd/server/v3',
  'kube-apiserver': 'k8s.io/kubernetes/cmd/kube-apiserver',
  'kube-controller-manager': 'k8s.io/kubernetes/cmd/kube-controller-manager',
  kubectl: 'k8s.io/kubernetes/cmd/kubectl',
  kwok: 'sigs.k8s.io/kwok/cmd/kwok',
};

export async function ensureAssets(log: Log = console.log): Promise<Assets> {
  const versions = readVersions();
  if (process.env.KUBE_ASSETS)
    return fromFolder(path.resolve(process.env.KUBE_ASSETS), versions, '$KUBE_ASSETS');

  const dir = cachedFolder(versions);
  if (isComplete(dir)) return fromFolder(dir, versions, 'cache');

  const onPath = fromPath(versions);
  if (onPath && isComplete(dir, [])) return onPath;

  await build(dir, versions, log);
  return fromFolder(dir, versions, 'cache (just built)');
}

/** The cache folder for this exact set of pins: a change to go.mod, go.sum or kwok-assets rebuilds. */
export function cachedFolder(versions: Versions): string {
  const hash = crypto.createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'cmd/kwok-assets/main.go']) {
    hash.update(fs.readFileSync(path.join(controlPlaneModule, f)));
  }
  const key = `k8s-${versions.kubernetes}-kwok-${versions.kwok}-${hash.digest('hex').slice(0, 10)}`;
  return path.join(cacheDir(), 'bin', key);
}

function isComplete(dir: string, binaries: readonly string[] = BINARIES): boolean {
  return [...binaries, ...Object.values(MANIFESTS)].every((f) => fs.existsSync(path.join(dir, f)));
}

function fromFolder(dir: string, versions: Versions, source: string): Assets {
  const missing = [...BINARIES, ...Object.values(MANIFESTS)].filter((f) => !fs.existsSync(path.join(dir, f)));
  if (missing.length > 0) {
    throw new TestEnvError(
      `${source} folder ${dir} lacks ${missing.join(', ')}: point KUBE_ASSETS at a folder made by ` +
        '`make testenv-assets` (it holds all five binaries and both kwok manifests), or unset KUBE_ASSETS to build them.',
    );
  }
  const bin = Object.fromEntries(BINARIES.map((b) => [b, path.join(dir, b)])) as Record<Binary, string>;
  return {
    versions,
    bin,
    kwokCrds: path.join(dir, MANIFESTS.kwokCrds),
    kwokStages: path.join(dir, MANIFESTS.kwokStages),
    source: `${source} ${dir}`,
  };
}

/**
 * Binaries already on PATH are used only when each reports the pinned version: an older kubectl or
 * apiserver would make the tests prove something about another release. The kwok manifests still come
 * from the cache, so this path is taken only once they were generated there.
 */
function fromPath(versions: Versions): Assets | undefined {
  const expected: Record<Binary, [string[], string]> = {
    etcd: [['--version'], `etcd Version: ${versions.etcd.slice(1)}`],
    'kube-apiserver': [['--version'], `Kubernetes ${versions.kubernetes}`],
    'kube-controller-manager': [['--version'], `Kubernetes ${versions.kubernetes}`],
    kubectl: [['version', '--client'], `Client Version: ${versions.kubernetes}`],
    kwok: [['--version'], versions.kwok.slice(1)],
  };
  const bin = {} as Record<Binary, string>;
  for (const b of BINARIES) {
    const found = spawnSync('sh', ['-c', `command -v ${b}`], { encoding: 'utf8' }).stdout.trim();
    if (!found) return undefined;
    const [args, want] = expected[b];
    const out = spawnSync(found, args, { encoding: 'utf8', timeout: 10_000 });
    if (!`${out.stdout}${out.stderr}`.includes(want)) return undefined;
    bin[b] = found;
  }
  const dir = cachedFolder(versions);
  return {
    versions,
    bin,
    kwokCrds: path.join(dir, MANIFESTS.kwokCrds),
    kwokStages: path.join(dir, MANIFESTS.kwokStages),
    source: 'PATH',
  };
}

export function goVersion(): string {
  const out = spawnSync('go', ['version'], { encoding: 'utf8', cwd: controlPlaneModule });
  if (out.error || out.status !== 0) {
    throw new TestEnvError(
      'Go is not installed (`go` was not found on PATH), and it is needed once to build etcd, kube-apiserver, ' +
        'kube-controller-manager, kubectl and kwok: install Go 1.26 or newer, or set KUBE_ASSETS to a folder that ' +
        'already holds them (made by `make testenv-assets` on another machine).',
    );
  }
  return out.stdout.trim();
}

/** The -ldflags that give Kubernetes binaries their version (`kube-apiserver --version` prints it). */
export function ldflags(v: Versions): string {
  const [major, minor] = v.kubernetes.slice(1).split('.');
  const kv = [`gitVersion=${v.kubernetes}`, `gitMajor=${major}`, `gitMinor=${minor}`, 'gitTreeState=clean'];
  const pkgs = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'];
  return ['-s', '-w', ...pkgs.flatMap((p) => kv.map((x) => `-X ${p}.${x}`))].join(' ');
}

async function build(dir: string, versions: Versions, log: Log): Promise<void> {
  const go = goVersion();
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(`${dir}.tmp-`);
  fs.chmodSync(tmp, 0o755);
  const logFile = path.join(path.dirname(dir), `build-${path.basename(dir)}.log`);
  log(
    `building the test control plane (Kubernetes ${versions.kubernetes}, etcd ${versions.etcd}, kwok ${versions.kwok}) ` +
      `with ${go.replace(/^go version /, '')} into ${dir}`,
  );
  log(`  the first build takes 10-25 minutes on 2 cores; later runs reuse it. Full log: ${logFile}`);

  const started = Date.now();
  const pkgs = [...BINARIES.map((b) => PACKAGES[b]), './cmd/kwok-assets'];
  try {
    await goBuild({
      moduleDir: controlPlaneModule,
      pkgs,
      outDir: tmp,
      ldflags: ldflags(versions),
      logFile,
      log,
    });
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  // `go build -o dir/` names a binary after the last path element that is not a major version suffix.
  fs.renameSync(path.join(tmp, 'server'), path.join(tmp, 'etcd'));
  const gen = spawnSync(
    path.join(tmp, 'kwok-assets'),
    [path.join(tmp, MANIFESTS.kwokCrds), path.join(tmp, MANIFESTS.kwokStages)],
    { encoding: 'utf8' },
  );
  if (gen.status !== 0) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new TestEnvError(`generating kwok's manifests failed: ${gen.stderr || gen.error?.message}`);
  }
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    // Another run finished the same build first; its result is identical.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!isComplete(dir)) throw new TestEnvError(`could not move the build into ${dir}`, { cause: err });
  }
  log(`  built in ${Math.round((Date.now() - started) / 1000)} s`);
}

export interface GoBuild {
  /** The helper module to build in (its go.mod pins every version). */
  moduleDir: string;
  pkgs: string[];
  /** A folder: each package's binary is written into it under the package's name. */
  outDir: string;
  ldflags?: string;
  /** Extra environment (CGO_ENABLED=0 for a static binary). */
  env?: Record<string, string>;
  logFile: string;
  log: Log;
}

/**
 * `go build` of `pkgs` in `moduleDir` into `outDir`, with a progress line every 30 s and the whole
 * output in `logFile`; a failure throws with the last lines of the output and what to check.
 */
export async function goBuild(b: GoBuild): Promise<void> {
  const started = Date.now();
  const args = [
    'build',
    '-trimpath',
    '-v',
    ...(b.ldflags ? ['-ldflags', b.ldflags] : []),
    '-o',
    b.outDir + path.sep,
  ];
  const out = fs.openSync(b.logFile, 'w');
  let compiled = 0;
  let tail: string[] = [];
  const code = await new Promise<number>((resolve) => {
    const child = spawn('go', [...args, ...b.pkgs], {
      cwd: b.moduleDir,
      env: { ...process.env, ...b.env },
      stdio: ['ignore', out, 'pipe'],
    });
    const stderr = child.stderr!;
    const ticker = setInterval(() => {
      b.log(`  ... ${compiled} packages compiled, ${Math.round((Date.now() - started) / 1000)} s`);
    }, 30_000);
    stderr.setEncoding('utf8');
    stderr.on('data', (chunk: string) => {
      fs.writeSync(out, chunk);
      const lines = chunk.split('\n').filter(Boolean);
      compiled += lines.filter((l) => !l.startsWith('go: ') && !l.includes(' ')).length;
      tail = [...tail, ...lines].slice(-8);
    });
    child.on('error', () => resolve(-1));
    child.on('close', (c) => {
      clearInterval(ticker);
      resolve(c ?? -1);
    });
  });
  fs.closeSync(out);
  if (code !== 0) {
    throw new TestEnvError(
      `go build in ${b.moduleDir} failed (exit ${code}); its last lines were:\n  ` +
        tail.join('\n  ') +
        `\nRead ${b.logFile}, fix the cause (reach to the Go module proxy, disk space, Go version) and run again.`,
    );
  }
}
