// Where the test control plane keeps things: the repository's pins, the binary cache outside the
// repository, and the per-checkout state folder `.testenv/`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root (this file is compiled to build/tools/testenv/paths.js). */
export const repoRoot = path.resolve(__dirname, '..', '..', '..');

/** The Go helper module whose go.mod pins every control-plane version (one file, one truth). */
export const controlPlaneModule = path.join(repoRoot, 'hack', 'controlplane');

/** Binary cache outside the repository; PFO_CACHE_DIR overrides it. */
export function cacheDir(): string {
  if (process.env.PFO_CACHE_DIR) return path.resolve(process.env.PFO_CACHE_DIR);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'portforward-operator');
}

/** The state folder of a running test control plane; TESTENV_DIR overrides it. */
export function stateDir(): string {
  return path.resolve(process.env.TESTENV_DIR || path.join(repoRoot, '.testenv'));
}

/**
 * The Node.js flags the image starts the operator with: what stands between `node` and `dist/main.js`
 * in the Dockerfile's ENTRYPOINT. Tests, benchmarks and the demo start it with the same flags, so that
 * what they measure is what runs in a cluster.
 */
export function operatorNodeFlags(): string[] {
  const dockerfile = fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
  const line = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
  const argv = line ? (JSON.parse(line) as string[]) : [];
  if (argv[0] !== 'node' || argv.at(-1) !== 'dist/main.js') {
    throw new Error(
      `the Dockerfile's ENTRYPOINT is not ["node", ...flags, "dist/main.js"]: ${line ?? 'none'}`,
    );
  }
  return argv.slice(1, -1);
}
