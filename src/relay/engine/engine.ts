// The RelayEngine: sessions by key, each a set of listeners whose connections are tunnelled to a pod.
//
// Guarantees
// - `ensure` is idempotent: a listener whose id, address and local port are unchanged stays bound
//   (its open connections untouched); a changed one is closed with its connections and bound again; a
//   removed one is closed with its connections. Bind failures are reported per listener, never thrown.
// - Changing `target`, `allowedSourceRanges` or `allowedClientAddresses` affects new connections only.
// - Calls for one key run one at a time, in order.
// - Each ended connection emits one event: `tunnelError` if it failed, else `connectionClosed` (also
//   for want of a target); a client refused by allowedSourceRanges or allowedClientAddresses emits
//   `clientRefused` instead, with its address.
import * as net from 'node:net';
import type { Dialer } from '../v4/v4-dialer';
import { RelayClosedError, RelaySpecError } from '../errors';
import { RelayLogger, silentLogger } from '../logger';
import { ClientSession, podId } from './client-session';
import { ClientAccess } from './client-access';
import type { Transport } from '../transport';
import type { ListenerState, PodTarget, RelayEngine, RelayEvent, SessionSpec, SessionStats } from '../types';
import { WebSocketTransport } from '../v4/v4-transport';

export interface RelayEngineOptions {
  /**
   * How connections reach pods. Default: the per-connection v4 WebSocket transport on `dialer`
   * (one of the two is required).
   */
  transport?: Transport;
  /** The WebSocket dialer of the default transport. */
  dialer?: Dialer;
  /** Default: logs nothing. */
  logger?: RelayLogger;
  /** Interval of WebSocket pings on every tunnel. Default 10 000 ms. */
  pingIntervalMs?: number;
  /** A tunnel with no pong (or other sign of life) for this long fails as `timeout`. Default 30 000 ms. */
  pongTimeoutMs?: number;
  /**
   * After a client's FIN, the tunnel closes once the pod sent nothing for this long. v4 cannot pass a
   * half-close on, and a FIN does not say whether the client still reads, so this is how long a client
   * that closed is kept waiting for nothing, and how long a half-closed one may wait for its reply to
   * begin (each byte from the pod restarts it). Default 5 000 ms.
   */
  halfCloseTimeoutMs?: number;
  /** Bytes queued towards the API server above which a client is paused. Default 512 KiB. */
  highWaterMark?: number;
  /** Bytes queued towards the API server at which a paused client resumes. Default 128 KiB. */
  lowWaterMark?: number;
  /**
   * Write buffer of a client socket before the pod side is paused. Default 64 KiB: as fast as 256 KiB,
   * with a quarter of the memory per slow client (`make bench BENCH=limits`).
   */
  socketBufferBytes?: number;
}

export function createRelayEngine(options: RelayEngineOptions): RelayEngine {
  return new Engine(options);
}

class Engine implements RelayEngine {
  private readonly sessions = new Map<string, ClientSession>();
  /** The pods some session targets (podId), and how many sessions do. */
  private readonly retained = new Map<string, { pod: PodTarget; sessions: number }>();
  /** Session key -> the podIds it counts in `retained`. */
  private readonly retainedBy = new Map<string, Set<string>>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly subscribers: ((event: RelayEvent) => void)[] = [];
  private readonly logger: RelayLogger;
  private closed = false;
  private readonly transport: Transport;

  constructor(private readonly options: RelayEngineOptions) {
    this.logger = options.logger ?? silentLogger;
    const o = options;
    const pingIntervalMs = o.pingIntervalMs ?? 10_000;
    if (!(pingIntervalMs > 0))
      throw new RelaySpecError(`pingIntervalMs must be positive, not ${pingIntervalMs}`);
    if (o.transport) {
      this.transport = o.transport;
    } else if (o.dialer) {
      this.transport = new WebSocketTransport(o.dialer, {
        pingIntervalMs,
        pongTimeoutMs: o.pongTimeoutMs ?? Math.max(30_000, 2 * pingIntervalMs),
        halfCloseTimeoutMs: o.halfCloseTimeoutMs ?? 5_000,
        highWaterMark: o.highWaterMark ?? 512 * 1024,
        lowWaterMark: o.lowWaterMark ?? 128 * 1024,
      });
    } else {
      throw new RelaySpecError('the relay engine needs a transport or a dialer');
    }
  }

  ensure(key: string, spec: SessionSpec): Promise<ListenerState[]> {
    return this.serial(key, async () => {
      if (this.closed) throw new RelayClosedError('the relay engine is closed');
      validate(spec);
      const kept = this.sessions.get(key)?.access;
      const access = kept?.same(spec.allowedSourceRanges, spec.allowedClientAddresses)
        ? kept
        : clientAccess(spec);
      let session = this.sessions.get(key);
      if (!session) {
        session = this.newSession(key);
        this.sessions.set(key, session);
      }
      const states = await session.apply(
        spec.listeners,
        {
          targets: spec.targets.map((t) => ({ ...t, ports: t.ports && { ...t.ports } })),
          loadBalance: spec.loadBalance ?? 'first',
          holdMs: spec.holdMs ?? 0,
          noTargetReason: spec.noTargetReason,
        },
        access,
      );
      this.retainTargets(key, session.targetPods());
      return states;
    });
  }

