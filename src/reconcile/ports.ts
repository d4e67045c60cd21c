// Local port bookkeeping across all PortForwards: ports requested in specs, ports recorded in status
// (kept across operator restarts) and ports allocated from --port-range. Two PortForwards never get
// the same port from the allocator, and an allocated port stays with its listener until released.

import type { ListenerSpec, ListenerState } from '../relay';
import type { PlannedListener } from './plan';

export interface PortRange {
  min: number;
  max: number;
}

/** Who holds a port: one listener of one PortForward. */
export interface ListenerOwner {
  key: string;
  listenerId: string;
}

export class PortAllocator {
  private readonly owners = new Map<number, ListenerOwner>();
  /** PortForward key -> listener id -> port */
  private readonly byKey = new Map<string, Map<string, number>>();
  /** Ports found taken by other programs; skipped by allocation for a while. */
  private readonly busy = new Map<number, number>();
  private cursor: number;

  constructor(
    private readonly range: PortRange,
    private readonly busyForMs = 60_000,
  ) {
    this.cursor = range.min;
  }

  /** The port that listener holds, if any. */
  portOf(key: string, listenerId: string): number | undefined {
    return this.byKey.get(key)?.get(listenerId);
  }

  /** The listener that holds a port, if the allocator knows one. */
  ownerOf(port: number): ListenerOwner | undefined {
    const o = this.owners.get(port);
    return o && { ...o };
  }

  /**
   * Claims `port` for the listener (a requested or recorded port). Returns false when another
   * listener holds it.
   */
  claim(key: string, listenerId: string, port: number): boolean {
    const holder = this.owners.get(port);
    if (holder !== undefined && !(holder.key === key && holder.listenerId === listenerId)) return false;
    this.releaseListener(key, listenerId);
    this.hold(key, listenerId, port);
    return true;
  }

  /** The listener's current port, else the next free one of the range; undefined when the range is full. */
  allocate(key: string, listenerId: string, now = Date.now()): number | undefined {
    const held = this.portOf(key, listenerId);
    if (held !== undefined) return held;
    const size = this.range.max - this.range.min + 1;
    for (let i = 0; i < size; i++) {
      const port = this.range.min + ((this.cursor - this.range.min + i) % size);
      if (this.owners.has(port)) continue;
      const busyUntil = this.busy.get(port);
      if (busyUntil !== undefined && busyUntil > now) continue;
      this.busy.delete(port);
      this.cursor = port + 1 > this.range.max ? this.range.min : port + 1;
      this.hold(key, listenerId, port);
      return port;
    }
    return undefined;
  }

  /** The listener could not bind its allocated port (another program has it): let go and skip it a while. */
  markBusy(key: string, listenerId: string, now = Date.now()): void {
    const port = this.portOf(key, listenerId);
    if (port === undefined) return;
    this.busy.set(port, now + this.busyForMs);
    this.releaseListener(key, listenerId);
  }

  /** Lets go of the listener's port (it is no longer wanted). */
  releaseListener(key: string, listenerId: string): void {
    const ports = this.byKey.get(key);
    const port = ports?.get(listenerId);
    if (port === undefined) return;
    ports!.delete(listenerId);
    if (ports!.size === 0) this.byKey.delete(key);
    const o = this.owners.get(port);
    if (o?.key === key && o.listenerId === listenerId) this.owners.delete(port);
  }

  inRange(port: number): boolean {
    return port >= this.range.min && port <= this.range.max;
  }

  /** Releases every port of a PortForward except those of the listeners named in `keep`. */
  release(key: string, keep: ReadonlySet<string> = new Set()): void {
    for (const id of [...(this.byKey.get(key)?.keys() ?? [])]) {
      if (!keep.has(id)) this.releaseListener(key, id);
    }
  }

  private hold(key: string, listenerId: string, port: number): void {
    this.owners.set(port, { key, listenerId });
    let ports = this.byKey.get(key);
    if (!ports) this.byKey.set(key, (ports = new Map<string, number>()));
    ports.set(listenerId, port);
  }
}

/** A listener spec with its local port, or a listener error when no port can be had. */
export function assignPort(a: PortAllocator, key: string, l: PlannedListener): ListenerSpec | ListenerState {
  const asSpec = (localPort: number): ListenerSpec => ({
    id: l.id,
    address: l.address,
    localPort,
    remotePort: l.remotePort,
  });
  if (l.requestedPort !== undefined) {
    if (!a.claim(key, l.id, l.requestedPort)) {
      return {
        id: l.id,
        state: 'error',
        address: l.address,
        localPort: l.requestedPort,
        code: 'PORT_TAKEN',
        message: 'taken',
      };
    }
    return asSpec(l.requestedPort);
  }
  // A port this listener holds or held is kept when it is one of the range: not one it once asked
  // for with localPort (removed since), nor one of a --port-range the operator no longer has.
  const held = a.portOf(key, l.id);
  if (held !== undefined && a.inRange(held)) return asSpec(held);
  if (held !== undefined) a.releaseListener(key, l.id);
  const recorded = recordedPort(a, l);
  if (recorded !== undefined && a.claim(key, l.id, recorded)) return asSpec(recorded);
  const port = a.allocate(key, l.id);
  if (port === undefined) {
    return {
      id: l.id,
      state: 'error',
      address: l.address,
      localPort: 0,
      code: 'RANGE_FULL',
      message: 'every port of --port-range is in use; widen the range or delete unused PortForwards',
    };
  }
  return asSpec(port);
}

/**
 * The port recorded in status for a listener without localPort, if this operator gives it back: only
 * one of its --port-range. A port outside it was given by another operator (of another class, taking
 * the forward over, or with another range), whose listener may still hold it on this host.
 */
export function recordedPort(a: PortAllocator, l: PlannedListener): number | undefined {
  return l.recordedPort !== undefined && a.inRange(l.recordedPort) ? l.recordedPort : undefined;
}
