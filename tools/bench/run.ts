// `make bench`: benchmark programs on the real test control plane. Each prints a markdown table; the
// relay's compares the operator (one process per transport) with the pinned `kubectl port-forward` and
// direct TCP measured in the same run, and reports medians of several runs with their spread, since
// the machines are noisy. Nothing here asserts a time.
//
//   node build/tools/bench/run.js [relay] [controller] [scale] [limits] [sessions] [remote]
//                                (default: relay, controller, scale and remote; limits and sessions run
//                                when named)
//
// Environment (defaults in brackets):
//   BENCH_RUNS [5]              rounds of every relay measure; each cell is their median and spread
//   BENCH_REPS [5]              repetitions of the relay's pull and push within a round, interleaved across
//                               the systems (the order rotates per repetition); a round's figure is their median
//   BENCH_MANY_REPS [3]         the same for the connects and the concurrent echoes (figures over many
//                               connections already, and the longest steps)
//   BENCH_TRANSPORTS [spdy,spdy-websocket,websocket]   one operator per entry, started with --transport=X;
//                               when the operator rejects the flag (exit 2), one operator without it
//   BENCH_STREAM_MIB [256]      size of the pull (pod -> client) and the push (client -> pod)
//   BENCH_CONNECTS [200]        sequential connections of the connect -> first byte measure
//   BENCH_ECHO_MIB [4]          size of each concurrent echo
//   BENCH_CONCURRENCY [64,256]  concurrent echoes, one measure per entry
//   BENCH_VERIFY [bytes]        how received bytes are checked: byte for byte, or sha256 digests (payload.ts)
//   BENCH_SCALE_N [1000]        PortForwards of the scale part, to N/10 kwok pods, all five target kinds
//   BENCH_SCALE_NAMESPACES [N/100, 1..100]  namespaces they are spread over
//   BENCH_SCALE_FLOWSCHEMA [1]  0: the scale part runs without deploy/flowcontrol.yaml (the A/B of APF)
//   BENCH_OPERATOR_ARGS         flags added to every operator the benchmark starts (an A/B of a flag)
//   BENCH_SESSIONS_N [1000]     pods (one idle SPDY session each) of the sessions part; BENCH_KUBECTLS [20]
//                               kubectl port-forward processes it compares with
//                               (the limits part: the relay's buffer limits, each pair on a relay worker
//                               of its own, with the same stream size and the first BENCH_CONCURRENCY)
//   BENCH_OPERATOR [build/src/main.js]  the operator's entry point
//   BENCH_OUT [build/bench-results.md]  the report, header and tables, to paste into docs/benchmarks.md
//   TESTENV_DIR [.testenv]      the test control plane's state: reused when one runs there, else started
//                               and stopped again at the end (REAL_NODE=1: with a real node, where the
//                               relay's target pod then runs: `make bench-node`)
//
// The target servers and the load client run in two child processes (targets.ts, client.ts), so that
// this process's API calls and timers never share an event loop with the bytes being measured.
// Operator logs go to bench-logs/ beside BENCH_OUT.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestCluster } from '../testenv/cluster';
import { down, runningState, up } from '../testenv/controlplane';
import { REAL_NODE_NAME } from '../testenv/node';
import { repoRoot } from '../testenv/paths';
import { raiseOpenFileLimit } from '../testenv/procs';
import { startLoadClient, startTargets } from './children';
import { controllerBench } from './controller';
import { limitsBench } from './limits';
import { relayBench } from './relay';
import { remoteBench } from './remote';
import { operatorMain } from './relays';
import { scaleBench } from './scale';
import { sessionCostBench } from './sessions';
import { header } from './sysinfo';
import type { Verify } from './payload';

const PARTS = ['relay', 'controller', 'scale', 'limits', 'sessions', 'remote'] as const;
/** What runs when no part is named. */
const DEFAULT_PARTS: readonly Part[] = ['relay', 'controller', 'scale', 'remote'];
type Part = (typeof PARTS)[number];
const MiB = 1024 * 1024;

class UsageError extends Error {}

function positive(name: string, fallback: number, integer = true): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(
      `${name}=${raw}: give a positive ${integer ? 'integer' : 'number'} (default ${fallback})`,
    );
  }
  return n;
}

function flag(name: string, fallback: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === '1' || raw === '0') return raw === '1';
  throw new UsageError(`${name}=${raw}: give 1 or 0 (default ${fallback ? 1 : 0})`);
}

