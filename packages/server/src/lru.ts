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
