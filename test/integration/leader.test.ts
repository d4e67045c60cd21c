// LeaderElector against the real kube-apiserver: coordination.k8s.io/v1 Leases with real optimistic
// concurrency (409 on a stale write). Short timings (3 s lease, 2 s renew deadline, 0.5 s retry) keep
// the suite quick; one case runs the defaults. Both candidates' isLeader() is sampled every 10 ms
// throughout, and no sample may show two leaders.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { LeaderElector, LeaderElectorOptions } from '../../src/kube/leader';
import { TestCluster } from '../../tools/testenv/cluster';
import { repoRoot } from '../../tools/testenv/paths';
import { poll } from '../support/wait';

const FAST = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };

/** Samples the candidates every 10 ms until stopped; `violations` lists the moments two led at once. */
function sampleLeaders(electors: LeaderElector[]): { stop(): string[] } {
  const violations: string[] = [];
  const t0 = Date.now();
  const timer = setInterval(() => {
    const leaders = electors.filter((e) => e.isLeader()).map((e) => e.identity);
    if (leaders.length > 1) violations.push(`${Date.now() - t0} ms: ${leaders.join(' and ')}`);
  }, 10);
  return {
    stop: () => {
      clearInterval(timer);
      return violations;
    },
  };
}

/** A candidate in its own process, so it can be SIGKILLed; resolves once it leads. */
async function leaderProcess(
  kubeconfig: string,
  namespace: string,
  name: string,
  identity: string,
): Promise<{ kill(): Promise<void> }> {
  const script = `
    const k8s = require('@kubernetes/client-node');
    const { LeaderElector } = require(process.argv[1]);
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(process.argv[2]);
    const e = new LeaderElector({
      kubeConfig: kc, namespace: process.argv[3], name: process.argv[4], identity: process.argv[5],
      ...JSON.parse(process.argv[6]),
      onStartedLeading: () => console.log('leading'),
    });
    void e.run();
  `;
  const child = spawn(
    process.execPath,
    [
      '-e',
      script,
      path.join(repoRoot, 'build', 'src', 'kube', 'leader.js'),
      kubeconfig,
      namespace,
      name,
      identity,
      JSON.stringify(FAST),
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  await poll(`the candidate process ${identity} to lead`, 15_000, () => {
    if (child.exitCode !== null) throw new Error(`the candidate process exited: ${out}`);
    return Promise.resolve(out.includes('leading'));
  });
  return {
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('LeaderElector on the real API server', function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  let coordination: k8s.CoordinationV1Api;
  let ns: string;
  const running: LeaderElector[] = [];

  before(async function () {
    cluster = TestCluster.connect();
    coordination = cluster.kc.makeApiClient(k8s.CoordinationV1Api);
    ns = await cluster.createNamespace('leader');
  });

  afterEach(async function () {
    await Promise.all(running.splice(0).map((e) => e.stop()));
  });

  after(async function () {
    if (ns) await cluster.deleteNamespace(ns);
  });

  function candidate(
    lease: string,
    identity: string,
    extra: Partial<LeaderElectorOptions> = {},
  ): LeaderElector {
    const e = new LeaderElector({
      kubeConfig: cluster.kc,
      namespace: ns,
      name: lease,
      identity,
      ...FAST,
      ...extra,
    });
    running.push(e);
    void e.run();
    return e;
  }

  const leaseName = (): string => `lease-${crypto.randomBytes(3).toString('hex')}`;
  const readLease = async (name: string): Promise<k8s.V1Lease> =>
    await coordination.readNamespacedLease({ name, namespace: ns });
  const until = (what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> =>
    poll(what, timeoutMs, () => Promise.resolve(check()));

  it('lets exactly one of two candidates lead, keeps renewing, and names the leader in the Lease', async function () {
    const name = leaseName();
    const [a, b] = [candidate(name, 'a'), candidate(name, 'b')];
    const sampler = sampleLeaders([a, b]);
    await until('a leader', () => a.isLeader() || b.isLeader());
    const leader = a.isLeader() ? a : b;
    const standby = leader === a ? b : a;
    const first = await readLease(name);
    // Longer than a lease duration: the leader must renew to keep it.
    await new Promise((r) => setTimeout(r, 4000));
    assert.deepEqual(sampler.stop(), [], 'never two leaders');
    assert.equal(leader.isLeader(), true);
    assert.equal(standby.isLeader(), false);
    assert.equal(standby.leader(), leader.identity, 'the standby sees who leads');
    const later = await readLease(name);
    assert.equal(later.spec?.holderIdentity, leader.identity);
    assert.equal(later.spec?.leaseDurationSeconds, 3);
    assert.equal(later.spec?.leaseTransitions, 0);
    assert.notEqual(String(later.spec?.renewTime), String(first.spec?.renewTime), 'renewed');
    assert.equal(String(later.spec?.acquireTime), String(first.spec?.acquireTime), 'acquired once');
  });

  it('hands over within a retry period when the leader stops and releases the Lease', async function () {
    const name = leaseName();
    const a = candidate(name, 'a');
    await until('a to lead', () => a.isLeader());
    const b = candidate(name, 'b');
    await until('b to see a', () => b.leader() === 'a');
    const sampler = sampleLeaders([a, b]);
    const t0 = Date.now();
    await a.stop({ release: true });
    await until('b to lead', () => b.isLeader());
    const took = Date.now() - t0;
    assert.deepEqual(sampler.stop(), [], 'never two leaders');
    assert.ok(took < 1500, `b led ${took} ms after a stopped (retry period 500 ms, lease 3000 ms)`);
    const lease = await readLease(name);
    assert.equal(lease.spec?.holderIdentity, 'b');
    assert.equal(lease.spec?.leaseTransitions, 1);
  });

  it('takes over from a SIGKILLed leader after the lease duration, not before', async function () {
    const name = leaseName();
    const killed = await leaderProcess(cluster.state.kubeconfig, ns, name, 'doomed');
    const b = candidate(name, 'b');
    await until('b to see the leader', () => b.leader() === 'doomed');
    await new Promise((r) => setTimeout(r, 1000)); // b has watched a few renewals
    const t0 = Date.now();
    await killed.kill();
    await until('b to lead', () => b.isLeader());
    const took = Date.now() - t0;
    // The last renewal came at most one retry period (0.5 s) before the kill.
    assert.ok(took >= 3000 - 500 - 100, `b waited out the lease (${took} ms)`);
    assert.ok(took <= 3000 + 600 + 1000, `and took over promptly after it (${took} ms)`);
    assert.equal((await readLease(name)).spec?.holderIdentity, 'b');
  });

  it('steps down at its next renewal when another holder overwrote the Lease', async function () {
    const name = leaseName();
    const a = candidate(name, 'a');
    await until('a to lead', () => a.isLeader());
    const lease = await readLease(name);
    lease.spec = { ...lease.spec, holderIdentity: 'usurper' };
    await coordination.replaceNamespacedLease({ name, namespace: ns, body: lease });
    const t0 = Date.now();
    await until('a to step down', () => !a.isLeader(), 5000);
    assert.ok(Date.now() - t0 < 1500, `at the next renewal, ${Date.now() - t0} ms`);
    assert.equal(a.leader(), 'usurper');
  });

  it('hands over within a retry period (2 s) on release with the default timings (15 s lease, 10 s deadline, 2 s retry)', async function () {
    const name = leaseName();
    const defaults = { leaseDurationMs: undefined, renewDeadlineMs: undefined, retryPeriodMs: undefined };
    const a = candidate(name, 'a', defaults);
    await until('a to lead', () => a.isLeader());
    const b = candidate(name, 'b', defaults);
    await until('b to see a', () => b.leader() === 'a');
    assert.equal((await readLease(name)).spec?.leaseDurationSeconds, 15);
    const t0 = Date.now();
    await a.stop({ release: true });
    await until('b to lead', () => b.isLeader());
    assert.ok(Date.now() - t0 < 3500, `${Date.now() - t0} ms (retry period 2 s, lease 15 s)`);
  });
});
