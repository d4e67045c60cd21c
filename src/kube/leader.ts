// Leader election over a coordination.k8s.io/v1 Lease, modelled on client-go's tools/leaderelection.
// Candidates read the Lease every retry period; one whose holder has not renewed for a lease duration
// (as measured here, see leader-record.ts) is taken over with a conditional write, so exactly one
// candidate wins. The leader renews every retry period and steps down once it could not renew for the
// renew deadline, which is shorter than the lease duration: it stops leading before anyone else may
// start. stop({ release: true }) steps down on purpose and empties the Lease, so a standby takes over
// on its next attempt instead of a lease duration later.
//
// Guarantees: at most one candidate that shares this Lease believes it leads at any time, provided no
// process is paused for longer than leaseDuration - renewDeadline; the callbacks run one at a time, in
// order (onStoppedLeading after the onStartedLeading before it has finished).
// Caveats: a paused process (a stopped VM, a debugger) may still believe it leads when it resumes until
// its next renewal fails; that is the classic limit of lease-based election, as in client-go.
import { ConfigError } from '../config/errors';
import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import type * as k8s from '@kubernetes/client-node';
import { errorMessage } from '../observability/logger';
import {
  claimRecord,
  mayAcquire,
  msUntilExpiry,
  Observation,
  observe,
  releasedRecord,
} from './leader-record';
import { KubeLeaseStore, LeaseConflictError, LeaseSnapshot, LeaseStore } from './leader-store';
import { realTimers, Timers, withTimeout } from './timers';

export { LeaseConflictError, KubeLeaseStore } from './leader-store';
export type { LeaseStore, LeaseSnapshot } from './leader-store';

/** The Lease the operator's replicas elect on, in their own namespace. */
export const DEFAULT_LEASE_NAME = 'portforward-operator-leader';

/** The Lease of the operators of one class: classes serve different forwards, so each elects its own. */
export function leaseName(className: string): string {
  return className ? `${DEFAULT_LEASE_NAME}-${className}` : DEFAULT_LEASE_NAME;
}

/** A candidate's identity: the pod's name (or the host's), made unique per process. */
export function candidateIdentity(): string {
  return `${process.env.POD_NAME ?? os.hostname()}_${randomUUID()}`;
}

export interface ElectionLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

export interface LeaderElectorOptions {
  /** Namespace of the Lease. */
  namespace: string;
  /** Name of the Lease. */
  name: string;
  /** This candidate's identity, unique among candidates (e.g. `${hostname}_${randomUUID()}`). */
  identity: string;
  /** Where the Lease lives: a KubeConfig (the usual case), or a LeaseStore (tests). */
  kubeConfig?: k8s.KubeConfig;
  store?: LeaseStore;
  /**
   * How long a standby waits, after it last saw the Lease change, before it takes the Lease over.
   * Written to the Lease rounded up to whole seconds; candidates honour the Lease's value. Default 15 s.
   */
  leaseDurationMs?: number;
  /** How long the leader keeps leading while renewals fail. Must be below leaseDurationMs. Default 10 s. */
  renewDeadlineMs?: number;
  /** Time between two attempts to acquire or renew. Must be below renewDeadlineMs. Default 2 s. */
  retryPeriodMs?: number;
  /** Called when this candidate starts leading. May be async; errors are logged. */
  onStartedLeading?: () => void | Promise<void>;
  /** Called when it stops leading (lost, or stop()); awaited by stop() before the Lease is released. */
  onStoppedLeading?: () => void | Promise<void>;
  /** Called when the holder this candidate observes changes ('' when the Lease was released). */
  onNewLeader?: (identity: string) => void;
  logger?: ElectionLogger;
  /** The monotonic clock and the timers of every wait and deadline (tests: virtual time). Default real. */
  timers?: Timers;
  /** Wall clock for the times written to the Lease (tests). Default new Date(). */
  wallClock?: () => Date;
  /** The jitter of a standby's wait, in [0, 1) (tests). Default Math.random. */
  random?: () => number;
}

const silent: ElectionLogger = { info: () => undefined, warn: () => undefined, debug: () => undefined };

/** Standbys wait retryPeriod * (1 + up to JITTER) between attempts, so they do not move in lockstep. */
const JITTER = 0.2;

export class LeaderElector {
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  private readonly store: LeaseStore;
  private readonly log: ElectionLogger;
  private readonly timers: Timers;
  private readonly wallClock: () => Date;
  private readonly random: () => number;
  private readonly leaseDurationSeconds: number;

