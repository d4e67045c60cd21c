// Small helpers for the benchmark programs: medians, spreads, and markdown tables that stay readable on
// a terminal (columns padded) and paste into docs/benchmarks.md as they are.

export function median(xs: number[]): number {
  const s = finite(xs).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile (p in 0..100) of the finite values. */
export function percentile(xs: number[], p: number): number {
  const s = finite(xs).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.max(0, Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1))];
}

export function finite(xs: number[]): number[] {
  return xs.filter((x) => Number.isFinite(x));
}

export function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

/** "median (min-max)" of the finite values; "-" when there is none. */
export function spread(xs: number[], digits: number, suffix = ''): string {
  const f = finite(xs);
  if (f.length === 0) return '-';
  const m = `${fmt(median(f), digits)}${suffix}`;
  return `${m} (${fmt(Math.min(...f), digits)}-${fmt(Math.max(...f), digits)})`;
}

/**
 * A markdown table: a bold title line, then the header, the alignment row (first column left, the
 * others right) and the rows, every column padded to its widest cell.
 */
export function mdTable(title: string, header: string[], rows: string[][], notes: string[] = []): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  const cells = [header, ...rows].map((r) => header.map((_, i) => esc(r[i] ?? '')));
  const widths = header.map((_, i) => Math.max(3, ...cells.map((r) => r[i].length)));
  const line = (r: string[]): string =>
    `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const align = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  const out = [`**${title}**`, '', line(cells[0]), align, ...cells.slice(1).map(line)];
  if (notes.length > 0) out.push('', ...notes.map((n) => `- ${n}`));
  return out.join('\n');
}

export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = process.hrtime.bigint();
  const v = await fn();
  return [Number(process.hrtime.bigint() - t0) / 1e6, v];
}
