// Reliability: slow and stuck peers. A target that accepts and never reads, and one that stops
// answering mid-transfer: the operator cuts neither client (a slow target is not a dead one), and
// other forwards, and other ports of the same pod, go on unaffected. A fast pod and a slow client:
// the operator's memory stays bounded (backpressure), and every byte arrives.
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { TestCluster } from '../../tools/testenv/cluster';
import { freePort } from '../../tools/testenv/procs';
import {
  EchoServer,
  SourceServer,
  StallableServer,
  startEchoServer,
  startSilentServer,
  startSourceServer,
  startStallableEchoServer,
} from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';
import { describeReport, LongTransfer, SteadyTraffic } from '../support/traffic';
import { waitFor } from '../support/wait';
import { assertAlive, figure, footprint, mib, sampleBuffered, sampleRss, size } from './support';

const PER_SECOND = 8;
/** How long a stuck peer is watched: three times the SPDY session's PING timeout (5 s). */
const OBSERVE_MS = 15_000;

describe('reliability: stalled targets and slow clients', function () {
  this.timeout(size(300_000, 180_000));
  let cluster: TestCluster;
  let ns: string;
  let op: OperatorProcess;
  let silent: EchoServer;
  let stallable: StallableServer;
  let echo: EchoServer;
  let source: SourceServer;
  const ports: Record<string, number> = {};
  let metricsPort: number;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('rel-stall');
    silent = await startSilentServer();
    stallable = await startStallableEchoServer();
    echo = await startEchoServer();
    source = await startSourceServer(size(256, 64) * 1024 * 1024);
    await cluster.createPod(ns, 'stuck', [
      { port: 8080, targetPort: silent.port },
      { port: 9090, targetPort: stallable.port },
      { port: 7070, targetPort: source.port },
    ]);
    await cluster.createPod(ns, 'fine', [{ port: 8080, targetPort: echo.port }]);
    metricsPort = await freePort();
    op = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      extraArgs: ['--log-level=info', `--metrics-bind-address=127.0.0.1:${metricsPort}`],
    });
    const forwards: [string, string, number][] = [
      ['silent', 'stuck', 8080],
      ['stallable', 'stuck', 9090],
      ['source', 'stuck', 7070],
      ['fine', 'fine', 8080],
    ];
    for (const [name, pod, port] of forwards)
      await applyPortForward(cluster, ns, name, { target: { pod }, ports: [{ port }] });
    for (const [name] of forwards) {
      const pf = await waitForStatus(cluster, ns, name, 'Ready', (p) => p.status?.phase === 'Ready', 20_000);
      ports[name] = pf.status!.endpoints![0].localPort;
    }
  });

  after(async function () {
    await op?.stop();
    for (const s of [silent, stallable, echo, source]) await s?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  afterEach(function () {
    assertAlive(op);
  });

  it('keeps clients of a target that never reads connected, and other forwards and ports unaffected', async function () {
    const fine = new SteadyTraffic({ port: ports.fine, perSecond: PER_SECOND }).start();
    const samePod = new SteadyTraffic({ port: ports.stallable, perSecond: PER_SECOND / 2 }).start();
    const before = footprint(op.child.pid!).rssBytes;
    const rss = sampleRss(op.child.pid!);
    const buffered = sampleBuffered(metricsPort, ns, 'silent');
    const chunk = crypto.randomBytes(64 * 1024);
    const stuck = [0, 1].map(() => {
      const s = net.connect(ports.silent, '127.0.0.1');
      const state = { error: undefined as string | undefined, closed: false, accepted: 0 };
      s.on('error', (err) => (state.error = err.message));
      s.on('close', () => (state.closed = true));
      // Write as fast as the path takes it, up to 64 MiB: it stops taking once every buffer is full.
      const pump = (): void => {
        while (state.accepted < 64 * 1024 * 1024 && !s.destroyed) {
          const ok = s.write(chunk, (err) => {
            if (!err) state.accepted += chunk.length;
          });
          if (!ok) return void s.once('drain', pump);
        }
      };
      s.on('connect', pump);
      return { s, state };
    });
    await new Promise((r) => setTimeout(r, OBSERVE_MS)); // the observation window
    for (const { state } of stuck) {
      assert.equal(state.error, undefined, 'the stuck connection got no error');
      assert.equal(state.closed, false, 'the operator did not cut it');
    }
    const maxRss = rss.stop();
    const maxBuffered = await buffered.stop();
    const [rf, rs] = [await fine.stop(), await samePod.stop()];
    for (const { s } of stuck) s.destroy();
    figure(
      `2 clients of a target that never reads, watched ${OBSERVE_MS / 1000} s: both still connected ` +
        `(${stuck.map(({ state }) => mib(state.accepted)).join(' and ')} taken before the path filled); ` +
        `the relay held at most ${mib(maxBuffered)} for them; operator RSS ${mib(before)} before, at most ${mib(maxRss)} during`,
    );
    figure(describeReport('meanwhile, another forward', rf));
    figure(describeReport('meanwhile, another port of the stuck pod', rs));
    assert.equal(rf.corrupted + rs.corrupted, 0);
    assert.deepEqual(rf.reasons, {}, 'the other forward lost no connection');
    assert.deepEqual(rs.reasons, {}, 'the other port of the stuck pod lost no connection');
    assert.ok(maxBuffered < 8 * 1024 * 1024, `the relay held ${mib(maxBuffered)} for two stuck connections`);
  });

  it('keeps a transfer whose target stops answering, and it resumes intact when the target does', async function () {
    const fine = new SteadyTraffic({ port: ports.fine, perSecond: PER_SECOND }).start();
    const t = LongTransfer.start(ports.stallable);
    const flowing = (more: number): Promise<void> => {
      const mark = t.received;
      return waitFor(
        'the transfer to move',
        () => {
          if (t.received >= mark + more) return true;
          assert.ok(t.alive, `the transfer ended: ${t.error ?? 'closed'}`);
          return false;
        },
        15_000,
        50,
      );
    };
    await flowing(64 * 1024);
    stallable.stall();
    const sentAtStall = t.sent;
    await new Promise((r) => setTimeout(r, OBSERVE_MS)); // the target does not answer for this long
    assert.ok(t.alive, `the transfer was not cut while its target did not answer: ${t.error ?? 'closed'}`);
    const duringStall = t.sent - sentAtStall;
    stallable.resume();
    await flowing(64 * 1024);
    await t.finish();
    const rf = await fine.stop();
    assert.equal(t.error, undefined);
    assert.equal(t.received, t.sent, 'every byte came back, in order');
    figure(
      `a target that stopped answering for ${OBSERVE_MS / 1000} s: the transfer stayed open and finished intact ` +
        `(${mib(t.received)} echoed; the ${(duringStall / 1024).toFixed(0)} KiB written while it hung came back after it resumed)`,
    );
    figure(describeReport('meanwhile, another forward', rf));
    assert.deepEqual(rf.reasons, {}, 'the other forward lost no connection');
  });

  it("bounds the operator's memory with a fast pod and a slow client, and delivers every byte", async function () {
    const pid = op.child.pid!;
    const before = footprint(pid).rssBytes;
    const rss = sampleRss(pid);
    const buffered = sampleBuffered(metricsPort, ns, 'source');
    const perTick = 1024 * 1024; // read at most 1 MiB per 100 ms: 10 MiB/s
    const t0 = Date.now();
    const got = await new Promise<{ bytes: number; digest: string }>((resolve, reject) => {
      const hash = crypto.createHash('sha256');
      let bytes = 0;
      let quota = perTick;
      const s = net.connect(ports.source, '127.0.0.1');
      const tick = setInterval(() => {
        quota = perTick;
        s.resume();
      }, 100);
      const done = (): void => {
        clearInterval(tick);
        s.destroy();
        resolve({ bytes, digest: hash.digest('hex') });
      };
      s.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
        quota -= c.length;
        if (quota <= 0) s.pause();
        // Not 'end': kwok passes the pod's close on only once the client closed too (ADR 4).
        if (bytes >= source.bytes) done();
      });
      s.on('error', (err) => {
        clearInterval(tick);
        reject(err);
      });
      s.on('close', () => {
        if (bytes < source.bytes) reject(new Error(`closed after ${bytes} of ${source.bytes} bytes`));
      });
    });
    const max = rss.stop();
    const maxBuffered = await buffered.stop();
    const secs = (Date.now() - t0) / 1000;
    figure(
      `a pod writing ${mib(source.bytes)} as fast as it can to a client reading 10 MiB/s: ${mib(got.bytes)} in ${secs.toFixed(0)} s, ` +
        `sha256 equal; the relay held at most ${mib(maxBuffered)}; operator RSS ${mib(before)} before, at most ${mib(max)} during (+${mib(max - before)})`,
    );
    assert.ok(maxBuffered < 8 * 1024 * 1024, `the relay held ${mib(maxBuffered)}`);
    assert.equal(got.bytes, source.bytes);
    assert.equal(got.digest, source.digest, 'every byte, in order');
    assert.ok(
      max - before < 96 * 1024 * 1024,
      `RSS grew by ${mib(max - before)} for a ${mib(source.bytes)} transfer`,
    );
  });
});
