/**
 * A token bucket per source address on failed authentications: each failure takes a token, tokens
 * come back at `refillPerSecond`, and a source with no token left is refused at once (before any
 * handshake work) until one comes back. The table is bounded; the least recently touched entry goes.
 */
export interface FailureLimiterOptions {
  burst: number;
  refillPerSecond: number;
  maxSources: number;
  now?: () => number;
}

export class FailureLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly opts: FailureLimiterOptions;
  private readonly now: () => number;

  constructor(opts: FailureLimiterOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
  }

  /** True if this source may start a handshake. */
  allows(source: string): boolean {
    const b = this.buckets.get(source);
    return !b || this.refill(b) >= 1;
  }

  /** Records one failed authentication from this source. */
  failed(source: string): void {
    const b = this.buckets.get(source) ?? { tokens: this.opts.burst, at: this.now() };
    this.refill(b);
    b.tokens = Math.max(0, b.tokens - 1);
    this.buckets.delete(source);
    this.buckets.set(source, b);
    if (this.buckets.size > this.opts.maxSources) this.buckets.delete(this.buckets.keys().next().value!);
  }

  get size(): number {
    return this.buckets.size;
  }

  private refill(b: { tokens: number; at: number }): number {
    const t = this.now();
    b.tokens = Math.min(this.opts.burst, b.tokens + ((t - b.at) / 1000) * this.opts.refillPerSecond);
    b.at = t;
    return b.tokens;
  }
}
