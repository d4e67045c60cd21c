// Direct reads of accepted sockets (direct-reads.ts) on the pinned Node.js: the internals they use
// are there, bytes arrive in order with room for a header in front, a false return pauses, resume()
// reads again, 'end' still comes, and released buffers are reused.
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { directReadCounts, directReads, directReadsSupported, HEADROOM, withHeader } from './direct-reads';

/** A server accepting paused, and a client connected to it: [client, accepted]. */
async function pair(): Promise<{ client: net.Socket; accepted: net.Socket; close(): void }> {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const acceptedP = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const accepted = await acceptedP;
  return {
    client,
    accepted,
    close: () => {
      client.destroy();
      accepted.destroy();
      server.close();
    },
  };
}

describe('direct reads of accepted sockets', function () {
  it('are supported by the pinned Node.js', async function () {
    const p = await pair();
    try {
      assert.equal(directReadsSupported(p.accepted), true);
    } finally {
      p.close();
    }
  });

  it('deliver every byte in order with header room in front, and still end', async function () {
    const p = await pair();
    try {
      const sent = crypto.randomBytes(3 * 1024 * 1024 + 17);
      const got: Buffer[] = [];
      let roomOk = true;
      const before = directReadCounts().allocated;
      const ok = directReads(p.accepted, (view, release) => {
        if (view.byteOffset < HEADROOM) roomOk = false;
        const framed = withHeader(view);
        framed.writeUInt32BE(0xdeadbeef, 0); // the room is ours, and the same memory as the view
        if (framed.length !== view.length + HEADROOM || framed[HEADROOM] !== view[0]) roomOk = false;
        got.push(Buffer.from(view)); // a copy: the buffer is reused after release()
        release();
        return true;
      });
      assert.equal(ok, true);
      let dataEvents = 0;
      p.accepted.on('data', () => dataEvents++);
      const ended = new Promise<void>((r) => p.accepted.once('end', r));
      p.accepted.resume();
      p.client.end(sent);
      await ended;
      assert.equal(roomOk, true, 'a read without its header room');
      assert.equal(dataEvents, 0, "bytes also came as 'data' events");
      assert.ok(Buffer.concat(got).equals(sent), 'the bytes differ from those sent');
      // Each read's buffer was released before the next read: one or two buffers served them all.
      const allocated = directReadCounts().allocated - before;
      assert.ok(got.length > 10, `${got.length} reads`);
      assert.ok(allocated <= 2, `${allocated} buffers allocated for ${got.length} reads`);
    } finally {
      p.close();
    }
  });

  it('stop reading on a false return until resume()', async function () {
    const p = await pair();
    try {
      let reads = 0;
      let bytes = 0;
      const held: (() => void)[] = [];
      directReads(p.accepted, (view, release) => {
        reads++;
        bytes += view.length;
        held.push(release);
        return false;
      });
      p.accepted.resume();
      p.client.write(Buffer.alloc(4 * 1024 * 1024, 1));
      const deadline = Date.now() + 5_000;
      while (reads === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(reads, 1);
      // The client keeps writing meanwhile; nothing more is read while paused. Waiting for a read
      // that must not come can only be bounded by time: 200 ms is far above a loopback read.
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(reads, 1, 'read again while paused');
      p.accepted.resume();
      while (reads === 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(reads >= 2, 'resume() did not read again');
      assert.ok(bytes > 0);
      for (const r of held) r();
    } finally {
      p.close();
    }
  });
});
