// `make demo`: the operator end to end on a laptop with only Node and Go. Starts the test control plane
// (tools/testenv) in its own state folder, a kuard-like web server behind pod demo/kuard, the operator as
// `node dist/main.js`, applies examples/kuard.yaml, waits for Ready, then prints `kubectl get pf`, a curl
// command with its answer, and how to use kubectl on it. Runs until Ctrl-C (or, with DEMO_ONESHOT=1,
// exits after the curl) and then stops everything it started, also after a failure.
//
// Environment: PFO_DEMO_DIR moves the state folder (default .testenv-demo/ in the repository), so the
// demo never touches the test suites' .testenv/; DEMO_ONESHOT=1 for CI and tests.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
// Plain YAML, as the file has it: client-node's loadAllYaml (2.x) deserializes each document into
// a model class and throws on an empty one.
import { loadAll } from 'js-yaml';
import type { PortForward } from '../../src/api/v1alpha1';
import { statusCode } from '../../src/kube/client';
import { TestCluster } from '../testenv/cluster';
import { down, up } from '../testenv/controlplane';
import { getPortForward } from '../testenv/portforward';
import { TestEnvError } from '../testenv/errors';
import { operatorNodeFlags, repoRoot } from '../testenv/paths';
import { freePort, httpGet, lastLines } from '../testenv/procs';
import { poll } from '../testenv/wait';
import { DemoServer, startDemoServer } from './kuard';
import { stopProcessesUsing } from './processes';

const EXAMPLE = path.join(repoRoot, 'examples', 'kuard.yaml');
const TTL_EXAMPLE = path.join(repoRoot, 'examples', 'kuard-ttl.yaml');
const POD_PORT = 8080;

/** A failure with a message for people; a TestEnvError, so poll() stops at once on it. */
class DemoError extends TestEnvError {
  override readonly name = 'DemoError';
}

/** A path as a person at the repository root would type it. */
function shown(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p;
}

const say = (line = ''): void => console.log(line);

class Demo {
  private readonly lockFile: string;
  private server: DemoServer | undefined;
  private operator: ChildProcess | undefined;
  private operatorExit: Promise<number | null> | undefined;
  private operatorLog = '';
  private stopRequested: ((why: string) => void) | undefined;
  private readonly stopped: Promise<string>;
  private interrupts = 0;

  constructor(
    private readonly dir: string,
    private readonly oneshot: boolean,
  ) {
    this.lockFile = `${dir}.lock`;
    this.stopped = new Promise((resolve) => (this.stopRequested = resolve));
  }

  /** Ctrl-C: the first one stops the demo; a third one gives up on cleaning up. */
  interrupt(signal: string): void {
    this.interrupts++;
    if (this.interrupts === 1) {
      say(`\n${signal}: stopping the demo and cleaning up ...`);
      this.stopRequested?.(signal);
    } else if (this.interrupts === 2) {
      say(
        'still cleaning up; press Ctrl-C once more to leave now (the next `make demo` removes what is left)',
      );
    } else {
      process.exit(130);
    }
  }

  get interrupted(): boolean {
    return this.interrupts > 0;
  }

