// The relaying processes the benchmark compares, started the way users run them: the operator
// (`node <main.js>`, one process per transport) and the pinned `kubectl port-forward` with several
// ports at once. Also the process CPU counters of /proc and free local port ranges.
//
// Adapted from test/support/operator.ts and TestCluster.portForward (tools/testenv/cluster.ts): the
// benchmark needs what those do not offer (a start-up that reports a rejected flag instead of
// throwing, the operator's main file chosen at run time, every "Forwarding from" line of kubectl).
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { poll } from '../testenv/wait';
import { operatorNodeFlags, repoRoot } from '../testenv/paths';
import { freePort, httpGet } from '../testenv/procs';

/** The operator entry point: BENCH_OPERATOR, else build/src/main.js (compiled with the benchmark). */
export function operatorMain(): string {
  return path.resolve(process.env.BENCH_OPERATOR || path.join(repoRoot, 'build', 'src', 'main.js'));
}

export interface OperatorProcess {
  child: ChildProcess;
  pid: number;
  logFile: string;
  healthPort: number;
  portRange: PortRange;
  exitCode(): number | null | undefined;
  alive(): boolean;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
}

export type OperatorStart =
  | { ok: true; op: OperatorProcess }
  /** Exited during start-up; code 2 is the operator's answer to a bad flag. */
  | { ok: false; code: number | null; firstLine: string; logFile: string };

export interface PortRange {
  min: number;
  max: number;
}

let counter = 0;

/**
 * Operators started and not yet exited: killed when the benchmark exits, so that one started while an
 * interrupt was being handled (its clean-up step not yet registered) is not left running.
 */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export async function startOperator(opts: {
  kubeconfig: string;
  namespaces: string[];
  portRange: PortRange;
  logDir: string;
  extraArgs?: string[];
  label?: string;
  timeoutMs?: number;
  /** Serve /metrics on this loopback port (default: no metrics endpoint). */
  metricsPort?: number;
}): Promise<OperatorStart> {
  const healthPort = await freePort();
  const logFile = path.join(opts.logDir, `${opts.label ?? 'operator'}-${process.pid}-${counter++}.log`);
  fs.mkdirSync(opts.logDir, { recursive: true });
  const out = fs.openSync(logFile, 'a');
  const args = [
    operatorMain(),
    `--kubeconfig=${opts.kubeconfig}`,
    ...opts.namespaces.map((n) => `--namespace=${n}`),
    `--port-range=${opts.portRange.min}-${opts.portRange.max}`,
    `--metrics-bind-address=${opts.metricsPort ? `127.0.0.1:${opts.metricsPort}` : '0'}`,
    `--health-probe-bind-address=127.0.0.1:${healthPort}`,
    '--log-format=json',
    '--log-level=info',
    '--status-interval=5s',
    ...(opts.extraArgs ?? []),
    // An A/B of a flag on every operator the benchmark starts (BENCH_OPERATOR_ARGS="--workers=16").
    ...(process.env.BENCH_OPERATOR_ARGS ?? '').split(/\s+/).filter(Boolean),
  ];
  // The transport is the benchmark's to choose: --transport, never a PFO_TRANSPORT left in the shell.
  const env = { ...process.env };
  delete env.PFO_TRANSPORT;
  const child = spawn(process.execPath, [...operatorNodeFlags(), ...args], {
    stdio: ['ignore', out, out],
    env,
  });
  fs.closeSync(out);
  running.add(child);
  let code: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (c) => {
      code = c; // null after a signal
      running.delete(child);
      resolve();
    }),
  );
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    if (code === undefined) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const op: OperatorProcess = {
    child,
    pid: child.pid!,
    logFile,
    healthPort,
    portRange: opts.portRange,
    exitCode: () => code,
    alive: () => code === undefined,
    stop: async () => {
      if (code === undefined) child.kill('SIGCONT'); // a paused relay (pause()) acts only once running
      await stopWith('SIGTERM');
    },
    kill: () => stopWith('SIGKILL'),
  };
  try {
    await poll('the operator to be ready', opts.timeoutMs ?? 30_000, async () => {
      if (!op.alive()) return true;
      return (await httpGet(`http://127.0.0.1:${healthPort}/readyz`)).status === 200;
    });
  } catch (err) {
    await op.kill();
    throw new Error(`${(err as Error).message}; the operator's log: ${logFile}`, { cause: err });
  }
  if (!op.alive()) {
    await exited;
    const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    return { ok: false, code: code ?? null, firstLine: text.trim().split('\n')[0] ?? '', logFile };
  }
  return { ok: true, op };
}

