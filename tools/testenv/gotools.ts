// Go programs the ecosystem tests run, built from the Go module proxy into the binary cache the way the
// control plane is (assets.ts): Helm 4 (the chart tests) and a small kstatus program (GitOps health as
// Flux computes it). Each comes from a helper module under hack/ whose go.mod and go.sum pin it; the
// cache folder is keyed on those files, so a new pin builds again and nothing else does.
//
//   node build/tools/testenv/gotools.js [helm|kstatus ...]   builds what is missing, prints the paths
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestEnvError } from './errors';
import { cacheDir, repoRoot } from './paths';

export interface GoTool {
  /** The helper module under hack/. */
  module: string;
  /** The package to build, in that module's build list. */
  pkg: string;
  /** Files of the module that decide the build (the cache key). */
  inputs: string[];
  /** `-ldflags` for the build (version stamps). */
  ldflags: (module: string) => string;
}

export const GO_TOOLS = {
  helm: {
    module: 'hack/helm',
    pkg: 'helm.sh/helm/v4/cmd/helm',
    inputs: ['go.mod', 'go.sum', 'tools.go'],
    // `helm version` reports the pinned release instead of the source's placeholder.
    ldflags: (m) => `-s -w -X helm.sh/helm/v4/internal/version.version=${required(m, 'helm.sh/helm/v4')}`,
  },
  kstatus: {
    module: 'hack/kstatus',
    pkg: '.',
    inputs: ['go.mod', 'go.sum', 'main.go'],
    ldflags: () => '-s -w',
  },
} satisfies Record<string, GoTool>;

export type GoToolName = keyof typeof GO_TOOLS;

/** The version a helper module's go.mod requires of a module. */
export function required(moduleDir: string, mod: string): string {
  const text = fs.readFileSync(path.join(repoRoot, moduleDir, 'go.mod'), 'utf8');
  const m = new RegExp(`^\\s*(?:require\\s+)?${mod.replace(/\./g, '\\.')}\\s+(v\\S+)`, 'm').exec(text);
  if (!m) throw new TestEnvError(`${moduleDir}/go.mod does not require ${mod}; restore the file from git.`);
  return m[1];
}

/** Where a tool is cached: bin/<name>-<hash of its module's inputs>/<name>. */
export function goToolPath(name: GoToolName): string {
  const tool: GoTool = GO_TOOLS[name];
  const hash = crypto.createHash('sha256');
  for (const f of tool.inputs) hash.update(fs.readFileSync(path.join(repoRoot, tool.module, f)));
  return path.join(cacheDir(), 'bin', `${name}-${hash.digest('hex').slice(0, 10)}`, name);
}

/**
 * The path of the tool, built first when the cache lacks it. A build takes minutes on two cores (Helm
 * compiles much of client-go); `make test-go-tools` runs it before the suites so no test timeout pays
 * for it.
 */
export function ensureGoTool(name: GoToolName, log: (line: string) => void = console.log): string {
  const bin = goToolPath(name);
  if (fs.existsSync(bin)) return bin;
  const tool: GoTool = GO_TOOLS[name];
  const moduleDir = path.join(repoRoot, tool.module);
  const dir = path.dirname(bin);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(`${dir}.tmp-`);
  const started = Date.now();
  log(`building ${name} from ${tool.module} (Go module proxy) into ${dir}; the first build takes minutes`);
  const out = spawnSync(
    'go',
    ['build', '-trimpath', '-ldflags', tool.ldflags(tool.module), '-o', path.join(tmp, name), tool.pkg],
    { cwd: moduleDir, encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'] },
  );
  if (out.error || out.status !== 0) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new TestEnvError(
      out.error
        ? `building ${name} needs Go (go was not found on PATH): install Go 1.26 or newer`
        : `building ${name} failed (go build exit ${out.status}):\n${out.stderr.trim().split('\n').slice(-10).join('\n')}`,
    );
  }
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    // Another run finished the same build first; its result is identical.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(bin))
      throw new TestEnvError(`could not move the ${name} build into ${dir}`, { cause: err });
  }
  log(`  ${name} built in ${Math.round((Date.now() - started) / 1000)} s`);
  return bin;
}

if (require.main === module) {
  const names = process.argv.slice(2);
  try {
    for (const n of names.length > 0 ? names : Object.keys(GO_TOOLS)) {
      if (!(n in GO_TOOLS))
        throw new TestEnvError(`unknown tool ${n}: one of ${Object.keys(GO_TOOLS).join(', ')}`);
      console.log(`${n}: ${ensureGoTool(n as GoToolName)}`);
    }
  } catch (err) {
    console.error(err instanceof TestEnvError ? err.message : err);
    process.exit(1);
  }
}
