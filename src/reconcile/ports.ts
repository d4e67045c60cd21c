// Local port bookkeeping across all PortForwards: ports requested in specs, ports recorded in status
// (kept across operator restarts) and ports allocated from --port-range. Two PortForwards never get
// the same port from the allocator, and an allocated port stays with its listener until released.

export interface PortRange {
  min: number;
  max: number;
}

export class PortAllocator {
  /** port -> owner "key#listenerId" */
  private readonly owners = new Map<number, string>();
  /** owner -> port */
  private readonly byOwner = new Map<string, number>();
  /** Ports found taken by other programs; skipped by allocation for a while. */
  private readonly busy = new Map<number, number>();
  private cursor: number;

  constructor(
    private readonly range: PortRange,
    private readonly busyForMs = 60_000,
  ) {
    this.cursor = range.min;
  }

  /** The port that owner holds, if any. */
  portOf(key: string, listenerId: string): number | undefined {
    return this.byOwner.get(owner(key, listenerId));
  }

  /** The owner of a port, if the allocator knows one. */
  ownerOf(port: number): string | undefined {
    return this.owners.get(port);
  }

  /**
   * Claims `port` for the listener (a requested or recorded port). Returns false when another
   * listener holds it.
   */
  claim(key: string, listenerId: string, port: number): boolean {
    const o = owner(key, listenerId);
    const holder = this.owners.get(port);
    if (holder !== undefined && holder !== o) return false;
    this.releaseOwner(o);
    this.owners.set(port, o);
    this.byOwner.set(o, port);
    return true;
  }

  /** The listener's current port, else the next free one of the range; undefined when the range is full. */
  allocate(key: string, listenerId: string, now = Date.now()): number | undefined {
    const o = owner(key, listenerId);
    const held = this.byOwner.get(o);
    if (held !== undefined) return held;
    const size = this.range.max - this.range.min + 1;
    for (let i = 0; i < size; i++) {
      const port = this.range.min + ((this.cursor - this.range.min + i) % size);
      if (this.owners.has(port)) continue;
      const busyUntil = this.busy.get(port);
      if (busyUntil !== undefined && busyUntil > now) continue;
      this.busy.delete(port);
      this.cursor = port + 1 > this.range.max ? this.range.min : port + 1;
      this.owners.set(port, o);
      this.byOwner.set(o, port);
      return port;
    }
    return undefined;
  }

  /** The listener could not bind its allocated port (another program has it): let go and skip it a while. */
  markBusy(key: string, listenerId: string, now = Date.now()): void {
    const o = owner(key, listenerId);
    const port = this.byOwner.get(o);
    if (port === undefined) return;
    this.busy.set(port, now + this.busyForMs);
    this.releaseOwner(o);
  }

  /** Lets go of the listener's port (it is no longer wanted). */
  releaseListener(key: string, listenerId: string): void {
    this.releaseOwner(owner(key, listenerId));
  }

  inRange(port: number): boolean {
    return port >= this.range.min && port <= this.range.max;
  }

  /** Releases every port of a PortForward except those of the listeners named in `keep`. */
  release(key: string, keep: ReadonlySet<string> = new Set()): void {
    const prefix = `${key}#`;
    for (const o of [...this.byOwner.keys()]) {
      if (o.startsWith(prefix) && !keep.has(o.slice(prefix.length))) this.releaseOwner(o);
    }
  }

  private releaseOwner(o: string): void {
    const port = this.byOwner.get(o);
    if (port === undefined) return;
    this.byOwner.delete(o);
    if (this.owners.get(port) === o) this.owners.delete(port);
  }
}

function owner(key: string, listenerId: string): string {
  return `${key}#${listenerId}`;
}
