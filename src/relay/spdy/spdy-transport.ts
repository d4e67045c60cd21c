// SPDY/3.1 sessions to each pod, dialed before they are needed, and the connections they carry
// (ADR 6). One transport serves one way of dialing a session: a direct `Upgrade: SPDY/3.1`
// ('spdy') or the same over a WebSocket tunnel ('spdy-websocket').
//
// Guarantees
// - No round trip per connection: a new connection opens its two streams on a session already open
//   (the SYN_STREAMs and its first bytes leave in one write). Each pod the engine retains has
//   `warmSessions` sessions with no connection on them, re-dialed (with backoff) when they die.
// - Isolation: a connection takes a session of its own while one is idle, and shares one (up to
//   `maxStreamsPerSession` connections) only while a new session is being dialed. A session whose
//   socket has not drained for `congestedAfterMs`, or that missed a PING reply, takes no new connections:
//   spdystream has no flow control, and a target that stops reading stalls its whole session.
// - A connection shares an open session with streams only if no write found that session's socket
//   full (or 64 KiB queued) for `quietBeforeSharingMs` (no upload under way); otherwise it waits for
//   the session being dialed. Its frames would queue behind megabytes of another connection's upload,
//   and if that upload's target stalls before they get through (spdystream stalls within ~0.3 s,
//   congestedAfterMs cannot see it sooner), the new connection is stuck with it: that was
//   test/e2e/transport.test.ts' failure. If the dial fails (or the pod's dials are failing), it
//   shares after all: no connection is refused for the rule.
// - A slow or stalled target is never cut by the keep-alive: a missed PING only stops new
//   connections going to that session; its connections go on until the pod or the client ends them.
//   Dead peers are found by TCP keep-alive (and an idle session that misses a PING is re-dialed).
// - A session that fails (API server restart, reset, GOAWAY) fails only the connections it carried;
//   the next connection gets another session.
// - Idle cost is bounded (warm-pods.ts, ADR 14): a pod unused for `warmIdleMs`, or beyond
//   `maxWarmSessions`, goes cold; its next connection pays the dial. No connection is refused for it.
// - Sessions to pods no longer retained take no new connections and close once their connections
//   are done. So do sessions on which the server keeps sending for a stream we reset (a client that
//   left in the middle of a download, on a node that copies until the pod stops): closing the session
//   is what stops that copy, and new connections do not share their session with it.
//
// Caveats
// - A connection sharing a session with one whose target stalls later (a quiet session when it was
//   placed) is stalled with it.
import type * as net from 'node:net';
import { PortForwardError } from '../errors';
import { openPortForward } from './portforward';
import type { SpdySession } from './spdy-session';
import { SpdyTunnel } from './spdy-tunnel';
import { WarmPolicy } from './warm-pods';
import { abortable, podKey, PodSessions, type Pooled } from './pod-sessions';
import type { SpdyTransportOptions } from './spdy-transport-options';
import type { RelayTunnel, StreamTarget, Transport, TunnelHooks } from '../transport';
import type { PodRef } from '../types';

export type { SessionDialer, SpdyTransportOptions } from './spdy-transport-options';

export class SpdyTransport implements Transport {
  readonly name: 'spdy' | 'spdy-websocket';
  private readonly pods = new Map<string, PodSessions>();
  private readonly warmth: WarmPolicy<PodSessions>;
  private readonly o: Required<Omit<SpdyTransportOptions, 'name' | 'dial' | 'logger'>>;
  private readonly healthTimer: NodeJS.Timeout;
  private readonly closing = new AbortController();
  private closed = false;

