// The idle-session policy of the SPDY transport (ADR 14) against the real kube-apiserver with kwok as
// the kubelet: a pre-dialed session of a pod nobody used closes after its idle time, the next
// connection dials one and is served, at most maxWarmSessions idle sessions stay open, and no client
// connection is refused because of either.
import * as assert from 'node:assert/strict';
import { createRelayEngine } from '../../src/relay/engine/engine';
import { silentLogger } from '../../src/relay/logger';
import { SpdyTransport } from '../../src/relay/spdy/spdy-transport';
import { dialSpdy } from '../../src/relay/spdy/dial';
import type { RelayEngine } from '../../src/relay/types';
import { TestCluster } from '../../tools/testenv/cluster';
import { echoRoundTrip, EchoServer, randomPayload, sha256, startEchoServer } from '../support/net';
import { poll } from '../support/wait';

const PODS = ['a', 'b', 'c'];

describe('idle pre-dialed SPDY sessions against the real API server and kwok (ADR 14)', function () {
  let cluster: TestCluster;
  let ns: string;
  let echo: EchoServer;
  let transport: SpdyTransport | undefined;
  let engine: RelayEngine | undefined;
  let dials = 0;
  const ports = new Map<string, number>();

  function start(o: { warmIdleMs?: number; maxWarmSessions?: number }): void {
    dials = 0;
    transport = new SpdyTransport({
      name: 'spdy',
      logger: silentLogger,
      pingIntervalMs: 100, // the health tick that checks idleness
      // A warm pod's idle sessions beyond the one it keeps (the session a connection just left, beside
      // the one dialed while it ran) close after this, as without a cap.
      idleTimeoutMs: 1000,
      ...o,
      dial: (pod, signal) => {
        dials++;
        return dialSpdy(
          { namespace: pod.namespace, pod: pod.name },
          {
            server: cluster.kc.getCurrentCluster()!.server,
            applyOptions: (opts) => cluster.kc.applyToHTTPSOptions(opts),
            signal,
          },
        );
      },
    });
    engine = createRelayEngine({ transport });
  }

  async function forwardAll(): Promise<void> {
    for (const pod of PODS) {
      const [state] = await engine!.ensure(`${ns}/${pod}`, {
        listeners: [{ id: 'echo', address: '127.0.0.1', localPort: 0, remotePort: 8080 }],
        targets: [{ namespace: ns, name: pod }],
      });
      assert.equal(state.state, 'bound');
      ports.set(pod, state.localPort);
    }
  }

  /** Open sessions without a connection, per pod. */
  function idleOpen(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of transport!.sessions())
      if (s.open && s.streams === 0 && s.takesNew) out.set(s.pod, (out.get(s.pod) ?? 0) + 1);
    return out;
  }

  const warm = (pod: string): boolean | undefined => engine!.stats(`${ns}/${pod}`)?.warm;

  async function echoThrough(pod: string): Promise<void> {
    const payload = randomPayload(64 * 1024);
    const back = await echoRoundTrip(ports.get(pod)!, payload);
    assert.equal(sha256(back), sha256(payload), `the echo through ${pod} came back whole`);
  }

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('warm');
    echo = await startEchoServer();
    for (const pod of PODS) await cluster.createPod(ns, pod, [{ port: 8080, targetPort: echo.port }]);
  });

  afterEach(async function () {
    await engine?.close();
    await transport?.close();
    engine = transport = undefined;
  });

  after(async function () {
    await echo?.close();
    if (ns) await cluster.deleteNamespace(ns);
  });

  it('closes the session of a pod nobody used for its idle time, and re-dials it for the next connection', async function () {
    start({ warmIdleMs: 300 });
    await forwardAll();
    await poll('a session open for each pod', 15_000, () => Promise.resolve(idleOpen().size === PODS.length));
    assert.equal(warm('a'), true, 'status of the forward: warm');
    await poll('every idle session closed', 15_000, () =>
      Promise.resolve(transport!.sessions().length === 0 && PODS.every((p) => warm(p) === false)),
    );
    const dialsBefore = dials;
    await echoThrough('a'); // the cold connection pays the dial, and is served
    assert.ok(dials > dialsBefore, 'the connection to a cold pod dialed a session');
    await poll('pod a warm again', 15_000, () => Promise.resolve(warm('a') === true));
    assert.equal(engine!.stats(`${ns}/a`)!.failed, 0, 'no connection failed');
    // The other pods were not used: they stay cold, with no session dialed for them.
    assert.ok(
      ![...transport!.sessions()].some((s) => s.pod.startsWith(`${ns}/b`) || s.pod.startsWith(`${ns}/c`)),
    );
  });

  it('keeps at most maxWarmSessions idle sessions, coldest pod first, and refuses no connection', async function () {
    start({ maxWarmSessions: 2 });
    await forwardAll();
    await poll('two idle sessions open', 15_000, () => Promise.resolve(idleOpen().size === 2));
    assert.equal(warm('a'), false, 'the first retained pod is the least recently used: cold');
    assert.deepEqual(
      PODS.map((p) => warm(p)),
      [false, true, true],
    );
    // Each pod in turn, the cold one first: every connection is served, and the cap holds after each.
    for (const pod of ['a', 'b', 'c', 'a']) {
      await echoThrough(pod);
      await poll(`pod ${pod} warm after its connection`, 15_000, () => Promise.resolve(warm(pod) === true));
      await poll('at most two idle sessions', 15_000, () =>
        Promise.resolve([...idleOpen().values()].reduce((a, b) => a + b, 0) <= 2),
      );
    }
    assert.deepEqual(
      PODS.map((p) => engine!.stats(`${ns}/${p}`)!.failed),
      [0, 0, 0],
      'no connection failed for the cap',
    );
    // The last pods used (c, then a) are the warm ones.
    assert.deepEqual(
      PODS.map((p) => warm(p)),
      [true, false, true],
    );
  });
});
