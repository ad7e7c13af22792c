/** Small numeric and formatting helpers for the report. Figures are printed as measured: no rounding up. */

export function median(xs: readonly number[]): number {
  const a = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (a.length === 0) return Number.NaN;
  const m = a.length >> 1;
  return a.length % 2 === 1 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

export function minMax(xs: readonly number[]): [number, number] {
  const a = xs.filter((x) => Number.isFinite(x));
  return a.length === 0 ? [Number.NaN, Number.NaN] : [Math.min(...a), Math.max(...a)];
}

export function fmt(x: number | undefined, digits = 0): string {
  return x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

/** A Markdown table; numbers are right-aligned when the column header is in `right`. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], rightFrom = 1): string {
  const align = headers.map((_, i) => (i >= rightFrom ? '---:' : '---'));
  return [`| ${headers.join(' | ')} |`, `| ${align.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
