// Waiting with a deadline, never a fixed sleep standing in for readiness: the one polling loop of the
// tools and the tests (test/support/wait.ts builds waitFor and waitStable on it).
import { TestEnvError } from './errors';

export interface PollOptions {
  /** How long to sleep between two checks (default 100 ms). */
  everyMs?: number;
  /**
   * Whether a check that throws is tried again until the deadline (default: yes, but a TestEnvError
   * ends the wait at once). With false, the first error fails the wait: an assertion in the check.
   */
  retryErrors?: boolean;
}

/**
 * Calls `check` until it returns true. After `timeoutMs` it fails with "timed out after N ms waiting
 * for `what`", and the last error the check threw, if any.
 */
export async function poll(
  what: string,
  timeoutMs: number,
  check: () => boolean | Promise<boolean>,
  opts: PollOptions = {},
): Promise<void> {
  const everyMs = opts.everyMs ?? 100;
  const retryErrors = opts.retryErrors ?? true;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
      last = undefined;
    } catch (err) {
      if (!retryErrors || err instanceof TestEnvError) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : last ? `: ${JSON.stringify(last)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