  constructor(private readonly options: SpdyTransportOptions) {
    this.name = options.name;
    this.o = {
      warmSessions: options.warmSessions ?? 1,
      maxStreamsPerSession: options.maxStreamsPerSession ?? 8,
      congestedAfterMs: options.congestedAfterMs ?? 250,
      quietBeforeSharingMs: options.quietBeforeSharingMs ?? 1_000,
      pingIntervalMs: options.pingIntervalMs ?? 10_000,
      pingTimeoutMs: options.pingTimeoutMs ?? 5_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      redialDelayMs: options.redialDelayMs ?? 250,
      halfCloseTimeoutMs: options.halfCloseTimeoutMs ?? 5_000,
      warmIdleMs: options.warmIdleMs ?? 0,
      maxWarmSessions: options.maxWarmSessions ?? 0,
    };
    this.warmth = new WarmPolicy(
      { idleMs: this.o.warmIdleMs, maxSessions: this.o.maxWarmSessions, perPod: this.o.warmSessions },
      (pod) => this.cool(pod),
    );
    this.healthTimer = setInterval(() => this.checkHealth(), this.o.pingIntervalMs);
    this.healthTimer.unref();
  }

  async connect(
    socket: net.Socket,
    target: StreamTarget,
    hooks: TunnelHooks,
    signal: AbortSignal,
    attempt = 1,
  ): Promise<RelayTunnel> {
    if (this.closed) throw new PortForwardError('network', 'the relay is closing');
    const pod = this.podSessions({ namespace: target.namespace, name: target.pod, uid: target.uid });
    if (attempt === 1) this.warmth.used(pod, 1);
    let pooled = this.pick(pod);
    pooled.streams++;
    let session: SpdySession;
    try {
      session = pooled.session ?? (await abortable(pooled.ready!, signal, target));
    } catch (err) {
      pooled.streams--;
      // The dial this connection waited for (rather than share a session with an upload) failed:
      // sharing is better than failing. No new dial here: the re-dial's backoff stays in charge.
      const busy = signal.aborted ? undefined : this.candidates(pod, false).open;
      if (!busy?.session) {
        this.warmth.used(pod, -1);
        throw err;
      }
      pooled = busy;
      pooled.streams++;
      session = busy.session;
    }
    if (session.stats().closed || session.stats().draining) {
      pooled.streams--;
      if (attempt >= 3) {
        this.warmth.used(pod, -1);
        throw new PortForwardError(
          'network',
          `port-forward to pod ${pod.key}: every SPDY session closed at once`,
        );
      }
      // It died between the pick and now: once more, on whatever session is healthy.
      return this.connect(socket, target, hooks, signal, attempt + 1);
    }
    this.keepWarm(pod);
    let conn;
    try {
      conn = openPortForward(session, target.port, pooled.nextRequestId++);
    } catch (err) {
      pooled.streams--;
      this.warmth.used(pod, -1);
      throw err;
    }
    // A connection counts against its session until the client stops sending: a half-closed one
    // (waiting for a pod that may never answer the FIN) puts no load on it.
    return new SpdyTunnel(socket, conn, this.name, hooks, this.o.halfCloseTimeoutMs, undefined, () => {
      pooled.streams--;
      this.warmth.used(pod, -1);
      if (pooled.streams > 0) return;
      pooled.idleSince = Date.now();
      if (pooled.orphaned || this.surplus(pod)) this.retire(pod, pooled);
    });
  }

  /**
   * Whether a session just idle is one too many under a cap (maxWarmSessions): its pod went cold (or
   * is no longer a target), so no idle session is kept for it. A warm pod's idle sessions beyond
   * `warmSessions` wait idleTimeoutMs, as without a cap: retiring the session a connection just used
   * while the one dialed for the next connection is still on its way made every connection of a
   * sequence wait for a dial (connect p50 1.9 -> 14 ms on kwok).
   */
  private surplus(pod: PodSessions): boolean {
    return this.o.maxWarmSessions > 0 && (pod.cold || !pod.retained);
  }

  /** What each session is doing now, per pod (for tests, metrics and debugging). */
  sessions(): {
    pod: string;
    open: boolean;
    streams: number;
    queuedBytes: number;
    lastFullAt: number;
    takesNew: boolean;
  }[] {
    const out = [];
    for (const pod of this.pods.values())
      for (const p of pod.sessions)
        out.push({
          pod: pod.key,
          open: !!p.session,
          streams: p.streams,
          queuedBytes: p.session?.stats().queuedBytes ?? 0,
          lastFullAt: p.session?.stats().lastFullAt ?? 0,
          takesNew: this.usable(p),
        });
    return out;
  }

