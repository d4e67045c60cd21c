// The one place that turns the outcome of a reconcile into what happens next, as controller-runtime's
// reconcileHandler does: a result (run again after requeueAfterMs, or not), an error that retrying can
// fix (run again after the key's backoff), or one it cannot (a TerminalError: not retried; a change to
// the object brings the key back). It knows only the reconcile contract (reconcile/result.ts): which
// other errors cannot be fixed by retrying is the reconciler's to say. It also keeps the reconcile
// metrics and writes the one log line a failed reconcile gets.
import { apiHint } from '../kube/client';
import { errorMessage } from '../observability/logger';
import { Result, TerminalError } from '../reconcile/result';
import type { WorkQueue } from './workqueue';

export type Verdict = 'retry' | 'giveUp';

/** Whether retrying can fix `err`. */
export function errorPolicy(err: unknown): Verdict {
  return err instanceof TerminalError ? 'giveUp' : 'retry';
}

export interface HandlerLog {
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export interface ReconcileMetrics {
  /** Starts timing one reconcile; the returned function stops it. */
  startTimer(): () => void;
  result(result: 'success' | 'error'): void;
  queueDepth(depth: number): void;
}

export interface HandlerDeps {
  reconcile(key: string): Promise<Result>;
  queue: Pick<WorkQueue, 'addAfter' | 'addRateLimited' | 'forget' | 'depth'>;
  log: HandlerLog;
  metrics?: ReconcileMetrics;
}

/** The queue's worker: runs `key` once and decides its future; never throws. */
export function reconcileHandler(deps: HandlerDeps): (key: string) => Promise<void> {
  return async (key) => {
    const end = deps.metrics?.startTimer();
    let result: Result | undefined;
    let failure: unknown;
    let failed = false;
    try {
      result = await deps.reconcile(key);
    } catch (err) {
      failed = true;
      failure = err;
    } finally {
      end?.();
    }
    deps.metrics?.result(failed ? 'error' : 'success');
    if (!failed) {
      deps.queue.forget(key);
      if (result?.requeueAfterMs !== undefined)
        deps.queue.addAfter(key, result.requeueAfterMs, result.requeuePriority ?? 'normal');
    } else if (errorPolicy(failure) === 'giveUp') {
      deps.queue.forget(key);
      deps.log.error('reconcile failed; not retried until the PortForward changes', {
        portforward: key,
        error: errorMessage(failure),
      });
    } else {
      const retryInMs = deps.queue.addRateLimited(key);
      const hint = apiHint(failure);
      deps.log.warn('reconcile failed; retrying', {
        portforward: key,
        error: errorMessage(failure),
        ...(hint ? { hint } : {}),
        retryInMs,
      });
    }
    deps.metrics?.queueDepth(deps.queue.depth);
  };
}