/** The last lines of a log file, for a failure message. */
export function tail(file: string, lines = 5): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n    ');
  } catch {
    return '(no log)';
  }
}

export interface KubectlRelay {
  pid: number;
  /** Remote (pod) port -> local port. */
  localPorts: Map<number, number>;
  alive(): boolean;
  /** The last few KiB kubectl printed on stderr. */
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * `kubectl port-forward -n ns pod/name :p1 :p2 ...` with default settings, until every port is bound.
 * Its output goes to a file, as the operator's does: no pipe to the benchmark is read while it relays
 * (kubectl prints a line per connection).
 */
export async function startKubectl(opts: {
  kubectl: string;
  kubeconfig: string;
  namespace: string;
  pod: string;
  ports: number[];
  logDir: string;
  label?: string;
  timeoutMs?: number;
}): Promise<KubectlRelay> {
  fs.mkdirSync(opts.logDir, { recursive: true });
  const logFile = path.join(opts.logDir, `${opts.label ?? 'kubectl'}-${process.pid}-${counter++}.log`);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(
    opts.kubectl,
    [
      '--kubeconfig',
      opts.kubeconfig,
      'port-forward',
      '-n',
      opts.namespace,
      `pod/${opts.pod}`,
      ...opts.ports.map((p) => `:${p}`),
    ],
    { stdio: ['ignore', out, out] },
  );
  fs.closeSync(out);
  const localPorts = new Map<number, number>();
  let code: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (c) => {
      code = c;
      resolve();
    }),
  );
  const relay: KubectlRelay = {
    pid: child.pid!,
    localPorts,
    alive: () => code === undefined,
    stderr: () => tail(logFile),
    stop: async () => {
      if (code === undefined) {
        child.kill('SIGTERM');
        child.kill('SIGCONT'); // a paused relay (pause()) acts on the SIGTERM only once running
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  try {
    await poll(
      'kubectl port-forward to print "Forwarding from" for every port',
      opts.timeoutMs ?? 20_000,
      () => {
        if (code !== undefined)
          throw new Error(`kubectl port-forward exited with ${String(code)}: ${tail(logFile)}`);
        const text = fs.readFileSync(logFile, 'utf8');
        for (const m of text.matchAll(/Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)/g)) {
          localPorts.set(Number(m[2]), Number(m[1]));
        }
        return Promise.resolve(localPorts.size === opts.ports.length);
      },
    );
  } catch (err) {
    await relay.stop();
    throw err;
  }
  return relay;
}

/**
 * Stops (SIGSTOP) or continues (SIGCONT) a relaying process: while one system is measured the others
 * do nothing at all (no status writes, no PINGs of idle sessions, no timers), so they cannot take CPU
 * from it or from the control plane it shares.
 */
export function pause(pid: number, paused: boolean): void {
  try {
    process.kill(pid, paused ? 'SIGSTOP' : 'SIGCONT');
  } catch {
    // gone: the system's dead() reports it
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * `size` consecutive local ports that are all free now, below the kernel's ephemeral range and outside
 * the ranges the test suites and the operator's default use (30000-49999, 20000-29999).
 */
export async function freePortRange(size: number): Promise<PortRange> {
  const [lo, hi] = [10_000, 19_999];
  for (let attempt = 0; attempt < 50; attempt++) {
    const min = lo + Math.floor(Math.random() * Math.max(1, hi - lo - size));
    const ports = Array.from({ length: size }, (_, i) => min + i);
    let ok = true;
    for (let i = 0; i < ports.length && ok; i += 100) {
      ok = (await Promise.all(ports.slice(i, i + 100).map(portFree))).every(Boolean);
    }
    if (ok) return { min, max: min + size - 1 };
  }
  throw new Error(`no ${size} consecutive free ports between ${lo} and ${hi}`);
}
