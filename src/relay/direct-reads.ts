// Reads of an accepted client socket into reused buffers with room for a frame header in front, so a
// relay can frame and forward each read as one buffer: no fresh ArrayBuffer per read (V8 counts
// those toward its next mark-compact, ADR 8), and no copy to join a header to its payload (a TLS
// socket joins the buffers of a multi-buffer write into one before it encrypts).
//
// Written by hand because Node.js offers this (`onread`) only to sockets it creates for
// `net.connect` and `new net.Socket`, not to those a `net.Server` accepts. `directReads` turns it on
// for an accepted socket the way `new net.Socket({ onread })` does, through net.Socket's own
// fields (its `kBuffer`, `kBufferCb`, `kBufferGen` symbols and the handle's `useUserBuffer`). Node.js is
// pinned (hack/ensure-node.sh, the Dockerfile), and src/relay/direct-reads.test.ts fails on a
// Node.js where those fields are gone. `directReadsSupported()` says whether they are there; where
// not, the SPDY tunnel relays through the socket's 'data' events as before and logs it once.
//
// Guarantees
// - After `directReads`, every read goes to `onRead(view, release)` and none to 'data'; 'end',
//   'close', 'error', pause() and resume() work as before. `onRead` returning false pauses reading
//   (resume() starts it again).
// - `view` is the read's bytes, at offset HEADROOM or more of its ArrayBuffer: the HEADROOM bytes in
//   front of it are the caller's to write (`withHeader`). The buffer goes back to the pool when the
//   caller calls `release()`, after whatever took the bytes is done with them (a write's callback).
// - The pool keeps at most `POOL_MAX` free buffers; a buffer never released is left to the garbage
//   collector.
//
// Caveats
// - A socket in direct mode holds one buffer of READ_BYTES + HEADROOM (64 KiB + 8 bytes) until it
//   closes, idle or not. The SPDY tunnel switches a connection once it has sent 256 KiB in all, so
//   a long-lived one (a pooled database connection) switches too in time, and then keeps its buffer.
// - `release` must come only once nothing reads the bytes any more (a write's callback): a buffer
//   released early may be read into while it is still being written. Calls after the first do nothing.
import type * as net from 'node:net';

/** Bytes in front of every read, for a frame header (a SPDY DATA frame's is 8). */
export const HEADROOM = 8;
/** Bytes one read takes at most: the SPDY session's default largest DATA frame. */
export const READ_BYTES = 64 * 1024;
/** Free buffers kept for the next reads (READ_BYTES + HEADROOM each): 2 MiB and a little. */
export const POOL_MAX = 32;

const free: Buffer[] = [];
let allocated = 0;
let sockets = 0;

interface Fields {
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}

let fields: Fields | null | undefined;

/** net.Socket's onread fields, found on a socket, or null where this Node.js has none. */
function fieldsOf(socket: net.Socket): Fields | null {
  if (fields !== undefined) return fields;
  const byName = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s]));
  const kBuffer = byName.get('kBuffer');
  const kBufferCb = byName.get('kBufferCb');
  const kBufferGen = byName.get('kBufferGen');
  fields = kBuffer && kBufferCb && kBufferGen ? { kBuffer, kBufferCb, kBufferGen } : null;
  return fields;
}

/** Whether `socket` can be switched to direct reads (this Node.js has the fields; it is open). */
export function directReadsSupported(socket: net.Socket): boolean {
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: unknown } })._handle;
  return !!fieldsOf(socket) && typeof handle?.useUserBuffer === 'function' && !socket.destroyed;
}

function take(): Buffer {
  const reused = free.pop();
  if (reused) return reused;
  allocated++;
  return Buffer.allocUnsafeSlow(HEADROOM + READ_BYTES).subarray(HEADROOM);
}

/** The view with the HEADROOM bytes in front of it, as one Buffer (no copy). */
export function withHeader(view: Buffer): Buffer {
  return Buffer.from(view.buffer, view.byteOffset - HEADROOM, view.length + HEADROOM);
}

/**
 * Switches `socket` to direct reads: from now on every read is passed to `onRead` (a view of the
 * bytes, and `release` to give its buffer back once they are written). Returns false, and changes
 * nothing, where directReadsSupported() is false.
 */
export function directReads(
  socket: net.Socket,
  onRead: (view: Buffer, release: () => void) => boolean,
): boolean {
  if (!directReadsSupported(socket)) return false;
  const f = fieldsOf(socket)!;
  const s = socket as unknown as Record<symbol, unknown> & { _handle: { useUserBuffer(b: Buffer): void } };
  const first = take();
  s[f.kBufferGen] = take;
  s[f.kBufferCb] = (n: number, buf: Buffer): boolean => {
    const view = n === buf.length ? buf : buf.subarray(0, n);
    let released = false;
    return onRead(view, () => {
      if (released) return;
      released = true;
      if (free.length < POOL_MAX) free.push(buf);
    });
  };
  s[f.kBuffer] = first; // also what keeps the buffer the handle reads into alive
  s._handle.useUserBuffer(first);
  sockets++;
  return true;
}

/**
 * Sockets switched and buffers allocated since the start, and buffers free in the pool now (for
 * tests and debugging).
 */
export function directReadCounts(): { sockets: number; allocated: number; free: number } {
  return { sockets, allocated, free: free.length };
}
