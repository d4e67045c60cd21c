// The PINGs a SPDY session sent and waits for: odd ids, a timer each, the round trip on the reply.
import { PortForwardError } from '../errors';

export class PendingPings {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { start: bigint; resolve(ms: number): void; reject(e: Error): void }
  >();

  /** A new PING's id, and the round trip in ms once `replied(id)`; rejects after `timeoutMs`. */
  start(name: string, timeoutMs: number): { id: number; rtt: Promise<number> } {
    const id = this.nextId;
    this.nextId = id >= 0x7ffffffd ? 1 : id + 2;
    const rtt = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new PortForwardError('timeout', `${name}: no PING reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => clearTimeout(timer);
      this.waiting.set(id, {
        start: process.hrtime.bigint(),
        resolve: (ms) => (done(), resolve(ms)),
        reject: (e) => (done(), reject(e)),
      });
    });
    return { id, rtt };
  }

  /** The peer echoed our PING `id`. */
  replied(id: number): void {
    const p = this.waiting.get(id);
    this.waiting.delete(id);
    p?.resolve(Number(process.hrtime.bigint() - p.start) / 1e6);
  }

  /** The session ended: every PING still waiting fails with `err`. */
  failAll(err: Error): void {
    for (const p of this.waiting.values()) p.reject(err);
    this.waiting.clear();
  }
}