  async run(): Promise<void> {
    await this.sweepLeftovers();
    const dirShown = shown(this.dir);

    say(
      `portforward-operator demo: state in ${dirShown}/, Ctrl-C stops it and removes everything it started`,
    );
    say();
    say('[1/5] Test control plane: etcd, kube-apiserver, kube-controller-manager and kwok (the kubelet)');
    const { state } = await up((line) => say(`      ${line.trim()}`));
    this.checkInterrupt();
    const cluster = TestCluster.connect();
    const kubeconfig = shown(state.kubeconfig);
    const kubectlBin = shown(path.join(this.dir, 'bin', 'kubectl'));

    const pf = readExample();
    const ns = pf.metadata.namespace;
    const podName = pf.spec.target.pod ?? 'kuard';
    say();
    say(`[2/5] Demo web server (kuard-like) behind pod ${ns}/${podName}, container port ${POD_PORT}`);
    this.server = await startDemoServer({ pod: `${ns}/${podName}`, podPort: POD_PORT });
    await createNamespace(cluster, ns);
    await cluster.createPod(ns, podName, [{ port: POD_PORT, name: 'http', targetPort: this.server.port }], {
      app: podName,
    });
    say(
      `      pod ${ns}/${podName} is Running and Ready on node kwok-node-0; kwok sends its port ${POD_PORT} to`,
    );
    say(`      the demo server on 127.0.0.1:${this.server.port}`);
    this.checkInterrupt();

    say();
    say('[3/5] The operator');
    const metricsPort = await freePort();
    await this.startOperator(state.kubeconfig, ns, metricsPort);
    this.checkInterrupt();

    say();
    say(`[4/5] $ kubectl apply -f ${shown(EXAMPLE)}`);
    const t0 = Date.now();
    const applied = cluster.kubectl(['apply', '-f', EXAMPLE]);
    if (applied.code !== 0) throw new DemoError(`kubectl apply failed: ${applied.stderr.trim()}`);
    say(indent(applied.stdout));

    say();
    say(`[5/5] Waiting for PortForward ${ns}/${pf.metadata.name} to be Ready`);
    const ready = await this.waitReady(cluster, ns, pf.metadata.name);
    const ep = ready.status!.endpoints![0];
    say(
      `      Ready ${((Date.now() - t0) / 1000).toFixed(1)} s after the apply: ${ready.status?.message ?? ''}`,
    );

    say();
    say(`$ kubectl get pf -n ${ns}`);
    const table = cluster.kubectl(['get', 'pf', '-n', ns]);
    say((table.code === 0 ? table.stdout : table.stderr).trimEnd());

    const url = `http://${ep.address}:${ep.localPort}/`;
    say();
    say(`$ curl ${url}`);
    say((await fetchWithCurl(url)) ?? (await fetchWithNode(url)));

    const name = pf.metadata.name;
    say('Try it from another terminal, in this folder:');
    say(`  ${kubectlBin} --kubeconfig ${kubeconfig} get pf -n ${ns} -w`);
    say(`  export KUBECONFIG=$PWD/${kubeconfig} PATH=$PWD/${path.dirname(kubectlBin)}:$PATH`);
    say(
      commented([
        [`kubectl describe pf ${name} -n ${ns}`, 'status, conditions and Events'],
        [
          `kubectl patch pf ${name} -n ${ns} --type=merge -p '{"spec":{"suspend":true}}'`,
          'closes the port; false re-opens it',
        ],
        [`kubectl apply -f ${shown(TTL_EXAMPLE)}`, 'a second forward, Expired after 2 minutes'],
        [`curl -s http://127.0.0.1:${metricsPort}/metrics | grep ^portforward_`, "the operator's metrics"],
      ]),
    );
    say(`  the operator's log: ${shown(this.operatorLog)}`);
    say();

    if (this.oneshot) {
      say('DEMO_ONESHOT=1: cleaning up');
      return;
    }
    say('The demo runs until you press Ctrl-C; then it stops everything and removes its state.');
    await Promise.race([
      this.stopped,
      this.operatorExit!.then((code) => {
        throw new DemoError(
          `the operator exited with code ${String(code)}; the last lines of its log:\n    ${lastLines(this.operatorLog, 15)}`,
        );
      }),
    ]);
  }

  private checkInterrupt(): void {
    if (this.interrupted) throw new DemoError('interrupted');
  }

  /** One demo per state folder: a second one would fight over the same control plane. */
  claimFolder(): void {
    try {
      const pid = Number(fs.readFileSync(this.lockFile, 'utf8').trim());
      if (pid && pid !== process.pid && isDemo(pid)) {
        throw new DemoError(
          `another demo (pid ${pid}) uses ${shown(this.dir)}/: stop it with Ctrl-C in its terminal, ` +
            'or set PFO_DEMO_DIR to another folder to run a second one',
        );
      }
    } catch (err) {
      if (err instanceof DemoError) throw err;
    }
    fs.writeFileSync(this.lockFile, `${process.pid}\n`);
  }

