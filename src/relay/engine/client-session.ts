// One session: its listeners, its open connections and its counters.
import type * as net from 'node:net';
import { ConnectionDeps, RelayConnection } from './connection';
import type { PortForwardError } from '../errors';
import { RelayListener } from './listener';
import type { ClientAccess } from './client-access';
import type { RelayLogger } from '../logger';
import type {
  ListenerSpec,
  ListenerState,
  LoadBalance,
  PodTarget,
  RelayEvent,
  SessionStats,
  TransportName,
} from '../types';

export interface SessionDeps extends Omit<ConnectionDeps, 'onSent' | 'onReceived' | 'onDialed'> {
  socketBufferBytes: number;
  emit(event: RelayEvent): void;
}

export class ClientSession {
  private readonly listeners = new Map<string, RelayListener>();
  /** The last bind failure logged per listener id. */
  private readonly bindFailures = new Map<string, string>();
  private readonly connections = new Set<RelayConnection>();
  private targets: PodTarget[] = [];
  private loadBalance: LoadBalance = 'first';
  private holdMs = 0;
  private noTargetReason: string | undefined;
  /** Round-robin position for loadBalance 'spread'. */
  private next = 0;
  /** Connections waiting for a target (accepted paused, so nothing is read meanwhile). */
  private readonly held = new Set<HeldConnection>();
  /** Listeners closed by stopAccepting whose connections may still be open. */
  private readonly closingListeners: Promise<void>[] = [];
  /** Who may connect; undefined admits everyone. */
  private clientAccess: ClientAccess | undefined;
  private readonly counters: SessionStats = {
    active: 0,
    total: 0,
    failed: 0,
    refused: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };
  private readonly logger: RelayLogger;

  constructor(
    readonly key: string,
    private readonly deps: SessionDeps,
  ) {
    // Every line about this session, its connections and tunnels names the session.
    const l = deps.logger;
    const withKey = (meta?: Record<string, unknown>): Record<string, unknown> => ({ key, ...meta });
    this.logger = {
      debug: (m, meta) => l.debug(m, withKey(meta)),
      info: (m, meta) => l.info(m, withKey(meta)),
      warn: (m, meta) => l.warn(m, withKey(meta)),
      error: (m, meta) => l.error(m, withKey(meta)),
    };
  }

  /**
   * Makes the listeners match `specs`; new connections use `targets`, `loadBalance`, `holdMs` and
   * `access` from now on, and connections held for want of a target go to the new targets.
   */
  async apply(
    specs: ListenerSpec[],
    routing: { targets: PodTarget[]; loadBalance: LoadBalance; holdMs: number; noTargetReason?: string },
    access: ClientAccess | undefined,
  ): Promise<ListenerState[]> {
    this.targets = routing.targets;
    this.loadBalance = routing.loadBalance;
    this.holdMs = routing.holdMs;
    this.noTargetReason = routing.noTargetReason;
    this.clientAccess = access;
    this.releaseHeld();
    const wanted = new Map(specs.map((s) => [s.id, s]));
    const closing: Promise<void>[] = [];
    for (const [id, listener] of this.listeners) {
      const spec = wanted.get(id);
      if (spec && listener.bound && listener.sameBinding(spec)) continue;
      this.listeners.delete(id);
      closing.push(this.closeListener(listener));
    }
    // Ports of removed or moved listeners are free before anything binds again.
    await Promise.all(closing);
    return Promise.all(
      specs.map(async (spec) => {
        const kept = this.listeners.get(spec.id);
        if (kept) {
          kept.spec = { ...spec }; // only remotePort can differ: it applies to new connections
          return kept.state;
        }
        const listener = new RelayListener(
          { ...spec },
          (socket, l) => this.accept(socket, l),
          this.deps.socketBufferBytes,
          this.logger,
        );
        this.listeners.set(spec.id, listener);
        const state = await listener.bind();
        // A bind that keeps failing the same way (a port another program holds, retried every few
        // seconds) is logged at warn once, then at debug until it binds or fails otherwise.
        const failure =
          state.state === 'error' ? `${state.address}:${state.localPort} ${state.code}` : undefined;
        if (failure && this.bindFailures.get(spec.id) !== failure) {
          this.logger.warn('listener not bound', { key: this.key, ...state });
        } else if (failure) {
          this.logger.debug('listener still not bound', { key: this.key, ...state });
        }
        if (failure) this.bindFailures.set(spec.id, failure);
        else this.bindFailures.delete(spec.id);
        return state;
      }),
    );
  }

  /** Who may connect now (the engine keeps it when the next ensure sends the same lists). */
  get access(): ClientAccess | undefined {
    return this.clientAccess;
  }

  /** The pods new connections may go to (for the transport to keep ready). */
  targetPods(): readonly PodTarget[] {
    return this.targets;
  }

  /**
   * The counters; with `buffered` also bufferedBytes, which walks every open connection (those
   * waiting out a half-close included: thousands in a burst of short connections), so per-event
   * callers leave it out.
   */
  stats(buffered = true): SessionStats {
    const lastError = this.counters.lastError && { ...this.counters.lastError };
    if (!buffered) return { ...this.counters, lastError };
    let bytes = 0;
    for (const c of this.connections) bytes += c.bufferedBytes();
    return { ...this.counters, lastError, bufferedBytes: bytes };
  }

