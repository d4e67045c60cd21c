// Rate limits for log lines that a client can cause at will (a refused connection): one line per key
// and interval goes out, the rest are counted and the count rides on the next line that goes out.
// Status and metrics still count every occurrence.

export class LogSampler {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /**
   * Whether a line for `key` goes out now: undefined holds it back; a number lets it through and says
   * how many lines for `key` were held back since the previous one.
   */
  take(key: string): number | undefined {
    const now = this.now();
    const seen = this.last.get(key);
    if (seen && now - seen.at < this.intervalMs) {
      seen.held++;
      return undefined;
    }
    if (this.last.size >= 10_000) this.prune(now);
    this.last.set(key, { at: now, held: 0 });
    return seen?.held ?? 0;
  }

  forget(key: string): void {
    this.last.delete(key);
  }

  /** Keys whose interval is over carry nothing worth keeping but their held count, which is dropped. */
  private prune(now: number): void {
    for (const [k, v] of this.last) if (now - v.at >= this.intervalMs) this.last.delete(k);
  }
}
