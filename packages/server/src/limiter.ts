/**
 * Leaky buckets by key (source address, username): each key has a level that events raise and that
 * drains at `leakPerSecond`, never below 0 nor above `maxLevel`. A token bucket of burst B is the
 * same thing seen from the other side (tokens = B - level). The table is bounded: touching a key
 * makes it the most recent, and past `maxKeys` the least recently touched key is forgotten.
 */
export interface LeakyBucketsOptions {
  leakPerSecond: number;
  maxKeys: number;
  /** Highest level a key may hold (default: unbounded). */
  maxLevel?: number;
  now?: () => number;
}

/** A level below this is empty (far below one event, far above floating-point residue). */
const EPSILON = 1e-9;

interface Bucket {
  level: number;
  at: number;
}

export class LeakyBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly opts: LeakyBucketsOptions;
  private readonly now: () => number;

  constructor(opts: LeakyBucketsOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
  }

  /** The key's level now (0 for a key never seen or forgotten). Does not touch the key. */
  level(key: string): number {
    const b = this.buckets.get(key);
    return b ? this.leak(b) : 0;
  }

  /** Raises (or, with n < 0, lowers) the key's level; returns the new level. */
  add(key: string, n: number): number {
    const b = this.buckets.get(key) ?? { level: 0, at: this.now() };
    this.leak(b);
    b.level = Math.min(this.opts.maxLevel ?? Infinity, Math.max(0, b.level + n));
    this.buckets.delete(key);
    this.store(key, b);
    return b.level;
  }

  /** Keeps a non-empty bucket as the most recent; past maxKeys the least recently touched goes. */
  private store(key: string, b: Bucket): void {
    if (b.level <= 0) return;
    this.buckets.set(key, b);
    if (this.buckets.size > this.opts.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
  }

  /** Sets the key's level (clamped as add() does) and makes it the most recent. */
  set(key: string, level: number): void {
    this.buckets.delete(key);
    this.store(key, { level: Math.min(this.opts.maxLevel ?? Infinity, Math.max(0, level)), at: this.now() });
  }

  get size(): number {
    return this.buckets.size;
  }

  private leak(b: Bucket): number {
    const t = this.now();
    b.level = b.level - ((t - b.at) / 1000) * this.opts.leakPerSecond;
    // Drained is drained: leaking in steps leaves rounding residue (1e-16) where one step leaves 0.
    if (b.level < EPSILON) b.level = 0;
    b.at = t;
    return b.level;
  }
}
