// What the scale bench reads from the operator's own /metrics (issue 24): how many reconciles a phase
// cost, and how long keys waited in the work queue by priority, as the difference of two scrapes. The
// wait is a histogram, so its quantiles are bucket bounds ("at most"), as Prometheus'
// histogram_quantile would give them without interpolation. An operator without the metric (an older
// one under BENCH_OPERATOR) gives '-'.
import { httpGet } from '../testenv/procs';
import { fmt } from './stats';

export interface OperatorCounts {
  /** portforward_reconcile_total, both results. */
  reconciles: number;
  /**
   * Histogram buckets, upper bound (s) -> cumulative count: portforward_workqueue_queue_duration_seconds
   * by priority ('normal', 'low'), and portforward_reconcile_duration_seconds as 'reconcile'.
   */
  wait: Map<string, Map<number, number>>;
}

export async function scrapeOperator(port: number): Promise<OperatorCounts> {
  const { status, body } = await httpGet(`http://127.0.0.1:${port}/metrics`);
  if (status !== 200) throw new Error(`the operator's /metrics answered ${status}`);
  const out: OperatorCounts = { reconciles: 0, wait: new Map() };
  for (const line of body.split('\n')) {
    const reconcile = /^portforward_reconcile_total\{[^}]*\} (\d+)/.exec(line);
    if (reconcile) out.reconciles += Number(reconcile[1]);
    const bucket =
      /^portforward_(workqueue_queue|reconcile)_duration_seconds_bucket\{(?=[^}]*le="([^"]+)")(?=(?:[^}]*priority="([^"]+)")?)[^}]*\} (\d+)/.exec(
        line,
      );
    if (!bucket) continue;
    const [, which, le, label, count] = bucket;
    const priority = which === 'reconcile' ? 'reconcile' : label;
    const buckets = out.wait.get(priority) ?? new Map<number, number>();
    buckets.set(le === '+Inf' ? Infinity : Number(le), Number(count));
    out.wait.set(priority, buckets);
  }
  return out;
}

/** "p50 <= 0.01 / p99 <= 0.5 s (n keys)" of the waits at `priority` (or of the reconciles) between two scrapes, or '-'. */
export function waitQuantiles(before: OperatorCounts, after: OperatorCounts, priority: string): string {
  const a = after.wait.get(priority);
  if (!a) return '-';
  const b = before.wait.get(priority);
  const bounds = [...a.keys()].sort((x, y) => x - y);
  const counts = bounds.map((le) => (a.get(le) ?? 0) - (b?.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total === 0) return 'none';
  const at = (q: number): string => {
    const i = counts.findIndex((c) => c >= q * total);
    return bounds[i] === Infinity ? `> ${fmt(bounds[i - 1], 3)}` : `<= ${fmt(bounds[i], 3)}`;
  };
  return `p50 ${at(0.5)} / p99 ${at(0.99)} s (${total} keys)`;
}
