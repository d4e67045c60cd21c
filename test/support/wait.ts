// Waiting with a deadline, never a fixed sleep standing in for readiness. One loop under all three:
// poll() (tools/testenv/wait.ts) for checks that may be async and may fail for a while (an API call),
// waitFor() for a condition in this process (an error in the check fails at once), and waitStable()
// for a value that stops changing. Each fails with "timed out after N ms waiting for WHAT".
import { poll } from '../../tools/testenv/wait';

export { poll };

/** Checks `check` every `everyMs` (20 ms) until it returns true; fails after `timeoutMs`. */
export function waitFor(what: string, check: () => boolean, timeoutMs = 5_000, everyMs = 20): Promise<void> {
  return poll(what, timeoutMs, check, { everyMs, retryErrors: false });
}

/** Polls `value` until it stays the same for `quietMs` (a stalled transfer); resolves with it. */
export async function waitStable(
  what: string,
  value: () => number,
  quietMs = 500,
  timeoutMs = 15_000,
): Promise<number> {
  let last = value();
  let since = Date.now();
  await poll(
    `${what} to settle`,
    timeoutMs,
    () => {
      const now = value();
      if (now !== last) {
        last = now;
        since = Date.now();
        return false;
      }
      return Date.now() - since >= quietMs;
    },
    { everyMs: 50, retryErrors: false },
  );
  return last;
}
