// The relay engine's control surface: ensure/stop semantics, listener errors, source ranges, targets,
// and how tunnel failures reach stats and events.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { closed, connect, readAll, startTcpServer, TcpServer } from '../../../test/support/net';
import { waitFor } from '../../../test/support/wait';
import { RelaySpecError } from '../errors';
import { Rig, startRig } from '../testing/rig';
import type { ListenerSpec } from '../types';

async function roundTrip(port: number, text: string, host = '127.0.0.1'): Promise<string> {
  const sock = await connect(port, host);
  const reading = readAll(sock);
  sock.write(text);
  await waitFor(`the echo of "${text}"`, () => sock.bytesRead >= text.length);
  sock.destroy();
  return (await reading).data.toString();
}

function listener(id: string, localPort = 0, remotePort = 8080, address = '127.0.0.1'): ListenerSpec {
  return { id, address, localPort, remotePort };
}

describe('relay engine', function () {
  let rig: Rig;
  let echoA: TcpServer;
  let echoB: TcpServer;

  beforeEach(async function () {
    rig = await startRig();
    echoA = await startTcpServer((s) => s.pipe(s));
    echoB = await startTcpServer((s) => s.pipe(s));
    rig.routes.set('a', { kind: 'tcp', port: echoA.port });
    rig.routes.set('b', { kind: 'tcp', port: echoB.port });
  });

  afterEach(async function () {
    await rig.close();
    await echoA.close();
    await echoB.close();
  });

  it('binds a kernel-chosen port for localPort 0 and keeps it when ensured again', async function () {
    const spec = { listeners: [listener('http')], targets: [{ namespace: 'test', name: 'a' }] };
    const [first] = await rig.engine.ensure('k', spec);
    assert.equal(first.state, 'bound');
    const sock = await connect(first.localPort);
    sock.write('x');
    await waitFor('the echo', () => sock.bytesRead === 1);
    const [again] = await rig.engine.ensure('k', spec);
    assert.deepEqual(again, first);
    sock.write('y');
    await waitFor('the open connection to keep working', () => sock.bytesRead === 2);
    assert.equal(rig.engine.stats('k')!.active, 1);
    sock.destroy();
  });

  it('re-binds a listener whose local port changed and closes a removed one', async function () {
    const target = { namespace: 'test', name: 'a' };
    const [one, two] = await rig.engine.ensure('k', {
      listeners: [listener('one'), listener('two')],
      targets: [target],
    });
    const onTwo = await connect(two.localPort);
    onTwo.write('x');
    await waitFor('the echo', () => onTwo.bytesRead === 1);
    const [moved] = await rig.engine.ensure('k', {
      listeners: [listener('one', 0, 8080, '127.0.0.2')],
      targets: [target],
    });
    assert.equal(moved.state, 'bound');
    assert.equal(moved.address, '127.0.0.2');
    await closed(onTwo); // the removed listener's connection is closed with it
    await assert.rejects(connect(two.localPort), /ECONNREFUSED/);
    await assert.rejects(connect(one.localPort), /ECONNREFUSED/);
    assert.equal(await roundTrip(moved.localPort, 'hi', '127.0.0.2'), 'hi');
  });

  it('logs a bind that keeps failing the same way at warn once, then at debug', async function () {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const busy = (taken.address() as net.AddressInfo).port;
    const lines: string[] = [];
    const log = (level: string) => (m: string) => lines.push(`${level} ${m}`);
    const quiet = await startRig({
      logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    });
    try {
      for (let i = 0; i < 3; i++) {
        await quiet.engine.ensure('k', {
          listeners: [listener('busy', busy)],
          targets: [{ namespace: 'test', name: 'a' }],
        });
      }
      assert.equal(lines.filter((l) => l === 'warn listener not bound').length, 1);
      assert.equal(lines.filter((l) => l === 'debug listener still not bound').length, 2);
    } finally {
      await quiet.close();
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  it('reports EADDRINUSE per listener and binds the others', async function () {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const busy = (taken.address() as net.AddressInfo).port;
    try {
      const states = await rig.engine.ensure('k', {
        listeners: [listener('busy', busy), listener('free')],
        targets: [{ namespace: 'test', name: 'a' }],
      });
      assert.equal(states[0].state, 'error');
      assert.equal(states[0].state === 'error' && states[0].code, 'EADDRINUSE');
      assert.match(
        states[0].state === 'error' ? states[0].message : '',
        new RegExp(`127\\.0\\.0\\.1:${busy}`),
      );
      assert.equal(states[1].state, 'bound');
      // Once the port is free, ensuring again binds it.
      await new Promise<void>((r) => taken.close(() => r()));
      const [retried] = await rig.engine.ensure('k', {
        listeners: [listener('busy', busy), listener('free')],
        targets: [{ namespace: 'test', name: 'a' }],
      });
      assert.deepEqual(retried, { id: 'busy', state: 'bound', address: '127.0.0.1', localPort: busy });
    } finally {
      taken.close();
    }
  });

  it('reports EADDRNOTAVAIL for an address the host does not have', async function () {
    const [state] = await rig.engine.ensure('k', {
      listeners: [listener('x', 0, 80, '192.0.2.1')],
      targets: [],
    });
    assert.equal(state.state === 'error' && state.code, 'EADDRNOTAVAIL');
  });

  it('rejects an invalid spec (bad CIDR, duplicate id) instead of binding', async function () {
    await assert.rejects(
      rig.engine.ensure('k', {
        listeners: [listener('x')],
        targets: [],
        allowedSourceRanges: ['10.0.0.0/40'],
      }),
      RelaySpecError,
    );
    await assert.rejects(
      rig.engine.ensure('k', { listeners: [listener('x'), listener('x')], targets: [] }),
      /appears twice/,
    );
  });

  it('refuses clients outside allowedSourceRanges at accept, counting them', async function () {
    const port = await rig.listen('k', 'a', 8080, { allowedSourceRanges: ['10.0.0.0/8', '2001:db8::/32'] });
    const refused = await readAll(await connect(port));
    assert.equal(refused.data.length, 0);
    const stats = rig.engine.stats('k')!;
    assert.equal(stats.refused, 1);
    assert.equal(stats.total, 0);
    await waitFor('the clientRefused event', () =>
      rig.events.some((e) => e.type === 'clientRefused' && e.rule === 'sourceRanges'),
    );
    assert.equal(rig.fake.upgrades(), 0, 'no tunnel was opened');
    // Allowing loopback lets the same client in, on the same listener.
    assert.equal(await rig.listen('k', 'a', 8080, { allowedSourceRanges: ['127.0.0.0/8'] }), port);
    assert.equal(await roundTrip(port, 'ok'), 'ok');
  });

  it('admits only allowedClientAddresses (or allowedSourceRanges), reporting each refused client with its address', async function () {
    const fromAddress = (port: number, localAddress: string): Promise<net.Socket> =>
      new Promise((resolve, reject) => {
        const s = net.connect({ port, host: '127.0.0.1', localAddress });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
    const echoFrom = async (port: number, localAddress: string, text: string): Promise<void> => {
      const sock = await fromAddress(port, localAddress);
      sock.write(text);
      await waitFor(`the echo of "${text}"`, () => sock.bytesRead >= text.length);
      sock.destroy();
    };
    const port = await rig.listen('k', 'a', 8080, { allowedClientAddresses: ['127.244.0.2'] });
    const refused = await readAll(await fromAddress(port, '127.244.0.3'));
    assert.equal(refused.data.length, 0);
    await waitFor('the clientRefused event', () => rig.events.some((e) => e.type === 'clientRefused'));
    assert.deepEqual(
      rig.events.filter((e) => e.type === 'clientRefused'),
      [{ type: 'clientRefused', key: 'k', address: '127.244.0.3', rule: 'clients' }],
    );
    await echoFrom(port, '127.244.0.2', 'hi');
    assert.equal(rig.engine.stats('k')!.refused, 1);
    assert.equal(rig.engine.stats('k')!.total, 1);
    // With a range beside the list, a client in either is admitted; an empty list alone admits nobody.
    assert.equal(
      await rig.listen('k', 'a', 8080, {
        allowedClientAddresses: [],
        allowedSourceRanges: ['127.244.0.3/32'],
      }),
      port,
    );
    await echoFrom(port, '127.244.0.3', 'ok');
    await rig.listen('k', 'a', 8080, { allowedClientAddresses: [] });
    assert.equal((await readAll(await fromAddress(port, '127.244.0.3'))).data.length, 0);
    await waitFor('the second refusal', () => rig.engine.stats('k')!.refused === 2);
  });

  it('sends new connections to a changed target without disturbing open ones', async function () {
    const port = await rig.listen('k', 'a', 8080);
    const old = await connect(port);
    old.write('1');
    await waitFor('the first echo', () => old.bytesRead === 1);
    assert.equal(await rig.listen('k', 'b', 8080), port);
    assert.equal(await roundTrip(port, 'new'), 'new');
    assert.equal(echoB.accepted(), 1, 'the new connection went to pod b');
    old.write('2');
    await waitFor('the open connection to keep echoing', () => old.bytesRead === 2);
    assert.equal(echoA.accepted(), 1, 'the open connection stayed on pod a');
    old.destroy();
  });

  it('refuses new connections while there is no target, counting them failed', async function () {
    const port = await rig.listen('k', undefined, 8080);
    const back = await readAll(await connect(port));
    assert.equal(back.data.length, 0);
    assert.equal(rig.engine.stats('k')!.failed, 1);
    assert.equal(rig.fake.upgrades(), 0);
  });

  it('says why when it refuses a connection for want of a target (issue 11: not "no ready pod" for a missing named port)', async function () {
    const lines: string[] = [];
    const log = (m: string, meta?: Record<string, unknown>): void => {
      lines.push(`${m} ${JSON.stringify(meta ?? {})}`);
    };
    const told = await startRig({ logger: { debug: log, info: log, warn: log, error: log } });
    try {
      const why = 'pod test/a has no TCP container port named "grpc" (it has http)';
      const port = await told.listen('k', undefined, 8080, { noTargetReason: why });
      assert.equal((await readAll(await connect(port))).data.length, 0);
      await waitFor('the refusal to be counted', () => told.engine.stats('k')?.failed === 1);
      assert.equal(told.engine.stats('k')!.lastError?.message, `connection refused: ${why}`);
      assert.ok(
        lines.some((l) => l.startsWith(`refused a client: ${why}`)),
        `a log line names the reason:\n${lines.join('\n')}`,
      );
      assert.ok(!lines.some((l) => /no ready pod/.test(l)), 'and does not blame readiness');
    } finally {
      await told.close();
    }
  });

  it('drains on close(graceMs): no new connections, open ones finish, the rest closed after the grace', async function () {
    // A client's close looks like a half-close to the relay; keep that wait short here.
    const quick = await startRig({ halfCloseTimeoutMs: 100 });
    try {
      quick.routes.set('a', { kind: 'tcp', port: echoA.port });
      const port = await quick.listen('k', 'a', 8080);
      const open = await connect(port);
      open.write('1');
      await waitFor('the first echo', () => open.bytesRead === 1);
      const closing = quick.engine.close(60_000);
      await assert.rejects(connect(port), /ECONNREFUSED/, 'the listener stops accepting at once');
      open.write('2');
      await waitFor('the open connection to keep echoing', () => open.bytesRead === 2);
      open.destroy();
      await closing; // resolves once the last connection ended, long before the grace
    } finally {
      await quick.close();
    }
  });

  it('closes connections still open when the drain grace ends', async function () {
    const port = await rig.listen('k', 'a', 8080);
    const open = await connect(port);
    open.write('1');
    await waitFor('the first echo', () => open.bytesRead === 1);
    const ended = closed(open);
    await rig.engine.close(100);
    await ended;
  });

  it('holds a new connection while there is no target, and relays it once a pod is ready', async function () {
    const port = await rig.listen('k', undefined, 8080, { holdMs: 10_000 });
    const sock = await connect(port);
    sock.write('held');
    await waitFor('the connection to be held', () => rig.engine.stats('k')?.active === 1);
    assert.equal(rig.fake.upgrades(), 0, 'nothing dialed while no pod is ready');
    assert.equal(await rig.listen('k', 'a', 8080, { holdMs: 10_000 }), port);
    await waitFor('the held bytes to echo', () => sock.bytesRead === 4);
    assert.equal(echoA.accepted(), 1);
    assert.equal(rig.engine.stats('k')!.failed, 0);
    sock.destroy();
  });

  it('refuses a held connection after holdMs, as a timeout', async function () {
    const port = await rig.listen('k', undefined, 8080, { holdMs: 100 });
    const back = await readAll(await connect(port));
    assert.equal(back.data.length, 0);
    await waitFor('the failure', () => rig.engine.stats('k')?.failed === 1);
    assert.equal(rig.engine.stats('k')!.lastError?.kind, 'timeout');
    assert.match(rig.engine.stats('k')!.lastError?.message ?? '', /no ready pod within 0.1 s/);
    assert.ok(rig.events.some((e) => e.type === 'tunnelError' && e.kind === 'timeout'));
  });

  it('spreads new connections round-robin over all targets with loadBalance spread', async function () {
    const [state] = await rig.engine.ensure('k', {
      listeners: [{ id: 'main', address: '127.0.0.1', localPort: 0, remotePort: 8080 }],
      targets: [
        { namespace: 'test', name: 'a' },
        { namespace: 'test', name: 'b' },
      ],
      loadBalance: 'spread',
    });
    for (let i = 0; i < 4; i++) assert.equal(await roundTrip(state.localPort, `m${i}`), `m${i}`);
    assert.equal(echoA.accepted(), 2);
    assert.equal(echoB.accepted(), 2);
  });

  it('raises error-channel text as a tunnelError with the node message in stats', async function () {
    const text =
      'error forwarding port 5432 to pod db, uid 1: exec: "socat": executable file not found in $PATH';
    rig.routes.set('db', { kind: 'nodeError', message: text });
    const back = await readAll(await connect(await rig.listen('k', 'db', 5432)));
    assert.equal(back.data.length, 0);
    await waitFor('the failure', () => rig.engine.stats('k')?.failed === 1);
    const stats = rig.engine.stats('k')!;
    assert.deepEqual(
      { kind: stats.lastError?.kind, message: stats.lastError?.message },
      { kind: 'nodeError', message: text },
    );
    assert.ok(stats.lastError!.time instanceof Date);
    assert.deepEqual(rig.events.at(-1), { type: 'tunnelError', key: 'k', kind: 'nodeError', message: text });
  });

  it('fails a tunnel whose server announces another port (protocol)', async function () {
    rig.routes.set('liar', { kind: 'tcp', port: echoA.port, announce: [8080, 8081] });
    await readAll(await connect(await rig.listen('k', 'liar', 8080)));
    await waitFor('the failure', () => rig.engine.stats('k')?.failed === 1);
    assert.equal(rig.engine.stats('k')!.lastError?.kind, 'protocol');
    assert.match(rig.engine.stats('k')!.lastError!.message, /port 8081 announced on channel 1/);
  });

  it('reports a refused upgrade (404) as notFound', async function () {
    await readAll(await connect(await rig.listen('k', 'missing', 80)));
    await waitFor('the failure', () => rig.engine.stats('k')?.failed === 1);
    assert.equal(rig.engine.stats('k')!.lastError?.kind, 'notFound');
    assert.equal(rig.events.at(-1)?.type, 'tunnelError');
  });

  it('stop() closes the listeners and open connections and forgets the session', async function () {
    const port = await rig.listen('k', 'a', 8080);
    const open = await connect(port);
    open.write('x');
    await waitFor('the echo', () => open.bytesRead === 1);
    await rig.engine.stop('k');
    await closed(open);
    await assert.rejects(connect(port), /ECONNREFUSED/);
    assert.equal(rig.engine.stats('k'), undefined);
    await waitFor('the pod connection to close', () => echoA.open() === 0);
  });

  it('keeps sessions apart', async function () {
    const p1 = await rig.listen('one', 'a', 8080);
    const p2 = await rig.listen('two', 'b', 8080);
    assert.notEqual(p1, p2);
    assert.equal(await roundTrip(p2, 'z'), 'z');
    await rig.engine.stop('one');
    assert.equal(await roundTrip(p2, 'still'), 'still');
    assert.equal(rig.engine.stats('two')!.total, 2);
  });
});
