// Fault injection on the test control plane: stop, start and restart one of its components on the
// same command line (same ports, same data folder, same certificates), waiting until it is ready
// again, and recording its new pid in state.json so that `down` stops it. Used by
// `make testenv-restart COMPONENT=...` and by the reliability tests.
import { adminToken, ProcessRecord, readState, TestEnvState, writeState } from './state';
import { TestEnvError } from './errors';
import { stateDir } from './paths';
import { belongsTo, httpGet, startProcess, stopProcess, waitReady } from './procs';

/** The components a test may stop and start; the others have no state a test would care about. */
export const RESTARTABLE = ['kube-apiserver', 'etcd', 'kwok'] as const;
export type Component = (typeof RESTARTABLE)[number] | 'kube-controller-manager' | 'token-webhook';

export interface StopOptions {
  /** SIGKILL at once (a crash) instead of SIGTERM (a clean stop). */
  kill?: boolean;
  dir?: string;
}

function record(name: Component, dir: string): { state: TestEnvState; rec: ProcessRecord } {
  const state = readState(dir);
  if (!state) throw new TestEnvError(`no test control plane in ${dir}: run \`make testenv-up\` first`);
  const rec = state.processes.find((p) => p.name === name);
  if (!rec) {
    const names = state.processes.map((p) => p.name).join(', ');
    throw new TestEnvError(`the test control plane has no component "${name}" (it has ${names})`);
  }
  if (!rec.args) {
    throw new TestEnvError(
      `${dir}/state.json does not record the command line of ${name} (it was started by an older ` +
        'version of the test env): run `make testenv-down` and `make testenv-up`',
    );
  }
  return { state, rec };
}

/** Whether the component runs (its recorded process is alive and of this state folder). */
export function componentRunning(name: Component, dir = stateDir()): boolean {
  const state = readState(dir);
  const rec = state?.processes.find((p) => p.name === name);
  return !!rec && belongsTo(rec, dir);
}

/** Stops the component; its ports and data stay as they are. Resolves once the process is gone. */
export async function stopComponent(name: Component, opts: StopOptions = {}): Promise<void> {
  const dir = opts.dir ?? stateDir();
  const { rec } = record(name, dir);
  if (!belongsTo(rec, dir)) return;
  await stopProcess(rec, opts.kill ? 0 : 10_000);
}

/**
 * Starts the component again on its recorded command line and waits until it answers its readiness
 * URL (90 s at most); records the new pid. A component that is running is left alone.
 */
export async function startComponent(name: Component, opts: { dir?: string } = {}): Promise<void> {
  const dir = opts.dir ?? stateDir();
  const { rec } = record(name, dir);
  if (belongsTo(rec, dir)) return;
  const p = startProcess(name, rec.command, rec.args!, rec.logFile);
  // Recorded at once, so that `down` finds it even if the readiness wait below fails.
  const latest = readState(dir)!;
  writeState(
    {
      ...latest,
      processes: latest.processes.map((q) =>
        q.name === name ? { ...q, pid: p.pid, startTicks: p.startTicks } : q,
      ),
    },
    dir,
  );
  const ready = rec.ready;
  if (!ready) return;
  const token = ready.auth ? adminToken(dir) : undefined;
  await waitReady(p, 'ready again', 90_000, async () => (await httpGet(ready.url, token)).status === 200);
}

/**
 * Stops the component, keeps it down for `downMs` (the fault being injected; 0 by default), starts it
 * again and waits until it is ready. Returns when it went down and when it was ready again.
 */
export async function restartComponent(
  name: Component,
  opts: StopOptions & { downMs?: number } = {},
): Promise<{ stoppedAt: number; readyAt: number }> {
  const t0 = Date.now();
  await stopComponent(name, opts);
  if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
  await startComponent(name, { dir: opts.dir });
  return { stoppedAt: t0, readyAt: Date.now() };
}

const ALL: readonly string[] = [...RESTARTABLE, 'kube-controller-manager', 'token-webhook'];

export function isComponent(name: string | undefined): name is Component {
  return name !== undefined && ALL.includes(name);
}