  private leading = false;
  private observation: Observation | undefined;
  private observedHolder: string | undefined;
  /** Local time at the start of the last successful acquire or renew. */
  private lastRenewAt = 0;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** The callbacks, chained so they never overlap. */
  private transitions: Promise<void> = Promise.resolve();

  constructor(private readonly opts: LeaderElectorOptions) {
    this.identity = opts.identity;
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (!opts.identity) throw new ConfigError('leader election needs a non-empty identity');
    if (!opts.namespace || !opts.name)
      throw new ConfigError('leader election needs the Lease namespace and name');
    if (!(this.retryPeriodMs > 0))
      throw new ConfigError(`retryPeriodMs (${this.retryPeriodMs}) must be positive`);
    if (!(this.renewDeadlineMs > this.retryPeriodMs)) {
      throw new ConfigError(
        `renewDeadlineMs (${this.renewDeadlineMs}) must be greater than retryPeriodMs (${this.retryPeriodMs})`,
      );
    }
    if (!(this.leaseDurationMs > this.renewDeadlineMs)) {
      throw new ConfigError(
        `leaseDurationMs (${this.leaseDurationMs}) must be greater than renewDeadlineMs (${this.renewDeadlineMs})`,
      );
    }
    if (opts.store) this.store = opts.store;
    else if (opts.kubeConfig) this.store = new KubeLeaseStore(opts.kubeConfig, opts.namespace, opts.name);
    else throw new ConfigError('leader election needs a kubeConfig or a store');
    this.leaseDurationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    this.log = opts.logger ?? silent;
    this.timers = opts.timers ?? realTimers;
    this.wallClock = opts.wallClock ?? (() => new Date());
    this.random = opts.random ?? Math.random;
  }

  /** Whether this candidate leads now. False from the moment it could no longer be sure. */
  isLeader(): boolean {
    return this.leading;
  }

  /** The holder last observed in the Lease ('' when released; undefined before the first read). */
  leader(): string | undefined {
    return this.observedHolder;
  }

  /**
   * Campaigns until stop(): acquires the Lease, leads while it renews, and after losing it becomes a
   * candidate again. Resolves once stopped; never rejects (API failures are retried and logged).
   */
  run(): Promise<void> {
    if (this.loop) return this.loop;
    this.loop = this.campaign();
    return this.loop;
  }

  /**
   * Stops campaigning. A leader stops leading first (onStoppedLeading runs and is awaited); with
   * `release`, it then empties the Lease so that a standby takes over at once.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    await this.transitions;
    if (opts.release) await this.release();
  }

  private async campaign(): Promise<void> {
    while (!this.stopping) {
      if (!(await this.acquire())) break;
      this.setLeading(true);
      await this.renewWhileLeading();
      this.setLeading(false);
    }
  }

  /** Tries every retry period until the Lease is ours; false when stopped first. */
  private async acquire(): Promise<boolean> {
    this.log.info('waiting to acquire the leader Lease', {
      lease: this.store.description,
      identity: this.identity,
    });
    while (!this.stopping) {
      const started = this.timers.now();
      if (await this.tryAcquireOrRenew(this.renewDeadlineMs)) {
        this.lastRenewAt = started;
        return true;
      }
      await this.sleep(this.standbyDelay());
    }
    return false;
  }

  /**
   * Renews every retry period. Returns when stopped, when another holder is seen, or when no renewal
   * succeeded for the renew deadline.
   */
  private async renewWhileLeading(): Promise<void> {
    while (!this.stopping) {
      // The next attempt at the retry period, or at the deadline if that comes first.
      await this.sleep(
        Math.min(this.retryPeriodMs, this.lastRenewAt + this.renewDeadlineMs - this.timers.now()),
      );
      if (this.stopping) return;
      const started = this.timers.now();
      const left = this.lastRenewAt + this.renewDeadlineMs - started;
      const renewed = left > 0 && (await this.tryAcquireOrRenew(left));
      if (renewed) {
        this.lastRenewAt = started;
        continue;
      }
      if (this.observedHolder !== undefined && this.observedHolder !== this.identity) {
        this.log.warn('lost the leader Lease to another candidate', {
          lease: this.store.description,
          holder: this.observedHolder,
        });
        return;
      }
      if (this.timers.now() >= this.lastRenewAt + this.renewDeadlineMs) {
        this.log.warn('could not renew the leader Lease within the renew deadline; stepping down', {
          lease: this.store.description,
          renewDeadlineMs: this.renewDeadlineMs,
        });
        return;
      }
    }
  }

