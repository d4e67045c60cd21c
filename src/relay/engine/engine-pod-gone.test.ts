// A pod deleted between the plan and the dial: the API server answers the upgrade with 404 before any
// byte reached a pod. Such a connection is not lost: it goes to another target, or is held like a new
// connection (its hold counted from when its client connected), and fails as before when it cannot
// wait. The fake port-forward server answers 404 for every pod without a route, as kube-apiserver
// does for a pod that is gone.
import * as assert from 'node:assert/strict';
import type * as net from 'node:net';
import { closed, connect, readAll, startTcpServer, TcpServer } from '../../../test/support/net';
import { waitFor } from '../../../test/support/wait';
import { Rig, startRig } from '../testing/rig';

describe('relay engine: a pod gone before the connection reached it', function () {
  let rig: Rig;
  let echo: TcpServer;

  beforeEach(async function () {
    rig = await startRig();
    echo = await startTcpServer((s) => s.pipe(s));
    rig.routes.set('new', { kind: 'tcp', port: echo.port });
  });

  afterEach(async function () {
    await rig.close();
    await echo.close();
  });

  /** A client that wrote `data` to a forward whose only pod is gone: its dial answered 404, it waits. */
  async function heldAfter404(data: string): Promise<{ port: number; sock: net.Socket }> {
    const port = await rig.listen('k', 'gone', 8080, { holdMs: 10_000 });
    const sock = await connect(port);
    sock.on('error', () => undefined);
    sock.write(data);
    await waitFor('the dial to the gone pod', () => rig.fake.requests() === 1);
    await waitFor('the connection to be held', () => rig.engine.stats('k')?.active === 1);
    return { port, sock };
  }

  it('holds the connection until the next pod is ready, and relays its bytes there', async function () {
    const { port, sock } = await heldAfter404('hello');
    assert.equal(rig.engine.stats('k')!.failed, 0, 'not counted as failed');
    assert.equal(await rig.listen('k', 'new', 8080, { holdMs: 10_000 }), port);
    await waitFor('the bytes sent before the 404 to echo from the next pod', () => sock.bytesRead === 5);
    assert.equal(echo.accepted(), 1);
    const stats = rig.engine.stats('k')!;
    assert.equal(stats.failed, 0);
    assert.equal(stats.lastError, undefined);
    assert.ok(!rig.events.some((e) => e.type === 'tunnelError'), JSON.stringify(rig.events));
    assert.ok(
      rig.events.some((e) => e.type === 'podGone' && /pods "gone" not found/.test(e.message)),
      'the controller is told to plan again',
    );
    sock.destroy();
  });

  it('does not dial the gone pod again for that connection while the plan still lists it', async function () {
    const { sock } = await heldAfter404('x');
    // A plan that has not seen the deletion yet (a status-interval pass) lists the pod again.
    await rig.listen('k', 'gone', 8080, { holdMs: 10_000 });
    await rig.listen('k', 'gone', 8080, { holdMs: 10_000 });
    await rig.listen('k', 'new', 8080, { holdMs: 10_000 });
    await waitFor('the echo from the next pod', () => sock.bytesRead === 1);
    assert.equal(
      rig.fake.requests(),
      2,
      'one dial to the gone pod, then one to the next: never the gone one again',
    );
    assert.equal(rig.engine.stats('k')!.failed, 0);
    sock.destroy();
  });

  it('goes on to another target at once when there is one', async function () {
    const [state] = await rig.engine.ensure('k', {
      listeners: [{ id: 'main', address: '127.0.0.1', localPort: 0, remotePort: 8080 }],
      targets: [
        { namespace: 'test', name: 'gone' },
        { namespace: 'test', name: 'new' },
      ],
      holdMs: 0,
    });
    const sock = await connect(state.localPort);
    sock.write('abc');
    await waitFor('the echo from the other pod', () => sock.bytesRead === 3);
    assert.equal(rig.fake.requests(), 2, 'one dial to the gone pod, one to the other');
    // Only that connection avoids the pod (the plan says which pods are targets): the next one
    // dials it too, and goes on the same way.
    const next = await connect(state.localPort);
    next.write('d');
    await waitFor('the second echo', () => next.bytesRead === 1);
    assert.equal(rig.fake.requests(), 4);
    assert.equal(rig.engine.stats('k')!.failed, 0);
    sock.destroy();
    next.destroy();
  });

  it('fails the connection with the 404 when nothing may hold it (holdMs 0, no other target)', async function () {
    const port = await rig.listen('k', 'gone', 8080, { holdMs: 0 });
    const back = await readAll(await connect(port));
    assert.equal(back.data.length, 0);
    await waitFor('the failure', () => rig.engine.stats('k')?.failed === 1);
    const stats = rig.engine.stats('k')!;
    assert.equal(stats.active, 0);
    assert.equal(stats.lastError?.kind, 'notFound');
    assert.match(stats.lastError?.message ?? '', /pods "gone" not found/);
    assert.ok(rig.events.some((e) => e.type === 'tunnelError' && e.kind === 'notFound'));
  });

  it('fails a held connection with the 404 once its hold ends', async function () {
    const port = await rig.listen('k', 'gone', 8080, { holdMs: 300 });
    const sock = await connect(port);
    await closed(sock);
    await waitFor('the failure', () => rig.engine.stats('k')?.failed === 1);
    const stats = rig.engine.stats('k')!;
    assert.equal(stats.active, 0);
    assert.equal(stats.lastError?.kind, 'notFound');
    assert.match(stats.lastError?.message ?? '', /pods "gone" not found; no other ready pod within 0.3 s/);
  });
});