  /**
   * Whether a new connection to `pod` would start on a session already open (no dial): the pod has
   * an open session that takes new connections.
   */
  warm(pod: PodRef & { uid?: string }): boolean {
    const p = this.pods.get(podKey(pod));
    if (!p) return false;
    for (const s of p.sessions) if (s.session && this.usable(s)) return true;
    return false;
  }

  retain(pods: readonly (PodRef & { uid?: string })[]): void {
    const wanted = new Set<string>();
    for (const p of pods) {
      const pod = this.podSessions(p);
      wanted.add(pod.key);
      this.warmth.retain(pod);
      this.keepWarm(pod);
    }
    for (const pod of this.pods.values()) {
      if (wanted.has(pod.key)) continue;
      this.warmth.release(pod);
      clearTimeout(pod.redialTimer);
      for (const p of pod.sessions) this.retire(pod, p);
    }
    this.warmth.enforceCap();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    clearInterval(this.healthTimer);
    const ended: Promise<unknown>[] = [];
    for (const pod of this.pods.values()) {
      clearTimeout(pod.redialTimer);
      for (const p of pod.sessions) {
        p.session?.destroy();
        if (p.ready)
          ended.push(
            p.ready.then(
              (s) => s.destroy(),
              () => undefined,
            ),
          );
      }
    }
    this.pods.clear();
    await Promise.all(ended);
  }

  /**
   * The session for a new connection: an open idle one; else the least loaded open one with room (no
   * round trip, while keepWarm dials an idle one); else one being dialed with room; else a new dial.
   * With `quiet` (unless the pod's dials are failing), an open session whose socket was full in the
   * last quietBeforeSharingMs while it still has streams (an upload under way) is passed over.
   */
  private pick(pod: PodSessions): Pooled {
    const { open, dialing } = this.candidates(pod, pod.failures === 0);
    return open ?? dialing ?? this.dial(pod);
  }

  /** The least loaded usable open session and session being dialed of `pod`; dials nothing. */
  private candidates(pod: PodSessions, quiet: boolean): { open?: Pooled; dialing?: Pooled } {
    let open: Pooled | undefined;
    let dialing: Pooled | undefined;
    const now = Date.now();
    for (const p of pod.sessions) {
      if (!this.usable(p)) continue;
      if (p.session) {
        // Streams still open, a half-closed upload's included, behind a socket full a moment ago.
        const s = p.session.stats();
        if (quiet && s.openStreams > 0 && now - s.lastFullAt < this.o.quietBeforeSharingMs) continue;
        if (!open || p.streams < open.streams) open = p;
      } else if (!dialing || p.streams < dialing.streams) {
        dialing = p;
      }
    }
    return { open, dialing };
  }

  private usable(p: Pooled): boolean {
    if (p.unresponsive || p.orphaned || p.streams >= this.o.maxStreamsPerSession) return false;
    if (!p.session) return !!p.ready;
    const s = p.session.stats();
    return !s.closed && !s.draining && s.writeBlockedMs < this.o.congestedAfterMs;
  }

  /** No idle session kept for `pod` until its next connection; sessions carrying connections go on. */
  private cool(pod: PodSessions): void {
    clearTimeout(pod.redialTimer);
    pod.redialTimer = undefined;
    for (const p of pod.sessions) if (p.streams === 0) this.retire(pod, p);
  }

  /** Keeps `warmSessions` idle sessions (dialed or dialing) for a retained or busy pod. */
  private keepWarm(pod: PodSessions): void {
    if (this.closed || pod.redialTimer || pod.cold) return;
    let idle = 0;
    for (const p of pod.sessions) if (p.streams === 0 && this.usable(p)) idle++;
    for (; idle < this.o.warmSessions; idle++) this.dial(pod);
  }