function list(name: string, fallback: string): string[] {
  const items = (process.env[name] || fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0)
    throw new UsageError(`${name} is empty: give a comma-separated list (default ${fallback})`);
  return items;
}

function settings() {
  const transports = list('BENCH_TRANSPORTS', 'spdy,spdy-websocket,websocket');
  for (const t of transports) {
    if (!/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(t)) {
      throw new UsageError(
        `BENCH_TRANSPORTS: "${t}" is not a transport name (auto, spdy, spdy-websocket, websocket)`,
      );
    }
  }
  const concurrencies = list('BENCH_CONCURRENCY', '64,256').map((c) => {
    const n = Number(c);
    if (!Number.isInteger(n) || n <= 0)
      throw new UsageError(`BENCH_CONCURRENCY: "${c}" is not a positive integer`);
    return n;
  });
  const given = process.env.BENCH_VERIFY || 'bytes';
  if (given !== 'bytes' && given !== 'sha256')
    throw new UsageError(`BENCH_VERIFY=${given}: give bytes or sha256`);
  const verify: Verify = given;
  const out = path.resolve(process.env.BENCH_OUT || path.join(repoRoot, 'build', 'bench-results.md'));
  return {
    runs: positive('BENCH_RUNS', 5),
    reps: positive('BENCH_REPS', 5),
    manyReps: positive('BENCH_MANY_REPS', 3),
    transports,
    streamBytes: Math.round(positive('BENCH_STREAM_MIB', 256, false) * MiB),
    connects: positive('BENCH_CONNECTS', 200),
    echoBytes: Math.round(positive('BENCH_ECHO_MIB', 4, false) * MiB),
    concurrencies,
    verify,
    scaleN: positive('BENCH_SCALE_N', 1000),
    scaleNamespaces: process.env.BENCH_SCALE_NAMESPACES ? positive('BENCH_SCALE_NAMESPACES', 10) : undefined,
    scaleFlowSchema: flag('BENCH_SCALE_FLOWSCHEMA', true),
    sessionsN: positive('BENCH_SESSIONS_N', 1000),
    kubectls: positive('BENCH_KUBECTLS', 20),
    out,
    logDir: path.join(path.dirname(out), 'bench-logs'),
  };
}

/** Clean-up steps, run in reverse order of registration; a failing step never skips the others. */
class Scope {
  private steps: { what: string; fn: () => Promise<unknown> }[] = [];
  private closing: Promise<void> | undefined;
  defer = (what: string, fn: () => Promise<unknown>): void => {
    this.steps.push({ what, fn });
  };
  /** Runs the steps once; a second caller (a signal during the normal clean-up) waits for the same run. */
  close(): Promise<void> {
    this.closing ??= this.drain();
    return this.closing;
  }
  private async drain(): Promise<void> {
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      const { what } = step;
      await step
        .fn()
        .catch((err: unknown) => progress(`clean-up of ${what} failed: ${(err as Error).message}`));
    }
  }
}

/** Set by SIGINT or SIGTERM: the parts stop at their next step, everything started is stopped. */
let interrupted: NodeJS.Signals | undefined;

function progress(line: string): void {
  console.error(`[bench] ${line}`);
}

