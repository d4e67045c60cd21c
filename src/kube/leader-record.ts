// The rules of leader election over a Lease, as pure functions (after client-go's tools/leaderelection):
// who may take or keep the Lease, and what a holder writes. Expiry is judged on the local monotonic
// clock, from when this process last saw the record change, never from the holder's renewTime: two
// machines' clocks may disagree, but each one measures its own elapsed time well.

/** The election fields of a Lease's spec. Times are as the API server returns them (RFC 3339, micro). */
export interface LeaderRecord {
  /** '' when nobody holds the Lease (it was released). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

/** The record last read, and when (local monotonic ms) it was first seen in that form. */
export interface Observation {
  record: LeaderRecord;
  key: string;
  at: number;
}

/** Identity of a record's content: any write by any holder changes it (renewTime moves). */
export function recordKey(r: LeaderRecord): string {
  return JSON.stringify([
    r.holderIdentity,
    r.leaseDurationSeconds,
    r.acquireTime,
    r.renewTime,
    r.leaseTransitions,
  ]);
}

/**
 * The observation after reading `record` at local time `now`: the clock restarts only when the record
 * changed, so a holder that stopped renewing is seen as expired one lease duration after its last write
 * was first noticed here.
 */
export function observe(prev: Observation | undefined, record: LeaderRecord, now: number): Observation {
  const key = recordKey(record);
  if (prev && prev.key === key) return prev;
  return { record, key, at: now };
}

/** Milliseconds until the observed holder's lease runs out here (0 or less: expired). */
export function msUntilExpiry(obs: Observation, now: number, fallbackDurationMs: number): number {
  const seconds = obs.record.leaseDurationSeconds;
  const durationMs = seconds > 0 ? seconds * 1000 : fallbackDurationMs;
  return obs.at + durationMs - now;
}

/**
 * Whether `identity` may write the Lease now: nobody holds it, or `identity` already does, or the
 * holder's lease ran out without a renewal seen here.
 */
export function mayAcquire(
  obs: Observation,
  identity: string,
  now: number,
  fallbackDurationMs: number,
): boolean {
  const holder = obs.record.holderIdentity;
  if (holder === '' || holder === identity) return true;
  return msUntilExpiry(obs, now, fallbackDurationMs) <= 0;
}

/** The record `identity` writes to take or renew the Lease at wall time `wallNow`. */
export function claimRecord(
  current: LeaderRecord | undefined,
  identity: string,
  leaseDurationSeconds: number,
  wallNow: Date,
): LeaderRecord {
  const time = microTime(wallNow);
  if (current && current.holderIdentity === identity) {
    return {
      holderIdentity: identity,
      leaseDurationSeconds,
      acquireTime: current.acquireTime ?? time,
      renewTime: time,
      leaseTransitions: current.leaseTransitions,
    };
  }
  return {
    holderIdentity: identity,
    leaseDurationSeconds,
    acquireTime: time,
    renewTime: time,
    // Creating the Lease is no transition; every change of holder after that is one.
    leaseTransitions: current ? current.leaseTransitions + 1 : 0,
  };
}

/**
 * The record a holder writes when it steps down on purpose: no holder, so a standby takes the Lease on
 * its next attempt instead of waiting out the lease duration.
 */
export function releasedRecord(current: LeaderRecord, wallNow: Date): LeaderRecord {
  const time = microTime(wallNow);
  return {
    holderIdentity: '',
    leaseDurationSeconds: 1,
    acquireTime: time,
    renewTime: time,
    leaseTransitions: current.leaseTransitions,
  };
}

/** metav1.MicroTime's wire form: RFC 3339 with exactly six fractional digits. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/Z$/, '000Z');
}