  private dial(pod: PodSessions): Pooled {
    const p: Pooled = {
      session: undefined,
      ready: undefined,
      streams: 0,
      unresponsive: false,
      orphaned: false,
      idleSince: Date.now(),
      nextRequestId: 0,
    };
    p.ready = this.options.dial(pod.pod, this.closing.signal).then(
      (session) => {
        p.ready = undefined;
        p.session = session;
        pod.failures = 0;
        session.once('close', (err) => this.onClosed(pod, p, err));
        session.once('orphanFlow', () => {
          // Closing the session is what stops the server's copy; its connections finish first.
          p.orphaned = true;
          this.options.logger.debug('SPDY session carries data for a reset stream; retiring it', {
            pod: pod.key,
            streams: p.streams,
          });
          if (p.streams === 0) this.retire(pod, p);
          this.keepWarm(pod);
        });
        if (this.closed || !pod.sessions.has(p)) session.destroy();
        return session;
      },
      (err: unknown) => {
        pod.sessions.delete(p);
        pod.failures++;
        const e = err instanceof PortForwardError ? err : new PortForwardError('network', String(err));
        if (!this.closed)
          this.options.logger.debug('SPDY session dial failed', { pod: pod.key, error: e.message });
        this.scheduleRedial(pod);
        throw e;
      },
    );
    p.ready.catch(() => undefined); // a warm dial nobody waits for must not go unhandled
    pod.sessions.add(p);
    return p;
  }

  private onClosed(pod: PodSessions, p: Pooled, err: PortForwardError | undefined): void {
    pod.sessions.delete(p);
    if (err && !this.closed) {
      this.options.logger.debug('SPDY session ended', {
        pod: pod.key,
        error: err.message,
        streams: p.streams,
      });
    }
    if (pod.retained) this.keepWarm(pod);
    else if (pod.sessions.size === 0) this.pods.delete(pod.key);
  }

  private scheduleRedial(pod: PodSessions): void {
    if (this.closed || !pod.retained || pod.redialTimer) return;
    const delay = Math.min(30_000, this.o.redialDelayMs * 2 ** Math.min(pod.failures - 1, 8));
    pod.redialTimer = setTimeout(() => {
      pod.redialTimer = undefined;
      if (pod.retained) this.keepWarm(pod);
    }, delay);
    pod.redialTimer.unref();
  }

  /** No new connections on `p`; it closes once its connections are done. */
  private retire(pod: PodSessions, p: Pooled): void {
    if (p.session) p.session.close();
    else
      void p.ready?.then(
        (s) => s.close(),
        () => undefined,
      );
    if (p.streams === 0 && !p.session) pod.sessions.delete(p);
  }

  /** PINGs every session: marks the slow ones, re-dials dead idle ones, closes surplus idle ones. */
  private checkHealth(): void {
    const now = Date.now();
    this.warmth.coolIdle();
    for (const pod of this.pods.values()) {
      let idle = 0;
      for (const p of pod.sessions) {
        const session = p.session;
        if (!session) continue;
        if (p.streams === 0 && !p.unresponsive) {
          idle++;
          if (idle > this.o.warmSessions || !pod.retained || pod.cold) {
            if (now - p.idleSince >= this.o.idleTimeoutMs || !pod.retained || pod.cold) {
              this.retire(pod, p);
              continue;
            }
          }
        }
        session.ping(this.o.pingTimeoutMs).then(
          () => (p.unresponsive = false),
          () => {
            if (session.stats().closed) return;
            p.unresponsive = true;
            // Nobody to hurt: an idle session that does not answer is replaced. One with
            // connections keeps them; it only takes no new ones.
            if (session.stats().openStreams === 0) {
              session.destroy(new PortForwardError('timeout', 'the SPDY session stopped answering PINGs'));
            } else {
              this.keepWarm(pod);
            }
          },
        );
      }
    }
  }

  private podSessions(p: PodRef & { uid?: string }): PodSessions {
    const key = podKey(p);
    let pod = this.pods.get(key);
    if (!pod) {
      pod = new PodSessions({ namespace: p.namespace, name: p.name }, key);
      this.pods.set(key, pod);
    }
    return pod;
  }
}