async function main(): Promise<number> {
  const wanted = process.argv.slice(2);
  for (const w of wanted) {
    if (!(PARTS as readonly string[]).includes(w))
      throw new UsageError(`unknown part "${w}": give ${PARTS.join(', ')}`);
  }
  const parts: Part[] = wanted.length === 0 ? [...DEFAULT_PARTS] : PARTS.filter((p) => wanted.includes(p));
  const s = settings();
  if (!fs.existsSync(operatorMain())) {
    throw new UsageError(`${operatorMain()} does not exist: build first (make build), or set BENCH_OPERATOR`);
  }
  // The operators and kubectls this process starts inherit its open-file limit: a cluster's, not a
  // shell's (10,000 forwards are 10,000 listening sockets before any session or connection).
  const refused = raiseOpenFileLimit(process.pid);
  if (refused) console.error(`[bench] ${refused}`);
  const global = new Scope();
  let part = new Scope();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = signal;
    progress(`${signal}: stopping everything the benchmark started`);
    void part
      .close()
      .then(() => global.close())
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failed = false;
  try {
    // Registered before up(), so that a signal during start-up stops the half-started processes too.
    if (!(await runningState())) global.defer('test control plane', () => down(() => undefined));
    await up((l) => progress(`testenv: ${l}`));
    const cluster = TestCluster.connect();
    const seed = crypto.randomBytes(32).toString('hex');
    const targets = await startTargets(s.streamBytes, seed);
    global.defer('target servers', () => targets.stop());
    const client = startLoadClient(seed, s.verify);
    global.defer('load client', () => client.stop());

    const real = await cluster.core.readNode({ name: REAL_NODE_NAME }).catch(() => undefined);
    const info = real?.status?.nodeInfo;
    const report: string[] = [
      header({
        kubectl: cluster.state.kubectl,
        kubernetes: cluster.state.versions.kubernetes,
        kwok: cluster.state.versions.kwok,
        operatorMain: operatorMain(),
        settings: [
          `runs: ${s.runs} (BENCH_RUNS) of ${s.reps} repetitions (BENCH_REPS; connects and echoes ` +
            `${s.manyReps}, BENCH_MANY_REPS); parts: ${parts.join(', ')}`,
          ...(info
            ? [
                `real node ${REAL_NODE_NAME}: kubelet ${info.kubeletVersion}, ${info.containerRuntimeVersion}, ` +
                  `kernel ${info.kernelVersion} (the relay's target pod runs there)`,
              ]
            : []),
          ...(parts.includes('relay')
            ? [
                `relay: transports ${s.transports.join(', ')}; streams ${s.streamBytes / MiB} MiB; ` +
                  `${s.connects} connects; echoes ${s.concurrencies.join(' and ')} x ${s.echoBytes / MiB} MiB; ` +
                  `received bytes checked ${s.verify === 'bytes' ? 'byte for byte' : 'by sha256'} (BENCH_VERIFY)`,
              ]
            : []),
          ...(parts.includes('scale') ? [`scale: ${s.scaleN} PortForwards`] : []),
        ],
      }),
    ];
    const write = (): void => {
      fs.mkdirSync(path.dirname(s.out), { recursive: true });
      fs.writeFileSync(s.out, `${report.join('\n\n')}\n`);
    };
    console.log(`${report[0]}\n`);
    write();
    for (const p of parts) {
      if (interrupted) break;
      part = new Scope();
      const common = {
        cluster,
        targets,
        defer: part.defer,
        logDir: s.logDir,
        progress,
        aborted: () => interrupted !== undefined,
      };
      let table: string;
      try {
        progress(`${p}: starting`);
        if (p === 'relay') {
          table = await relayBench({
            ...common,
            client,
            seed,
            runs: s.runs,
            reps: s.reps,
            manyReps: s.manyReps,
            transports: s.transports,
            streamBytes: s.streamBytes,
            connects: s.connects,
            echoBytes: s.echoBytes,
            concurrencies: s.concurrencies,
          });
        } else if (p === 'limits') {
          table = await limitsBench({
            ...common,
            client,
            runs: s.runs,
            streamBytes: s.streamBytes,
            echoBytes: s.echoBytes,
            concurrency: s.concurrencies[0],
          });
        } else if (p === 'sessions') {
          table = await sessionCostBench({ ...common, n: s.sessionsN, kubectls: s.kubectls });
        } else if (p === 'remote') {
          table = await remoteBench({
            ...common,
            client,
            runs: s.runs,
            streamBytes: s.streamBytes,
            connects: s.connects,
          });
        } else if (p === 'controller') {
          table = await controllerBench({ ...common, runs: s.runs });
        } else {
          table = await scaleBench({
            ...common,
            n: s.scaleN,
            namespaces: s.scaleNamespaces,
            flowSchema: s.scaleFlowSchema,
          });
        }
      } catch (err) {
        if (interrupted) break;
        failed = true;
        table = `**${p}: failed**\n\n\`\`\`\n${(err as Error).stack ?? String(err)}\n\`\`\``;
      } finally {
        await part.close();
      }
      console.log(`${table}\n`);
      report.push(table);
      write();
    }
    if (!interrupted) progress(`report written to ${s.out}`);
  } finally {
    await part.close();
    await global.close();
  }
  return failed ? 1 : 0;
}

// After a signal, the signal's clean-up decides when to exit.
main().then(
  (code) => interrupted ?? process.exit(code),
  (err: unknown) => {
    if (interrupted) return;
    console.error(
      err instanceof UsageError
        ? `bench: ${err.message}`
        : `bench failed: ${(err as Error).stack ?? String(err)}`,
    );
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
