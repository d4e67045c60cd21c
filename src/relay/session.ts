// One session: its listeners, its open connections and its counters.
import type * as net from 'node:net';
import { Cidr, matchesAny } from './cidr';
import { ConnectionDeps, RelayConnection } from './connection';
import type { PortForwardError } from './errors';
import { RelayListener } from './listener';
import type { RelayLogger } from './logger';
import type { ListenerSpec, ListenerState, PodRef, RelayEvent, SessionStats } from './types';

export interface SessionDeps extends Omit<ConnectionDeps, 'onSent' | 'onReceived'> {
  socketBufferBytes: number;
  emit(event: RelayEvent): void;
}

export class Session {
  private readonly listeners = new Map<string, RelayListener>();
  private readonly connections = new Set<RelayConnection>();
  private target: PodRef | undefined;
  private ranges: Cidr[] = [];
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
    this.logger = deps.logger;
  }

  /** Makes the listeners match `specs`; new connections use `target` and `ranges` from now on. */
  async apply(specs: ListenerSpec[], target: PodRef | undefined, ranges: Cidr[]): Promise<ListenerState[]> {
    this.target = target;
    this.ranges = ranges;
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
        if (state.state === 'error') this.logger.warn('listener not bound', { key: this.key, ...state });
        return state;
      }),
    );
  }

  stats(): SessionStats {
    let buffered = 0;
    for (const c of this.connections) buffered += c.bufferedBytes();
    const lastError = this.counters.lastError && { ...this.counters.lastError };
    return { ...this.counters, lastError, bufferedBytes: buffered };
  }

  /** Closes every listener and connection. */
  async stop(): Promise<void> {
    const listeners = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(listeners.map((l) => this.closeListener(l)));
  }

  private async closeListener(listener: RelayListener): Promise<void> {
    const open = [...this.connections].filter((c) => c.listenerId === listener.spec.id);
    for (const c of open) c.abort();
    await Promise.all([listener.close(), ...open.map((c) => c.done)]);
  }

  private accept(socket: net.Socket, listener: RelayListener): void {
    const remote = socket.remoteAddress ?? '';
    if (this.ranges.length > 0 && !matchesAny(remote, this.ranges)) {
      this.counters.refused++;
      socket.destroy();
      this.logger.info('refused a client outside allowedSourceRanges', { key: this.key, remote });
      this.deps.emit({ type: 'connectionClosed', key: this.key });
      return;
    }
    this.counters.total++;
    const target = this.target;
    if (!target || this.listeners.get(listener.spec.id) !== listener) {
      this.counters.failed++;
      socket.destroy();
      this.logger.info('refused a client: no target pod', { key: this.key, remote });
      this.deps.emit({ type: 'connectionClosed', key: this.key });
      return;
    }
    this.counters.active++;
    const conn = new RelayConnection(socket, listener.spec.id, target, listener.spec.remotePort, {
      ...this.deps,
      onSent: (n) => (this.counters.bytesSent += n),
      onReceived: (n) => (this.counters.bytesReceived += n),
    });
    this.connections.add(conn);
    this.logger.debug('connection accepted', { key: this.key, remote, listener: listener.spec.id });
    void conn.done.then((err) => this.closed(conn, err));
  }

  private closed(conn: RelayConnection, err: PortForwardError | undefined): void {
    this.connections.delete(conn);
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
