// Traffic for the reliability scenarios: steady short connections (several a second, each one's echo
// verified byte for byte, counted and classified), and long transfers that must live through an event.
import * as crypto from 'node:crypto';
import * as net from 'node:net';

export interface Attempt {
  /** ms since the epoch: the connect began, the connection ended. */
  start: number;
  end: number;
  ok: boolean;
  /** Why it failed: refused, reset, closed early, timeout, corrupted, or an error code. */
  reason?: string;
}

export interface TrafficReport {
  attempted: number;
  succeeded: number;
  failed: number;
  /** Echoes that came back different from what was sent: never acceptable. */
  corrupted: number;
  /** Failures by reason. */
  reasons: Record<string, number>;
  attempts: Attempt[];
}

export interface Window {
  from: number;
  to: number;
}

export interface SteadyTrafficOptions {
  port: number;
  host?: string;
  /** New connections per second, started on a fixed schedule (not after the previous one ended). */
  perSecond?: number;
  /** Bytes each connection sends and expects back. Default 16 KiB. */
  payloadBytes?: number;
  /** A connection that is not done by then fails as `timeout`. Default 45 s (longer than a hold). */
  timeoutMs?: number;
}

/** Connections at a steady rate to an echo path; every one is counted and classified. */
export class SteadyTraffic {
  private readonly attempts: Attempt[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private port: number;

  constructor(private readonly opts: SteadyTrafficOptions) {
    this.port = opts.port;
  }

  start(): this {
    const every = 1000 / (this.opts.perSecond ?? 5);
    this.timer = setInterval(() => this.once(), every);
    this.once();
    return this;
  }

  /** Where new connections go from now on. */
  setPort(port: number): void {
    this.port = port;
  }

  /** Stops starting connections, waits for those in flight, and reports. */
  async stop(): Promise<TrafficReport> {
    clearInterval(this.timer);
    this.timer = undefined;
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
    return this.report();
  }

  report(): TrafficReport {
    return summarize(this.attempts);
  }

  private once(): void {
    const p = verifiedEcho(
      this.port,
      this.opts.payloadBytes ?? 16 * 1024,
      this.opts.timeoutMs ?? 45_000,
      this.opts.host,
    ).then((a) => {
      this.attempts.push(a);
      this.inFlight.delete(p);
    });
    this.inFlight.add(p);
  }
}

export function summarize(attempts: Attempt[]): TrafficReport {
  const reasons: Record<string, number> = {};
  for (const a of attempts) if (!a.ok) reasons[a.reason ?? '?'] = (reasons[a.reason ?? '?'] ?? 0) + 1;
  return {
    attempted: attempts.length,
    succeeded: attempts.filter((a) => a.ok).length,
    failed: attempts.filter((a) => !a.ok).length,
    corrupted: reasons.corrupted ?? 0,
    reasons,
    attempts,
  };
}

/** One line for the test's output: the counts, and the failures by reason. */
export function describeReport(what: string, r: TrafficReport): string {
  const why = Object.entries(r.reasons)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  return `${what}: ${r.attempted} attempted, ${r.succeeded} succeeded, ${r.failed} failed${why ? ` (${why})` : ''}`;
}

/** Failed attempts that overlap none of the windows (a window: the operator or API server down). */
export function failuresOutside(r: TrafficReport, windows: Window[]): Attempt[] {
  return r.attempts.filter((a) => !a.ok && !windows.some((w) => a.start <= w.to && a.end >= w.from));
}

/** Connects, sends `bytes` random bytes, reads the echo and compares it byte for byte. Never rejects. */
export function verifiedEcho(
  port: number,
  bytes: number,
  timeoutMs: number,
  host = '127.0.0.1',
): Promise<Attempt> {
  const payload = crypto.randomBytes(bytes);
  const start = Date.now();
  return new Promise((resolve) => {
    const got = Buffer.allocUnsafe(bytes);
    let received = 0;
    let settled = false;
    const sock = net.connect({ port, host });
    const done = (ok: boolean, reason?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ start, end: Date.now(), ok, ...(reason ? { reason } : {}) });
    };
    const timer = setTimeout(() => done(false, 'timeout'), timeoutMs);
    sock.on('connect', () => sock.write(payload));
    sock.on('data', (c: Buffer) => {
      if (received + c.length > bytes) return done(false, 'corrupted');
      c.copy(got, received);
      received += c.length;
      if (received < bytes) return;
      done(got.equals(payload), got.equals(payload) ? undefined : 'corrupted');
    });
    sock.on('error', (err: NodeJS.ErrnoException) =>
      done(
        false,
        err.code === 'ECONNREFUSED'
          ? 'refused'
          : err.code === 'ECONNRESET'
            ? 'reset'
            : (err.code ?? err.message),
      ),
    );
    sock.on('close', () => done(false, received === 0 ? 'closed before any byte' : 'closed early'));
  });
}

/**
 * A long transfer through an echo path: writes `chunkBytes` every `everyMs`, checks each byte that
 * comes back against what was sent, and reports how far it got. It must outlive whatever the test
 * does meanwhile.
 */
export class LongTransfer {
  sent = 0;
  received = 0;
  error: string | undefined;
  closed = false;
  private readonly sock: net.Socket;
  private readonly pending: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;

  private constructor(port: number, chunkBytes: number, everyMs: number, host: string) {
    this.sock = net.connect({ port, host });
    this.sock.on('error', (err) => (this.error ??= err.message));
    this.sock.on('close', () => {
      this.closed = true;
      clearInterval(this.timer);
    });
    this.sock.on('data', (c: Buffer) => this.check(c));
    this.sock.on('connect', () => {
      this.timer = setInterval(() => {
        const chunk = crypto.randomBytes(chunkBytes);
        this.pending.push(chunk);
        this.sent += chunk.length;
        this.sock.write(chunk);
      }, everyMs);
    });
  }

  static start(
    port: number,
    opts: { chunkBytes?: number; everyMs?: number; host?: string } = {},
  ): LongTransfer {
    return new LongTransfer(port, opts.chunkBytes ?? 4096, opts.everyMs ?? 50, opts.host ?? '127.0.0.1');
  }

  get alive(): boolean {
    return !this.closed && !this.error;
  }

  /** Stops writing, waits until everything sent came back (or `timeoutMs`), and closes. */
  async finish(timeoutMs = 15_000): Promise<void> {
    clearInterval(this.timer);
    const deadline = Date.now() + timeoutMs;
    while (this.received < this.sent && this.alive && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.sock.end();
  }

  private check(c: Buffer): void {
    let at = 0;
    while (at < c.length) {
      const head = this.pending[0];
      if (!head) {
        this.error ??= `${c.length - at} bytes came back that were never sent`;
        return;
      }
      const n = Math.min(head.length, c.length - at);
      if (!c.subarray(at, at + n).equals(head.subarray(0, n))) {
        this.error ??= `corrupted echo at byte ${this.received}`;
        return;
      }
      this.received += n;
      at += n;
      if (n === head.length) this.pending.shift();
      else this.pending[0] = head.subarray(n);
    }
  }
}