  /** One read and (when allowed) one conditional write. True when this candidate holds the Lease. */
  private async tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    const started = this.timers.now();
    const wallNow = this.wallClock();
    try {
      const current = await withTimeout(this.timers, this.store.get(), timeoutMs, 'reading the Lease');
      if (!current) {
        const created = await withTimeout(
          this.timers,
          this.store.create(claimRecord(undefined, this.identity, this.leaseDurationSeconds, wallNow)),
          timeoutMs - (this.timers.now() - started),
          'creating the Lease',
        );
        this.remember(created, true, started);
        return true;
      }
      this.remember(current, false);
      if (!mayAcquire(this.observation!, this.identity, this.timers.now(), this.leaseDurationMs))
        return false;
      const next = claimRecord(current.record, this.identity, this.leaseDurationSeconds, wallNow);
      const written = await withTimeout(
        this.timers,
        this.store.update(current, next),
        timeoutMs - (this.timers.now() - started),
        'writing the Lease',
      );
      this.remember(written, true, started);
      return true;
    } catch (err) {
      if (err instanceof LeaseConflictError) {
        this.log.debug('another candidate wrote the Lease first', { lease: this.store.description });
      } else {
        this.log.warn('leader election attempt failed', {
          lease: this.store.description,
          error: errorMessage(err),
        });
      }
      return false;
    }
  }

  /**
   * Records what was read or written. A write of ours counts as seen at the start of the attempt: the
   * API server applied it no earlier than that, so every other candidate's clock for it started later.
   */
  private remember(snap: LeaseSnapshot, ours: boolean, writtenAt = this.timers.now()): void {
    this.observation = ours
      ? observe(undefined, snap.record, writtenAt)
      : observe(this.observation, snap.record, this.timers.now());
    const holder = snap.record.holderIdentity;
    if (holder !== this.observedHolder) {
      this.observedHolder = holder;
      this.log.info(holder ? 'leader observed' : 'the leader Lease is free', {
        lease: this.store.description,
        holder,
      });
      try {
        this.opts.onNewLeader?.(holder);
      } catch (err) {
        this.log.warn('onNewLeader failed', { error: errorMessage(err) });
      }
    }
  }

  /** A standby's wait: the retry period with jitter, but no later than when the holder's lease runs out. */
  private standbyDelay(): number {
    const jittered = this.retryPeriodMs * (1 + this.random() * JITTER);
    const obs = this.observation;
    if (!obs || obs.record.holderIdentity === '') return jittered;
    const untilExpiry = msUntilExpiry(obs, this.timers.now(), this.leaseDurationMs);
    return Math.max(1, Math.min(jittered, untilExpiry + 1));
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.log.info(leading ? 'started leading' : 'stopped leading', {
      lease: this.store.description,
      identity: this.identity,
    });
    const callback = leading ? this.opts.onStartedLeading : this.opts.onStoppedLeading;
    const name = leading ? 'onStartedLeading' : 'onStoppedLeading';
    this.transitions = this.transitions.then(async () => {
      try {
        await callback?.();
      } catch (err) {
        this.log.warn(`${name} failed`, { error: errorMessage(err) });
      }
    });
  }

  /** Empties the Lease if this candidate still holds it. Failures are logged: the Lease then expires. */
  private async release(): Promise<void> {
    try {
      const current = await withTimeout(
        this.timers,
        this.store.get(),
        this.renewDeadlineMs,
        'reading the Lease',
      );
      if (!current || current.record.holderIdentity !== this.identity) return;
      const written = await withTimeout(
        this.timers,
        this.store.update(current, releasedRecord(current.record, this.wallClock())),
        this.renewDeadlineMs,
        'releasing the Lease',
      );
      this.remember(written, true, this.timers.now());
      this.log.info('released the leader Lease', { lease: this.store.description });
    } catch (err) {
      this.log.warn('could not release the leader Lease; it expires on its own', {
        lease: this.store.description,
        error: errorMessage(err),
      });
    }
  }

  /** Waits `ms` (at least 0), or less if stop() is called meanwhile. */
  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    ms = Math.max(0, ms);
    return new Promise((resolve) => {
      const done = (): void => {
        this.timers.clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      const timer = this.timers.setTimeout(done, ms);
      this.wake = done;
    });
  }
}
