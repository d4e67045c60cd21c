// The state file of a test control plane, `<state>/state.json`: what `up` started (pids, start times,
// command lines, readiness URLs), read by the tests, by `down` and by the restarts of components.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Assets } from './assets';
import { stateDir } from './paths';
import type { ProcessRef } from './procs';

/** A process of the control plane as `state.json` records it (components.ts restarts it from this). */
export interface ProcessRecord extends ProcessRef {
  name: string;
  logFile: string;
  /** Its arguments: a restart runs the same command line (same ports, same data). */
  args?: string[];
  /** A URL that answers 200 once it is ready (with the admin token when `auth`). */
  ready?: { url: string; auth?: boolean };
}

/** What `up` leaves in `<state>/state.json`; tests and `down` read it. */
export interface TestEnvState {
  apiVersion: 'testenv.portforward.dev/v1';
  server: string;
  kubeconfig: string;
  webhookSecretFile: string;
  kubectl: string;
  versions: Assets['versions'];
  processes: ProcessRecord[];
}

export function statePath(dir = stateDir()): string {
  return path.join(dir, 'state.json');
}

export function readState(dir = stateDir()): TestEnvState | undefined {
  try {
    return JSON.parse(fs.readFileSync(statePath(dir), 'utf8')) as TestEnvState;
  } catch {
    return undefined;
  }
}

/** Writes state.json whole or not at all (a reader never sees half a file). */
export function writeState(state: TestEnvState, dir = stateDir()): void {
  const tmp = `${statePath(dir)}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2));
  fs.renameSync(tmp, statePath(dir));
}

/** The static admin token (system:masters) of the control plane in `dir`. */
export function adminToken(dir = stateDir()): string {
  return fs.readFileSync(path.join(dir, 'pki', 'admin-token'), 'utf8').trim();
}
