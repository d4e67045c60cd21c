// Where the test control plane keeps things: the repository's pins, the binary cache outside the
// repository, and the per-checkout state folder `.testenv/`.
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
