/**
 * Sources (budget.ts budgetSource: an IPv4 address, an IPv6 /64) from which a peer has proven its key
 * (a session established) recently: the server's defences against strangers' floods give them their
 * own share of what strangers can fill (lookup-gate.ts: key lookups beyond the store's cache;
 * curve-cap.ts: v3 curve steps in the pool's queue), so a device that has logged in from its address
 * before keeps getting in while strangers from many addresses flood the server. Bounded: the oldest
 * confirmation is forgotten first.
 */
import { budgetSource } from "./budget.ts";

export interface ProvenSourcesOptions {
  /** How long a source stays proven after a session established from it (ms). */
  trustMs: number;
  /** Proven sources remembered at most. */
  max: number;
  now?: () => number;
}

export class ProvenSources {
  private readonly opts: ProvenSourcesOptions;
  private readonly now: () => number;
  /** Source -> until when it is proven, oldest confirmation first. */
  private readonly until = new Map<string, number>();

  constructor(opts: ProvenSourcesOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
  }

  /** A peer proved its key from `address`: its source is proven for trustMs from now. */
  confirmed(address: string): void {
    const source = budgetSource(address);
    this.until.delete(source);
    this.until.set(source, this.now() + this.opts.trustMs);
    if (this.until.size > this.opts.max) this.until.delete(this.until.keys().next().value!);
  }

  /** True if `source` (a budgetSource key, not an address) is proven now. */
  has(source: string): boolean {
    const until = this.until.get(source);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.until.delete(source);
    return false;
  }

  get size(): number {
    return this.until.size;
  }
}
