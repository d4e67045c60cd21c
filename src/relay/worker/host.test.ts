// The relay on its worker thread, through the RelayEngine interface, against the project's fake
// spdystream server: calls and their errors cross the thread, events carry their counters, credentials
// are read on the main thread for each dial, and a worker that dies is replaced with its sessions
// reported lost.
import * as assert from 'node:assert/strict';
import type * as https from 'node:https';
import type { Worker } from 'node:worker_threads';
import { connect, readAll, startTcpServer, TcpServer } from '../../../test/support/net';
import { waitFor } from '../../../test/support/wait';
import { RelaySpecError } from '../errors';
import type { RelayLogger } from '../logger';
import { FakeSpdyServer, startFakeSpdyServer } from '../testing/fake-spdy-server';
import type { RelayEvent, SessionSpec } from '../types';
import { RelayWorker, startRelayWorker } from './host';

const ECHO = 8080;
const KEY = 'demo/pf';

describe('relay worker thread (host.ts)', function () {
  let echo: TcpServer;
  let fake: FakeSpdyServer;
  let relay: RelayWorker | undefined;
  let credentialReads = 0;
  let token: string | undefined;
  const lines: { level: string; message: string }[] = [];
  const logger: RelayLogger = {
    debug: (message) => lines.push({ level: 'debug', message }),
    info: (message) => lines.push({ level: 'info', message }),
    warn: (message) => lines.push({ level: 'warn', message }),
    error: (message) => lines.push({ level: 'error', message }),
  };

  const spec: SessionSpec = {
    listeners: [{ id: 'echo', address: '127.0.0.1', localPort: 0, remotePort: ECHO }],
    targets: [{ namespace: 'demo', name: 'web' }],
  };

  function start(o: { logLevel?: 'debug' | 'info' } = {}): Promise<RelayWorker> {
    return startRelayWorker({
      transport: 'spdy',
      access: {
        server: fake.url,
        applyToHTTPSOptions: (opts: https.RequestOptions) => {
          credentialReads++;
          return fake.applyOptions(token)(opts);
        },
      },
      logger,
      logLevel: o.logLevel,
      statsIntervalMs: 100,
      restartDelayMs: 10,
    });
  }

  async function echoOnce(port: number, text: string): Promise<string> {
    const s = await connect(port);
    s.end(text);
    return (await readAll(s)).data.toString();
  }

  before(async function () {
    echo = await startTcpServer((s) => s.pipe(s));
    fake = await startFakeSpdyServer({ portMap: (_pod, port) => (port === ECHO ? echo.port : undefined) });
  });
  beforeEach(function () {
    credentialReads = 0;
    token = undefined;
    lines.length = 0;
  });
  afterEach(async function () {
    await relay?.close();
    relay = undefined;
  });
  after(async function () {
    await fake.close();
    await echo.close();
  });

  it('binds, relays and reports through the thread: states, events with counters, keys, stop', async function () {
    relay = await start();
    const events: RelayEvent[] = [];
    relay.onEvent((e) => events.push(e));
    const [state] = await relay.ensure(KEY, spec);
    assert.equal(state.state, 'bound');
    assert.deepEqual(relay.keys(), [KEY]);
    assert.equal(await echoOnce(state.localPort, 'hello over the thread'), 'hello over the thread');
    await waitFor('the connection to be reported closed', () =>
      events.some((e) => e.type === 'connectionClosed'),
    );
    assert.ok(events.some((e) => e.type === 'tunnelOpened' && e.transport === 'spdy'));
    const stats = relay.stats(KEY);
    assert.equal(stats?.total, 1);
    assert.equal(stats?.active, 0, 'the close event carried the counters after it');
    assert.equal(stats?.bytesSent, 'hello over the thread'.length);
    assert.ok(credentialReads >= 1, 'credentials were read on the main thread');
    // bufferedBytes comes with the periodic counters only (it walks every connection); an event's
    // counters keep the last one.
    await waitFor('the periodic counters', () => relay!.stats(KEY)?.bufferedBytes !== undefined);
    const atEvents: (number | undefined)[] = [];
    relay.onEvent(() => atEvents.push(relay!.stats(KEY)?.bufferedBytes)); // the event's own counters
    assert.equal(await echoOnce(state.localPort, 'again'), 'again');
    await waitFor('the second connection to be reported closed', () => relay!.stats(KEY)?.total === 2);
    await waitFor('its events', () => atEvents.length >= 2);
    assert.deepEqual(atEvents.slice(0, 2), [0, 0], "an event's counters dropped bufferedBytes");
    await relay.stop(KEY);
    assert.deepEqual(relay.keys(), []);
    assert.equal(relay.stats(KEY), undefined);
  });

  it('reads credentials for every dial, and reports a refused one as the tunnel error', async function () {
    relay = await start();
    token = 'wrong';
    const events: RelayEvent[] = [];
    relay.onEvent((e) => events.push(e));
    const [state] = await relay.ensure(KEY, spec);
    const s = await connect(state.localPort);
    s.end('x');
    await readAll(s);
    await waitFor('the tunnel error', () => events.some((e) => e.type === 'tunnelError'));
    const err = events.find((e) => e.type === 'tunnelError');
    assert.ok(err?.type === 'tunnelError' && /401/.test(err.message), JSON.stringify(err));
    assert.equal(relay.stats(KEY)?.failed, 1);
    const before = credentialReads;
    token = undefined; // the kubeconfig's credentials were fixed: the next dial reads them
    assert.equal(await echoOnce(state.localPort, 'fixed'), 'fixed');
    assert.ok(credentialReads > before, 'the dial after the fix read the credentials again');
  });

  it('rejects a bad spec with the RelaySpecError the engine threw', async function () {
    relay = await start();
    const bad: SessionSpec = { ...spec, listeners: [spec.listeners[0], spec.listeners[0]] };
    await assert.rejects(relay.ensure(KEY, bad), (err: unknown) => {
      assert.ok(err instanceof RelaySpecError, String(err));
      assert.match((err as Error).message, /appears twice/);
      return true;
    });
  });

  it('passes log lines at or above its level only', async function () {
    relay = await start({ logLevel: 'info' });
    await relay.ensure(KEY, spec);
    await echoOnce((await relay.ensure(KEY, spec))[0].localPort, 'x');
    assert.ok(!lines.some((l) => l.level === 'debug'), JSON.stringify(lines));
    await relay.close();
    relay = await start({ logLevel: 'debug' });
    const [state] = await relay.ensure(KEY, spec);
    await echoOnce(state.localPort, 'x');
    await waitFor('a debug line from the worker', () => lines.some((l) => l.level === 'debug'));
  });

  it('replaces a worker that died, reports its sessions lost, and serves them again once ensured', async function () {
    relay = await start();
    const events: RelayEvent[] = [];
    relay.onEvent((e) => events.push(e));
    const [before] = await relay.ensure(KEY, spec);
    assert.equal(await echoOnce(before.localPort, 'once'), 'once');
    await waitFor('the first connection counted, and closed', () => {
      const st = relay?.stats(KEY);
      return st?.total === 1 && st.active === 0;
    });
    // A crash, as a bug or an out-of-memory would end it (the test reaches the private worker).
    await (relay as unknown as { worker: Worker }).worker.terminate();
    await waitFor('the lost session', () => events.some((e) => e.type === 'sessionLost' && e.key === KEY));
    assert.ok(lines.some((l) => l.level === 'error' && /relay worker stopped/.test(l.message)));
    assert.deepEqual(relay.keys(), [], 'no session is reported that the new worker does not hold');
    assert.equal(relay.stats(KEY)?.total, 1, 'the counters of the lost session are kept');
    assert.equal(relay.stats(KEY)?.active, 0);
    await relay.ready();
    const [after] = await relay.ensure(KEY, {
      ...spec,
      listeners: [{ ...spec.listeners[0], localPort: before.localPort }],
    });
    assert.equal(after.state, 'bound');
    assert.equal(after.localPort, before.localPort, 'the same port, bound again');
    assert.equal(await echoOnce(after.localPort, 'again'), 'again');
    await waitFor('the counters of both workers, added', () => {
      const st = relay?.stats(KEY);
      return st?.total === 2 && st.active === 0;
    });
    assert.equal(relay.stats(KEY)?.bytesSent, 'onceagain'.length, JSON.stringify(relay.stats(KEY)));
  });

  it('refuses calls once closed', async function () {
    relay = await start();
    await relay.close();
    await assert.rejects(relay.ensure(KEY, spec), /closed/);
    relay = undefined;
  });
});
