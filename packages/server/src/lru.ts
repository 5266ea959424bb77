/** A bounded least-recently-used map: every key cache of the server (real and dummy keys) is one. */
export class Lru<V> {
  private readonly map = new Map<string, V>();
  readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  /** The value, now the most recently used; undefined if absent. */
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /** Whether `key` is held, without making it the most recently used. */
  has(key: string): boolean {
    return this.map.has(key);
  }

  /** Stores `value` as the most recently used, evicting the least recently used beyond the bound. */
  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * Of a cache's bound, the share that names on probation may hold (ProvenLru): a quarter. A name
 * looked up for a login needs its place there only until the login is established (seconds, within
 * the handshake timeout), so a quarter of the stores' default (100,000: 25,000 names; the password
 * store's 10,000: 2,500) outlasts a flood's passing names by far, and three quarters stay for the
 * names devices have logged in with.
 */
export const PROBATION_SHARE = 1 / 4;

/**
 * A key cache in two LRUs (a segmented LRU): every name enters `probation`, known and unknown alike,
 * and only promote() moves one to `proven`, which what enters probation never evicts. The server
 * promotes a name once a peer has proven its key for it (the session is established: handshake.ts
 * established()), which a stranger cannot do, so a stranger's flood of random names churns
 * probation alone and the names devices log in with stay cached (the attacker's review of session 8:
 * in one LRU, such a flood evicted every real record within seconds).
 *
 * Names a stranger probes share probation whether they exist or not, so a flood still turns a probed
 * name back into a first probe either way (docs/PROTOCOL.md, "Uniform failure"): with misses in a
 * table of their own, a flood evicted only the misses and told a probed known name from an unknown
 * one (the review of session 5). The bound `max` is for both: probation gets PROBATION_SHARE of it.
 */
export class ProvenLru<V> {
  private readonly proven: Lru<V>;
  private readonly probation: Lru<V>;

  constructor(max: number) {
    const probation = Math.max(1, Math.floor(max * PROBATION_SHARE));
    this.probation = new Lru(probation);
    this.proven = new Lru(Math.max(1, max - probation));
  }

  /** The value, now the most recently used of its segment; undefined if absent. */
  get(key: string): V | undefined {
    return this.proven.has(key) ? this.proven.get(key) : this.probation.get(key);
  }

  /** Stores `value`: in proven if the name is proven already, else on probation. */
  set(key: string, value: V): void {
    if (this.proven.has(key)) this.proven.set(key, value);
    else this.probation.set(key, value);
  }

  /**
   * Moves `key` from probation to proven if it is there and `worth(value)` (a caller keeps misses
   * out: an unknown name is never proven); true if it is proven now.
   */
  promote(key: string, worth: (value: V) => boolean): boolean {
    if (this.proven.has(key)) return true;
    if (!this.probation.has(key)) return false;
    const v = this.probation.get(key)!;
    if (!worth(v)) return false;
    this.probation.delete(key);
    this.proven.set(key, v);
    return true;
  }

  delete(key: string): void {
    this.proven.delete(key);
    this.probation.delete(key);
  }

  /** Names held, in both segments. */
  get size(): number {
    return this.proven.size + this.probation.size;
  }

  /** Names proven (for tests and metrics). */
  get provenSize(): number {
    return this.proven.size;
  }
}
