// Which retained pods keep an idle pre-dialed session (issue 24, ADR 14). Each such session is a
// long-lived upgraded connection through kube-apiserver to a node: its cost lands on them, not on
// us. So a pod nobody has connected to for `idleMs` goes cold, and at most `maxSessions` idle sessions
// are kept (the least recently used pods go cold first). A cold pod's next connection makes it warm
// again; that connection pays the dial.
//
// Guarantees
// - Only idle sessions are ever closed for it (the `cool` callback's business); nothing here refuses or
//   delays a connection.
// - A pod with a connection open is never cold for idleness; the cap may cool it (its busy sessions
//   go on, and no idle one is kept beside them).
// - The pod whose connection just started is the last the cap cools.
//
// Caveats
// - Idleness is checked when `coolIdle` runs (the transport's health tick, every PING interval):
//   a pod goes cold up to one interval after `idleMs`.

/** What the policy reads and writes of a pod's sessions. */
export interface WarmState {
  readonly key: string;
  /** Some forward may send new connections to it (the engine's retain()). */
  retained: boolean;
  /** No idle session is kept for it until its next connection. */
  cold: boolean;
  /** When a connection last started or ended (or the pod was first retained). */
  lastUsed: number;
  /** Connections open now, on any of its sessions. */
  connections: number;
}

export interface WarmPolicyOptions {
  /** A retained pod without a connection for this long goes cold. 0: never. */
  idleMs: number;
  /** Idle sessions kept at most across all pods. 0: no cap. */
  maxSessions: number;
  /** Idle sessions one warm pod keeps. */
  perPod: number;
}

export class WarmPolicy<P extends WarmState> {
  /** Retained pods that are not cold, least recently used first (a Map keeps insertion order). */
  private readonly lru = new Map<string, P>();

  constructor(
    private readonly o: WarmPolicyOptions,
    /** Closes the idle sessions of a pod that just went cold. */
    private readonly cool: (pod: P) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Pods kept warm now. */
  size(): number {
    return this.lru.size;
  }

  /** `pod` is now a target of some forward: warm, most recently used. */
  retain(pod: P): void {
    if (pod.retained) return;
    pod.retained = true;
    pod.cold = false;
    pod.lastUsed = this.now();
    this.lru.set(pod.key, pod);
  }

  /** `pod` is no longer a target: it leaves the policy (its sessions are retired by the caller). */
  release(pod: P): void {
    pod.retained = false;
    this.lru.delete(pod.key);
  }

  /** A connection to `pod` starts (+1) or ends (-1). */
  used(pod: P, delta: 1 | -1): void {
    pod.connections += delta;
    pod.lastUsed = this.now();
    if (!pod.retained) return;
    if (delta < 0 && pod.cold) return; // the end of a connection does not warm a cold pod
    pod.cold = false;
    this.lru.delete(pod.key); // re-inserted last: the most recently used
    this.lru.set(pod.key, pod);
    if (delta > 0) this.enforceCap();
  }

  /** Cools the least recently used pods while more idle sessions than the cap would be kept. */
  enforceCap(): void {
    if (this.o.maxSessions <= 0) return;
    while (this.lru.size * this.o.perPod > this.o.maxSessions) {
      const lru = this.lru.values().next().value;
      if (!lru) break;
      this.makeCold(lru);
    }
  }

  /** Cools every warm pod without a connection for idleMs. */
  coolIdle(): void {
    if (this.o.idleMs <= 0) return;
    const now = this.now();
    for (const pod of [...this.lru.values()]) {
      // Least recently used first: the first pod used recently enough ends the walk.
      if (now - pod.lastUsed < this.o.idleMs) break;
      if (pod.connections === 0) this.makeCold(pod);
    }
  }

  private makeCold(pod: P): void {
    pod.cold = true;
    this.lru.delete(pod.key);
    this.cool(pod);
  }
}