  stop(key: string): Promise<void> {
    return this.serial(key, async () => {
      const session = this.sessions.get(key);
      this.sessions.delete(key);
      await session?.stop();
      this.retainTargets(key, []);
    });
  }

  /**
   * Tells the transport which pods any session may send new connections to, when that set changed.
   * Counted per pod, and only `key`'s own targets are compared: an ensure costs its targets, not every
   * session's (a walk over all sessions per ensure made a burst of N forwards quadratic: 7.5 s of
   * 18.5 s of the relay thread's work in a restart with 2,000, by its CPU profile). The transport
   * hears the whole set only when a pod joins or leaves it, not on every ensure: most ensures (a
   * connection ended, a status interval) change nothing, and the transport keeps its pods warm by
   * itself (after a dial, a close, a failed PING).
   */
  private retainTargets(key: string, pods: readonly PodTarget[]): void {
    if (!this.transport.retain) return;
    const before = this.retainedBy.get(key);
    const after = new Map(pods.map((t) => [podId(t), t]));
    let changed = false;
    for (const [k, pod] of after) {
      if (before?.has(k)) continue;
      const r = this.retained.get(k);
      if (r) r.sessions++;
      else {
        this.retained.set(k, { pod, sessions: 1 });
        changed = true;
      }
    }
    for (const k of before ?? []) {
      if (after.has(k)) continue;
      const r = this.retained.get(k)!;
      if (--r.sessions === 0) {
        this.retained.delete(k);
        changed = true;
      }
    }
    if (after.size > 0) this.retainedBy.set(key, new Set(after.keys()));
    else this.retainedBy.delete(key);
    if (changed) this.transport.retain([...this.retained.values()].map((r) => r.pod));
  }

  keys(): string[] {
    return [...this.sessions.keys()];
  }

  stats(key: string, opts: { buffered?: boolean } = {}): SessionStats | undefined {
    const session = this.sessions.get(key);
    if (!session) return undefined;
    const stats = session.stats(opts.buffered ?? true);
    if (this.transport.warm) {
      const pods = session.targetPods();
      stats.warm = pods.length > 0 && pods.some((p) => this.transport.warm!(p));
    }
    return stats;
  }

  onEvent(listener: (event: RelayEvent) => void): void {
    this.subscribers.push(listener);
  }

  async stopAccepting(): Promise<void> {
    await Promise.all(
      [...this.sessions.keys()].map((key) =>
        this.serial(key, () => {
          void this.sessions.get(key)?.stopAccepting(); // the listeners close now; their connections go on
          return Promise.resolve();
        }),
      ),
    );
  }

  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    if (graceMs <= 0) {
      await Promise.all([...this.sessions.keys()].map((key) => this.stop(key)));
      await this.transport.close();
      return;
    }
    await Promise.all(
      [...this.sessions.keys()].map((key) =>
        this.serial(key, async () => {
          const session = this.sessions.get(key);
          this.sessions.delete(key);
          await session?.drain(graceMs);
        }),
      ),
    );
    await this.transport.close();
  }

  private newSession(key: string): ClientSession {
    return new ClientSession(key, {
      transport: this.transport,
      logger: this.logger,
      socketBufferBytes: this.options.socketBufferBytes ?? 64 * 1024,
      emit: (event) => this.emit(event),
    });
  }

  private emit(event: RelayEvent): void {
    for (const subscriber of this.subscribers) {
      try {
        subscriber(event);
      } catch (err) {
        this.logger.error('relay event subscriber threw', { error: (err as Error).message });
      }
    }
  }

  /** Runs `op` after every earlier call for `key` settled. */
  private serial<T>(key: string, op: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.then(op, op);
    const tail = next.catch(() => undefined);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return next;
  }
}

/** Checks what a schema cannot guarantee to a caller. */
function validate(spec: SessionSpec): void {
  const ids = new Set<string>();
  for (const l of spec.listeners) {
    if (ids.has(l.id)) throw new RelaySpecError(`listener id "${l.id}" appears twice`);
    ids.add(l.id);
    if (!Number.isInteger(l.localPort) || l.localPort < 0 || l.localPort > 65535) {
      throw new RelaySpecError(`listener "${l.id}": localPort ${l.localPort} is not in 0-65535`);
    }
    // remotePort 0 means "not known yet" (a named port with no pod to look it up in): fine as long as
    // every target names the port itself.
    for (const port of spec.targets.length ? spec.targets.map((t) => t.ports?.[l.id] ?? l.remotePort) : []) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw new RelaySpecError(`listener "${l.id}": remote port ${port} is not in 1-65535`);
      }
    }
    if (!net.isIP(l.address) && l.address !== 'localhost') {
      throw new RelaySpecError(`listener "${l.id}": address "${l.address}" is not an IP address`);
    }
  }
}

/** Who may connect (throws RelaySpecError on a bad range or address); undefined admits everyone. */
function clientAccess(spec: SessionSpec): ClientAccess | undefined {
  if (!spec.allowedSourceRanges?.length && spec.allowedClientAddresses === undefined) return undefined;
  return new ClientAccess(spec.allowedSourceRanges, spec.allowedClientAddresses);
}