  /** Closes every listener and connection. */
  async stop(): Promise<void> {
    for (const h of [...this.held]) this.dropHeld(h, undefined);
    const listeners = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(listeners.map((l) => this.closeListener(l)));
  }

  /**
   * Stops accepting at once, lets open connections finish for up to `graceMs`, then closes what is
   * left. Held connections (no pod yet) are closed at once.
   */
  async drain(graceMs: number): Promise<void> {
    const closing = this.stopAccepting();
    const open = [...this.connections];
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(open.map((c) => c.done)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
    ]);
    clearTimeout(timer);
    for (const c of this.connections) c.abort();
    await Promise.all([...closing, ...open.map((c) => c.done)]);
  }

  /**
   * Closes the listeners (new clients are refused from now on) and held connections; open
   * connections go on. Resolves, per listener, once its connections are gone.
   */
  stopAccepting(): Promise<void>[] {
    for (const h of [...this.held]) this.dropHeld(h, undefined);
    const listeners = [...this.listeners.values()];
    this.listeners.clear();
    this.closingListeners.push(...listeners.map((l) => l.close()));
    return this.closingListeners;
  }

  private async closeListener(listener: RelayListener): Promise<void> {
    for (const h of [...this.held]) if (h.listener === listener) this.dropHeld(h, undefined);
    const open = [...this.connections].filter((c) => c.listenerId === listener.spec.id);
    for (const c of open) c.abort();
    await Promise.all([listener.close(), ...open.map((c) => c.done)]);
  }

  private accept(socket: net.Socket, listener: RelayListener): void {
    const remote = socket.remoteAddress ?? '';
    const rule = this.clientAccess?.refuses(remote);
    if (rule) {
      this.counters.refused++;
      socket.destroy();
      // The controller logs refusals, rate-limited and with the client's pod: here only at debug.
      this.logger.debug('refused a client at accept', { key: this.key, remote, rule });
      this.deps.emit({ type: 'clientRefused', key: this.key, address: remote, rule });
      return;
    }
    this.counters.total++;
    if (this.listeners.get(listener.spec.id) !== listener) {
      this.refuse(socket, 'its listener is closing');
      return;
    }
    this.counters.active++;
    if (this.targets.length > 0) {
      this.start(socket, listener, performance.now());
      return;
    }
    if (this.holdMs <= 0) {
      this.counters.active--;
      const why = this.noTargetReason ?? 'no ready pod';
      this.counters.lastError = { message: `connection refused: ${why}`, time: new Date(), kind: 'refused' };
      this.refuse(socket, why);
      return;
    }
    // No pod is ready (a rollout, a restart): hold the connection instead of failing it.
    this.hold(socket, listener, performance.now());
    this.logger.debug('connection held until a pod is ready', { key: this.key, remote });
  }

  /**
   * Holds an accepted connection (counted active) until a pod is ready, or fails it once it waited
   * holdMs since its client connected (`acceptedAt`, performance.now()).
   */
  private hold(socket: net.Socket, listener: RelayListener, acceptedAt: number, gone?: GoneAtDial): void {
    const holdMs = this.holdMs;
    const deadline = acceptedAt + holdMs;
    const h: HeldConnection = {
      socket,
      listener,
      acceptedAt,
      gone,
      timer: setTimeout(
        () => {
          if (gone) {
            // Its pod answered 404 and no other came: say so, as the failure it was.
            const msg = `${gone.error.message}; no other ready pod within ${holdMs / 1000} s`;
            this.dropHeld(h, msg, 'notFound');
            return;
          }
          const why = this.noTargetReason ? ` (${this.noTargetReason})` : '';
          this.dropHeld(h, `no ready pod within ${holdMs / 1000} s${why}`);
        },
        Math.max(0, deadline - performance.now()),
      ),
    };
    socket.once('close', () => this.dropHeld(h, undefined));
    this.held.add(h);
  }

  /**
   * A connection whose pod was gone when its tunnel was dialed, before anything reached it (its
   * client's bytes unread): it goes to another target, or waits for one within what is left of its
   * hold. Only this connection avoids that pod (each connection dials a pod at most once): the
   * session's targets are the plan's, and the event has the controller plan again at once, so a pod
   * that answers 404 while it exists is not dropped for every connection.
   */
  private podGone(conn: RelayConnection, err: PortForwardError): boolean {
    const listener = this.listeners.get(conn.listenerId);
    if (!listener || conn.socket.destroyed) return false;
    const gone: GoneAtDial = { pods: new Set([...(conn.avoid ?? []), podId(conn.target)]), error: err };
    const next = this.pick(gone.pods);
    if (next) this.start(conn.socket, listener, conn.acceptedAt, gone.pods, next);
    else if (this.holdMs > 0 && conn.acceptedAt + this.holdMs > performance.now())
      this.hold(conn.socket, listener, conn.acceptedAt, gone);
    else return false;
    const pod = `${conn.target.namespace}/${conn.target.name}`;
    this.logger.info(
      'the pod was gone before the connection reached it: it goes to another pod, or waits for one',
      { key: this.key, pod, error: err.message, waits: !next },
    );
    this.deps.emit({ type: 'podGone', key: this.key, message: err.message });
    return true;
  }

  /**
   * The pod for the next connection: the preferred one, or the next in turn when spreading; none
   * of `avoid` (pods that answered this connection 404). Undefined when no target is left.
   */
  private pick(avoid?: ReadonlySet<string>): PodTarget | undefined {
    const targets = avoid ? this.targets.filter((t) => !avoid.has(podId(t))) : this.targets;
    if (targets.length === 0) return undefined;
    if (this.loadBalance !== 'spread') return targets[0];
    const t = targets[this.next % targets.length];
    this.next = (this.next + 1) % this.targets.length;
    return t;
  }

  private start(
    socket: net.Socket,
    listener: RelayListener,
    acceptedAt: number,
    avoid?: ReadonlySet<string>,
    picked?: PodTarget,
  ): void {
    const target = picked ?? this.pick()!;
    const port = target.ports?.[listener.spec.id] ?? listener.spec.remotePort;
    const deps = {
      ...this.deps,
      logger: this.logger,
      onSent: (n: number) => (this.counters.bytesSent += n),
      onReceived: (n: number) => (this.counters.bytesReceived += n),
      onDialed: (ms: number, transport: TransportName) => {
        this.counters.transport = transport;
        this.deps.emit({ type: 'tunnelOpened', key: this.key, connectMs: ms, transport });
      },
    };
    const conn = new RelayConnection(socket, listener.spec.id, target, port, deps, acceptedAt);
    conn.avoid = avoid;
    this.connections.add(conn);
    this.logger.debug('connection accepted', { key: this.key, pod: target.name, listener: listener.spec.id });
    void conn.done.then((err) => this.closed(conn, err));
  }

  private refuse(socket: net.Socket, why: string): void {
    this.counters.failed++;
    socket.destroy();
    this.logger.info(`refused a client: ${why}`, { key: this.key, remote: socket.remoteAddress });
    this.deps.emit({ type: 'connectionClosed', key: this.key });
  }

  /** Sends held connections on once there is a target. */
  private releaseHeld(): void {
    if (this.targets.length === 0) return;
    for (const h of [...this.held]) {
      const dead = h.socket.destroyed || this.listeners.get(h.listener.spec.id) !== h.listener;
      const next = dead ? undefined : this.pick(h.gone?.pods);
      if (!dead && !next) continue; // every target answered it 404: it waits on for another
      this.held.delete(h);
      clearTimeout(h.timer);
      if (!next) {
        this.counters.active--;
        this.counters.failed++;
        h.socket.destroy();
        continue;
      }
      this.start(h.socket, h.listener, h.acceptedAt, h.gone?.pods, next);
    }
  }

  /** A held connection ends: timed out (`why`), or closed by its client or listener (undefined). */
  private dropHeld(
    h: HeldConnection,
    why: string | undefined,
    kind: 'timeout' | 'notFound' = 'timeout',
  ): void {
    if (!this.held.delete(h)) return;
    clearTimeout(h.timer);
    this.counters.active--;
    this.counters.failed++;
    h.socket.destroy();
    if (why) {
      this.counters.lastError = { message: why, time: new Date(), kind };
      this.logger.warn('held connection refused', { key: this.key, error: why });
      this.deps.emit({ type: 'tunnelError', key: this.key, message: why, kind });
    } else {
      this.deps.emit({ type: 'connectionClosed', key: this.key });
    }
  }

  private closed(conn: RelayConnection, err: PortForwardError | undefined): void {
    this.connections.delete(conn);
    if (err && conn.podGone && this.podGone(conn, err)) return; // still active: it waits or goes on
    if (conn.podGone) conn.socket.destroy();
    this.counters.active--;
    if (!err) {
      this.deps.emit({ type: 'connectionClosed', key: this.key });
      return;
    }
    this.counters.failed++;
    this.counters.lastError = { message: err.message, time: new Date(), kind: err.kind };
    this.logger.warn('tunnel failed', { key: this.key, kind: err.kind, error: err.message });
    this.deps.emit({ type: 'tunnelError', key: this.key, message: err.message, kind: err.kind });
  }
}

interface HeldConnection {
  socket: net.Socket;
  listener: RelayListener;
  /** When its client connected (performance.now()): its hold is counted from then. */
  acceptedAt: number;
  /** Set when it waits because its pod answered 404 at the dial. */
  gone?: GoneAtDial;
  timer: NodeJS.Timeout;
}

/** Pods that answered a connection's dial 404 (gone), and the latest such answer. */
interface GoneAtDial {
  pods: ReadonlySet<string>;
  error: PortForwardError;
}

/** One pod of one cluster, a re-created pod (new uid) apart (also how the engine counts retained pods). */
export function podId(t: PodTarget): string {
  return `${t.cluster?.id ?? ''}/${t.namespace}/${t.name}/${t.uid ?? ''}`;
}