  /** What a demo that was killed (kill -9, a closed laptop) left running. */
  private async sweepLeftovers(): Promise<void> {
    if (!fs.existsSync(this.dir)) return;
    say(`removing what an earlier demo left in ${shown(this.dir)}/`);
    await stopProcessesUsing(this.dir);
    await down(() => undefined);
  }

  private async startOperator(kubeconfig: string, ns: string, metricsPort: number): Promise<void> {
    const healthPort = await freePort();
    this.operatorLog = path.join(this.dir, 'logs', 'operator.log');
    const args = [
      `--kubeconfig=${kubeconfig}`,
      `--namespace=${ns}`,
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      `--health-probe-bind-address=127.0.0.1:${healthPort}`,
      '--log-format=text',
      '--status-interval=1s',
      '--shutdown-grace-period=2s', // Ctrl-C should not wait 30 s for a client left open
    ];
    const main = path.join(repoRoot, 'dist', 'main.js');
    if (!fs.existsSync(main)) throw new DemoError(`${shown(main)} is missing: run \`make build\` first`);
    const flags = operatorNodeFlags();
    say(
      `      $ node ${[...flags, shown(main)].join(' ')} ${args.map((a) => a.replace(kubeconfig, shown(kubeconfig))).join(' ')}`,
    );
    const out = fs.openSync(this.operatorLog, 'a');
    // Its own process group: Ctrl-C reaches the demo only, which stops the operator first, in order.
    const child = spawn(process.execPath, [...flags, main, ...args], {
      detached: true,
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    this.operator = child;
    this.operatorExit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    let exited: number | null | undefined;
    void this.operatorExit.then((c) => (exited = c));
    await poll('the operator to be ready (/readyz)', 30_000, async () => {
      if (exited !== undefined) {
        throw new TestEnvError(
          `the operator exited with code ${String(exited)}:\n    ${lastLines(this.operatorLog, 15)}`,
        );
      }
      return (await httpGet(`http://127.0.0.1:${healthPort}/readyz`)).status === 200;
    });
    say(`      ready (pid ${child.pid}); metrics on http://127.0.0.1:${metricsPort}/metrics`);
  }

  private async waitReady(cluster: TestCluster, ns: string, name: string): Promise<PortForward> {
    let last: PortForward | undefined;
    try {
      await poll(`PortForward ${ns}/${name} to be Ready`, 60_000, async () => {
        this.checkInterrupt();
        last = await getPortForward(cluster, ns, name);
        return last.status?.phase === 'Ready' && !!last.status.endpoints?.length;
      });
    } catch (err) {
      if (this.interrupted) throw err;
      throw new DemoError(
        `${(err as Error).message}\n  last status: ${JSON.stringify(last?.status ?? null)}\n` +
          `  the operator's log says:\n    ${lastLines(this.operatorLog, 15)}`,
        { cause: err },
      );
    }
    return last!;
  }

  /** Stops everything this demo started, whatever state it reached; never throws. */
  async cleanUp(failed: boolean): Promise<void> {
    const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        say(`  could not ${what}: ${(err as Error).message}`);
      }
    };
    if (
      this.operator?.pid !== undefined &&
      this.operator.exitCode === null &&
      this.operator.signalCode === null
    ) {
      await step('stop the operator', async () => {
        const exit = this.operatorExit!;
        process.kill(this.operator!.pid!, 'SIGTERM');
        const code = await Promise.race([exit, sleepMs(10_000).then(() => 'timeout' as const)]);
        if (code === 'timeout') process.kill(this.operator!.pid!, 'SIGKILL');
        say(`  stopped the operator (pid ${this.operator!.pid})`);
      });
    }
    if (this.server) {
      await step('stop the demo server', async () => {
        await this.server!.close();
        say('  stopped the demo web server');
      });
    }
    if (failed && fs.existsSync(path.join(this.dir, 'logs'))) {
      const keep = `${this.dir}-failed`;
      await step('keep the logs', () => {
        fs.rmSync(keep, { recursive: true, force: true });
        fs.mkdirSync(keep, { recursive: true });
        fs.cpSync(path.join(this.dir, 'logs'), path.join(keep, 'logs'), { recursive: true });
        say(`  logs kept in ${shown(keep)}/logs/`);
        return Promise.resolve();
      });
    }
    if (fs.existsSync(this.dir)) {
      await step('stop the control plane', () => down((line) => say(`  ${line}`)));
      await step('stop what is left', async () => {
        const n = await stopProcessesUsing(this.dir);
        if (n > 0) say(`  stopped ${n} more process(es) of ${shown(this.dir)}/`);
      });
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
    fs.rmSync(this.lockFile, { force: true });
    say(
      failed
        ? 'demo failed; everything it started is stopped'
        : 'demo stopped; nothing of it is left running',
    );
  }
}

/** The PortForward of examples/kuard.yaml, which the demo applies as a user would. */
function readExample(): PortForward {
  const docs = loadAll(fs.readFileSync(EXAMPLE, 'utf8')) as PortForward[];
  const pf = docs.find((d) => d?.kind === 'PortForward');
  if (!pf?.metadata?.name || !pf.metadata.namespace) {
    throw new DemoError(`${shown(EXAMPLE)} has no PortForward with a name and a namespace`);
  }
  return pf;
}

async function createNamespace(cluster: TestCluster, ns: string): Promise<void> {
  await cluster.core.createNamespace({ body: { metadata: { name: ns } } }).catch((err: unknown) => {
    if (statusCode(err) !== 409) throw err;
  });
  await poll(`ServiceAccount ${ns}/default`, 60_000, async () => {
    await cluster.core.readNamespacedServiceAccount({ name: 'default', namespace: ns });
    return true;
  });
}

/**
 * The page through the `curl` binary, run exactly as printed; undefined when curl is not installed.
 * Asynchronous: the demo server answering it runs in this process.
 */
function fetchWithCurl(url: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', [url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT') resolve(undefined);
      else reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new DemoError(`curl ${url} failed (exit ${String(code)}): ${lastLine(stderr)}`));
    });
  });
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split(/[\r\n]+/)
      .pop() ?? ''
  );
}

