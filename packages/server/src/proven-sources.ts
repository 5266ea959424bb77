/**
 * Sources (budget.ts budgetSource: an IPv4 address, an IPv6 /64) from which a peer has proven its key
 * (a session established) recently: the server's defences against strangers' floods give them their
 * own share of what strangers can fill (lookup-gate.ts: key lookups beyond the store's cache;
 * curve-cap.ts: v3 curve steps in the pool's queue), so a device that has logged in from its address
 * before keeps getting in while strangers from many addresses flood the server. Bounded: the oldest
 * confirmation is forgotten first.
 *
 * A source stays proven while a session established from it lives, and for trustMs after the last
 * one ended (the attacker's review of session 8, round 2): a fleet's devices stay connected for days,
 * so proven-at-establishment alone had them all unproven again by the time their network dropped and
 * they reconnected at once, the very storm the strangers' share is meant to leave them room in.
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
  /** Source -> its sessions alive (only sources with one: bounded by the connections). */
  private readonly live = new Map<string, number>();

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

  /** A session was established from `address` (its peer proved its key): proven while it lives. */
  sessionStarted(address: string): void {
    const source = budgetSource(address);
    this.live.set(source, (this.live.get(source) ?? 0) + 1);
    this.confirmed(address);
  }

  /** A session that sessionStarted() counted has ended: its source stays proven for trustMs from now. */
  sessionEnded(address: string): void {
    const source = budgetSource(address);
    const n = this.live.get(source);
    if (n === undefined) return;
    if (n <= 1) this.live.delete(source);
    else this.live.set(source, n - 1);
    this.confirmed(address);
  }

  /** True if `source` (a budgetSource key, not an address) is proven now. */
  has(source: string): boolean {
    if (this.live.has(source)) return true;
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
