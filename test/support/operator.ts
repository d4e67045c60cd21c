// The operator as a child process (`node dist/main.js`), as users run it: started against the test
// control plane, waited on through its readiness endpoint, stopped with a signal.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestEnvError } from '../../tools/testenv/errors';
import { operatorNodeFlags, repoRoot, stateDir } from '../../tools/testenv/paths';
import { freePort, httpGet } from '../../tools/testenv/procs';
import { poll } from './wait';

export interface OperatorProcess {
  child: ChildProcess;
  logFile: string;
  healthPort: number;
  portRange: { min: number; max: number };
  exited: Promise<number | null>;
  alive(): boolean;
  logs(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
}

let counter = 0;

/**
 * A port range of 50 that nothing else in this run uses: within 30000-32767, below the kernel's
 * ephemeral ports (Linux: 32768-60999), which outgoing connections take at random, so that a port
 * recorded in status is still free when a restarted operator or a standby binds it again; apart from
 * the operator's default --port-range (20000-29999, `make demo`) and from the benchmarks' ports
 * (10000-19999, tools/bench/relays.ts).
 */
export function freshPortRange(): { min: number; max: number } {
  const base = 30000 + ((process.pid * 7 + counter++ * 50) % 2700);
  return { min: base, max: base + 49 };
}

export async function startOperator(opts: {
  kubeconfig: string;
  namespaces: string[];
  portRange?: { min: number; max: number };
  extraArgs?: string[];
  /** Wait for /readyz (default); false waits for /healthz only (a standby is never ready). */
  ready?: boolean;
  /** The process's environment (default: this one's). */
  env?: NodeJS.ProcessEnv;
}): Promise<OperatorProcess> {
  const healthPort = await freePort();
  const portRange = opts.portRange ?? freshPortRange();
  const logFile = path.join(stateDir(), 'logs', `operator-${process.pid}-${counter++}.log`);
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const out = fs.openSync(logFile, 'a');
  const extra = opts.extraArgs ?? [];
  const overridden = (arg: string): boolean => extra.some((e) => e.split('=')[0] === arg.split('=')[0]);
  const args = [
    path.join(repoRoot, 'dist', 'main.js'),
    `--kubeconfig=${opts.kubeconfig}`,
    ...opts.namespaces.map((n) => `--namespace=${n}`),
    `--port-range=${portRange.min}-${portRange.max}`,
    '--metrics-bind-address=0',
    `--health-probe-bind-address=127.0.0.1:${healthPort}`,
    '--log-format=json',
    '--log-level=debug',
    '--status-interval=1s',
  ].filter((a) => !overridden(a));
  args.push(...extra);
  const child = spawn(process.execPath, [...operatorNodeFlags(), ...args], {
    stdio: ['ignore', out, out],
    env: opts.env ?? process.env,
  });
  fs.closeSync(out);
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (c) => {
      code = c;
      resolve(c);
    }),
  );
  const op: OperatorProcess = {
    child,
    logFile,
    healthPort,
    portRange,
    exited,
    alive: () => code === undefined,
    logs: () => fs.readFileSync(logFile, 'utf8'),
    stop: async () => {
      if (code === undefined) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (code === undefined) child.kill('SIGKILL');
      await exited;
    },
  };
  await poll(`the operator to be ${opts.ready === false ? 'up' : 'ready'}`, 20_000, async () => {
    if (!op.alive()) throw new TestEnvError(`the operator exited with ${String(code)}:\n${op.logs()}`);
    const res = await httpGet(
      `http://127.0.0.1:${healthPort}/${opts.ready === false ? 'healthz' : 'readyz'}`,
    );
    return res.status === 200;
  });
  return op;
}
