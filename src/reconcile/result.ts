// What a reconcile returns, and how errors steer retries (controller-runtime's model): a thrown error
// is retried with per-key exponential backoff; a TerminalError is not retried (only a change to the
// object brings the key back); `requeueAfterMs` re-runs the key after that long.

export interface Result {
  requeueAfterMs?: number;
  /**
   * `low`: the re-run only refreshes counters, so it waits behind changes (and behind nothing else) in
   * the work queue. Default `normal`.
   */
  requeuePriority?: 'low';
}

export const done: Result = {};

/** An error retrying cannot fix: logged, not retried. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}