function fetchWithNode(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(`${body}(curl is not installed: fetched with Node's http instead)\n`));
      })
      .on('error', reject);
  });
}

function isDemo(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path.join('demo', 'main.js'));
  } catch {
    return false;
  }
}

/** Commands with their comments lined up, as a person would write them in a shell. */
function commented(lines: [string, string][]): string {
  const width = Math.max(...lines.map(([cmd]) => cmd.length));
  return lines.map(([cmd, note]) => `  ${cmd.padEnd(width)}   # ${note}`).join('\n');
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n');
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

async function main(): Promise<number> {
  const dir = path.resolve(process.env.PFO_DEMO_DIR || path.join(repoRoot, '.testenv-demo'));
  // The test env reads these: the demo's own folder, and free ports (never a port fixed for the suites).
  process.env.TESTENV_DIR = dir;
  delete process.env.TESTENV_APISERVER_PORT;
  const demo = new Demo(dir, process.env.DEMO_ONESHOT === '1');
  try {
    demo.claimFolder();
  } catch (err) {
    console.error(`demo: ${(err as Error).message}`);
    return 1;
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => demo.interrupt(sig));
  // A closed terminal or pipe (EPIPE) must not stop the clean-up half-way.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

  let failed = false;
  try {
    await demo.run();
  } catch (err) {
    if (!demo.interrupted) {
      failed = true;
      const msg = err instanceof TestEnvError ? err.message : String(err);
      console.error(`\ndemo failed: ${msg}`);
      if (!(err instanceof TestEnvError) && err instanceof Error && err.stack) {
        console.error(err.stack);
      }
    }
  }
  await demo.cleanUp(failed);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('demo: unexpected failure:', err);
    process.exit(1);
  },
);
