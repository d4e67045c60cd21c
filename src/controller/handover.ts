// The first steps of a shutdown with leader election: stop accepting (the work queue drains, the
// listeners close), then release the Lease so that a standby binds the ports at once. The release
// must not wait on the first step forever: a reconcile or the relay's worker that never answers would
// otherwise keep this replica renewing the Lease through the whole termination grace while no
// replica serves (seen on the real node: the standby waited out 40 s of a rollout).
//
// Guarantees
// - `release` runs exactly once: after `stopAccepting` settles, or `deadlineMs` after it started,
//   whichever comes first; a failure of `stopAccepting` is reported and does not stop the release.
// - Resolves with what happened, for the caller to log; never rejects unless `release` does.
import { Timers, withTimeout } from '../kube/timers';

export type StopOutcome = { closed: true } | { closed: false; error: string };

export async function stopThenRelease(
  timers: Timers,
  stopAccepting: () => Promise<void> | undefined,
  release: () => Promise<void> | undefined,
  deadlineMs: number,
): Promise<StopOutcome> {
  let outcome: StopOutcome = { closed: true };
  const stopping = stopAccepting();
  if (stopping) {
    try {
      await withTimeout(timers, stopping, deadlineMs, 'closing the listeners');
    } catch (err) {
      outcome = { closed: false, error: err instanceof Error ? err.message : String(err) };
    }
  }
  await release();
  return outcome;
}
