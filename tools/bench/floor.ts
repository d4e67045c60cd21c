// How fast any relay through kube-apiserver can connect (issue 21): connect -> first byte of a greeting
// server behind a kwok pod, through one `kubectl port-forward` process, through the operator, and
// through a SPDY session held in this process (no relay, no client socket: a stream pair opened and
// its first byte read), with a PING round trip on that session and direct TCP beside them. The
// in-process figure is the floor of the path: what kube-apiserver and the node spend on a new forward
// after its stream pair left, which kubectl and the operator both pay.
//
// Rounds of N sequential connects each, the systems in an order rotated per round; prints each
// measure's median of the rounds' p50s (min-max), and the ratios against kubectl paired within rounds.
//
// Usage (a test control plane up, `make testenv-up`): node build/tools/bench/floor.js [N] [ROUNDS]
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestCluster } from '../testenv/cluster';
import { applyPortForward, waitForStatus } from '../testenv/portforward';
import { kubeAccess } from '../../src/relay/access';
import { dialSpdy } from '../../src/relay/spdy/dial';
import { openPortForward } from '../../src/relay/spdy/portforward';
import type { SpdySession } from '../../src/relay/spdy/spdy-session';
import { freePortRange, startKubectl, startOperator } from './relays';
import { runCheck } from './cli';
import { fmt, median, percentile } from './stats';

/** ms until `start()` resolves. */
async function timedMs(start: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await start();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** A connect gets its first byte within this, or the run fails. */
const TIMEOUT_MS = 10_000;

/** connect() on a local port -> the first byte read. */
function viaPort(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (err?: Error): void => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () => done(new Error(`no first byte on port ${port} within ${TIMEOUT_MS} ms`)),
      TIMEOUT_MS,
    );
    s.once('data', () => done());
    s.once('error', done);
    s.once('close', () => done(new Error(`port ${port} closed before its first byte`)));
  });
}

/** A stream pair on `session` to `port` -> its first byte. */
function viaSession(session: SpdySession, port: number, id: number): Promise<void> {
  const c = openPortForward(session, port, id);
  let timer: NodeJS.Timeout | undefined;
  return new Promise<void>((resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no first byte on the stream within ${TIMEOUT_MS} ms`)),
      TIMEOUT_MS,
    );
    c.data.once('data', () => resolve());
    c.data.once('error', reject);
    c.data.once('close', () => reject(new Error('the stream closed before its first byte')));
  }).finally(() => {
    clearTimeout(timer);
    c.close();
  });
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 200);
  const rounds = Number(process.argv[3] ?? 5);
  const cluster = TestCluster.connect();
  // As the relay bench's greeting server (targets.ts): writes at once, ends when the client does.
  const greeting = net.createServer((s) => {
    s.on('error', () => undefined);
    s.setNoDelay(true);
    s.write('hello\n');
    s.resume();
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => greeting.listen(0, '127.0.0.1', r));
  const target = (greeting.address() as net.AddressInfo).port;
  const ns = await cluster.createNamespace('floor');
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'floor-'));
  const stops: (() => Promise<unknown>)[] = [];
  try {
    await cluster.createPod(ns, 'greeting', [{ port: 8080, targetPort: target }]);
    const started = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      portRange: await freePortRange(10),
      logDir,
      label: 'floor',
    });
    if (!started.ok) throw new Error(`the operator exited: ${started.firstLine}`);
    const op = started.op;
    stops.push(() => op.stop());
    await applyPortForward(cluster, ns, 'greeting', { target: { pod: 'greeting' }, ports: [{ port: 8080 }] });
    const pf = await waitForStatus(
      cluster,
      ns,
      'greeting',
      'Ready',
      (p) => p.status?.phase === 'Ready',
      30_000,
    );
    const opPort = pf.status!.endpoints![0].localPort;
    const kubectl = await startKubectl({
      kubectl: cluster.state.kubectl,
      kubeconfig: cluster.state.kubeconfig,
      namespace: ns,
      pod: 'greeting',
      ports: [8080],
      logDir,
    });
    stops.push(() => kubectl.stop());
    const kcPort = kubectl.localPorts.get(8080)!;
    const access = kubeAccess(cluster.kc);
    const session = await dialSpdy(
      { namespace: ns, pod: 'greeting' },
      { server: access.server, applyOptions: (o) => access.applyToHTTPSOptions(o) },
    );
    stops.push(() => Promise.resolve(session.destroy()));

    let requestId = 0;
    const systems: Record<string, () => Promise<number>> = {
      kubectl: () => timedMs(() => viaPort(kcPort)),
      operator: () => timedMs(() => viaPort(opPort)),
      'SPDY session in this process': () => timedMs(() => viaSession(session, 8080, requestId++)),
      'PING round trip on that session': () => session.ping(),
      'direct TCP': () => timedMs(() => viaPort(target)),
    };
    const names = Object.keys(systems);
    for (const name of names) for (let i = 0; i < 5; i++) await systems[name](); // warm-up
    const p50s: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
    const p90s: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
    for (let r = 0; r < rounds; r++) {
      const order = names.map((_, i) => names[(i + r) % names.length]);
      for (const name of order) {
        const ms: number[] = [];
        for (let i = 0; i < n; i++) ms.push(await systems[name]());
        p50s[name].push(percentile(ms, 50));
        p90s[name].push(percentile(ms, 90));
      }
    }
    const cell = (xs: number[]): string =>
      `${fmt(median(xs), 2)} (${fmt(Math.min(...xs), 2)}-${fmt(Math.max(...xs), 2)})`;
    console.log(`\nconnect -> first byte on kwok, ${rounds} rounds of ${n} sequential connects\n`);
    console.log('| measure | p50, ms | p90, ms | p50 against kubectl (paired per round) |');
    console.log('|---|--:|--:|--:|');
    for (const name of names) {
      const ratios = p50s[name].map((x, i) => x / p50s.kubectl[i]);
      console.log(`| ${name} | ${cell(p50s[name])} | ${cell(p90s[name])} | ${cell(ratios)}x |`);
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    greeting.close();
    await cluster.deleteNamespace(ns);
  }
}

runCheck(main);
