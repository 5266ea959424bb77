/** Order statistics for bench samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function sortNumbers(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

export function median(xs: readonly number[]): number {
  return percentile(sortNumbers(xs), 50);
}

/** Relative spread of repetitions: (max - min) / median. */
export function spread(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const s = sortNumbers(xs);
  const m = percentile(s, 50);
  return m === 0 ? 0 : (s[s.length - 1]! - s[0]!) / m;
}
