/**
 * Key lookups that miss the store's cache, per source (the attacker's review of session 8). The
 * handshake asks the store for the claimed user's key as soon as the preamble (v2, v3) or hello
 * (legacy) names them, before any guess is charged: the guessing budget counts judgements, and a
 * stranger who sends only preambles with random names, and hangs up, is never judged. Each such name
 * costs the store work that outlives the connection (PasswordKeyStore: an unknown name's delay, as
 * long as a derivation, so that its timing tells nothing; PostgreSQL: a query), and the store's
 * pending set is bounded (PasswordKeyStore maxPending: 130 on 2 cores), so one address at about
 * 1,000 connections a second kept it full and every device whose key was not cached was refused busy.
 *
 * So each source (budget.ts budgetSource: an IPv4 address, an IPv6 /64, the guessing budget's key)
 * may have at most `maxPerSource` such lookups under way at once, counted from the moment the store
 * starts one until it is over (not until the connection goes: the work goes on without it); beyond
 * that, the store refuses it (ERR_BUSY), and the handshake sends the busy signal. A source at its cap
 * is refused every lookup, cached names' too (handshake.ts lookup()), so that busy or not tells it
 * nothing about which names are cached. A source from which a peer has proven its key (a session
 * established) within `trustMs` is exempt: devices behind one NAT keep logging in at the store's
 * pace however many reconnect at once, and a stranger behind the same address shares their luck.
 *
 * Many sources together: every source not proven shares one cap, `maxUnproven` lookups under way
 * (default half the store's bound), and at it every such source is refused, cached names' too (so
 * that busy or not tells nothing about which names are cached, from any source): however many
 * addresses a stranger holds, devices from proven sources keep the other half of the store's pending
 * set, as they keep half the pool's curve queue (curve-cap.ts). What it does not bound: a client
 * holding a valid password proves its source; and a device that has never logged in from its
 * address (a new one, or every device just after a restart: proven sources are kept in memory)
 * competes with the strangers for their half.
 */
import type { LookupAdmit } from "./credentials.ts";
import { budgetSource } from "./budget.ts";
import { ProvenSources } from "./proven-sources.ts";

/**
 * The default cap is this share of the store's own bound on lookups under way (KeyStore.maxPending),
 * at least 1, as a source's share of the pool's curve queue is (curve-cap.ts): filling the store's
 * pending set then takes at least eight sources, while honest devices behind one address not yet
 * proven still start that many lookups at a time (PasswordKeyStore on 2 cores: 16 of its 130; the
 * PostgreSQL store: 32 of 256), and past that are refused busy and retry.
 */
export const LOOKUP_SHARE_PER_SOURCE = 1 / 8;

/** For a store that does not say its bound (maxPending): an eighth of the password store's default on one thread (65). */
export const DEFAULT_UNCACHED_LOOKUPS_PER_SOURCE = 8;

/** The default `maxUncachedLookupsUnproven`: half the store's bound (none for a store that does not say). */
export function defaultUncachedLookupsUnproven(maxPending: number | undefined): number {
  if (maxPending === undefined) return Number.POSITIVE_INFINITY;
  return Math.max(1, Math.floor(maxPending / 2));
}

/** The default `maxUncachedLookupsPerSource` for a store that lets `maxPending` lookups be under way. */
export function defaultUncachedLookupsPerSource(maxPending: number | undefined): number {
  if (maxPending === undefined) return DEFAULT_UNCACHED_LOOKUPS_PER_SOURCE;
  return Math.max(1, Math.floor(maxPending * LOOKUP_SHARE_PER_SOURCE));
}

export interface LookupGateOptions {
  maxPerSource: number;
  /** Lookups under way from every source not proven, together (default: no such cap). */
  maxUnproven?: number;
  /** How long a source stays exempt after a session established from it (the budget's trustSeconds, in ms). */
  trustMs: number;
  /** Proven sources remembered at most (the oldest confirmation forgotten first). */
  maxProvenSources: number;
  now?: () => number;
  /** The server's proven sources, shared with the curve cap (curve-cap.ts); else the gate's own, from the options above. */
  proven?: ProvenSources;
}

export class LookupGate {
  readonly maxPerSource: number;
  /** Sources exempt from the cap: a peer proved its key from them within trustMs. */
  readonly proven: ProvenSources;
  /**
   * Source -> its lookups under way. Only sources with one under way are held (an entry goes at
   * zero), so its size is bounded by the stores' own bounds on pending lookups.
   */
  private readonly underWay = new Map<string, number>();
  /** Lookups under way from sources not proven when they started, together. */
  private unprovenUnderWay = 0;
  readonly maxUnproven: number;
  /** Lookups refused for their source being at the cap (metrics). */
  refused = 0;
  /** Lookups refused for the sources not proven being at their shared cap (metrics). */
  refusedUnproven = 0;

  constructor(opts: LookupGateOptions) {
    if (!Number.isInteger(opts.maxPerSource) || opts.maxPerSource < 1) throw new RangeError(`maxUncachedLookupsPerSource must be an integer >= 1, got ${opts.maxPerSource}`);
    this.maxPerSource = opts.maxPerSource;
    this.maxUnproven = opts.maxUnproven ?? Number.POSITIVE_INFINITY;
    if (!(this.maxUnproven >= 1)) throw new RangeError(`maxUncachedLookupsUnproven must be >= 1, got ${opts.maxUnproven}`);
    this.proven = opts.proven ?? new ProvenSources({ trustMs: opts.trustMs, max: opts.maxProvenSources, now: opts.now });
  }

  /**
   * For a connection from `address`: undefined if its source is at its cap, or it is not proven and
   * the sources not proven are at theirs (refuse the handshake busy, whatever name it claims), else
   * the LookupAdmit to hand the store.
   */
  admitFor(address: string): LookupAdmit | undefined {
    const source = budgetSource(address);
    if (this.isProven(source)) return exempt;
    if (this.refuses(source)) return undefined;
    return () => this.take(source);
  }

  /** A peer proved its key from `address`: its source is exempt for trustMs from now. */
  confirmed(address: string): void {
    this.proven.confirmed(address);
  }

  /** Lookups under way from `address`'s source (for tests). */
  underWayFrom(address: string): number {
    return this.underWay.get(budgetSource(address)) ?? 0;
  }

  /** Sources with a lookup under way. */
  get sources(): number {
    return this.underWay.size;
  }

  private atCap(source: string): boolean {
    return (this.underWay.get(source) ?? 0) >= this.maxPerSource;
  }

  /** True (and counted) if a source not proven may not start a lookup now. */
  private refuses(source: string): boolean {
    if (this.atCap(source)) {
      this.refused++;
      return true;
    }
    if (this.unprovenUnderWay >= this.maxUnproven) {
      this.refusedUnproven++;
      return true;
    }
    return false;
  }

  /** A place for one lookup from `source` (checked again: the store asks later in the same turn), given back once. */
  private take(source: string): (() => void) | undefined {
    if (this.isProven(source)) return noop;
    if (this.refuses(source)) return undefined;
    this.underWay.set(source, (this.underWay.get(source) ?? 0) + 1);
    this.unprovenUnderWay++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.unprovenUnderWay--;
      const n = this.underWay.get(source) ?? 0;
      if (n <= 1) this.underWay.delete(source);
      else this.underWay.set(source, n - 1);
    };
  }

  /** Lookups under way from sources not proven, together. */
  get unprovenLookups(): number {
    return this.unprovenUnderWay;
  }

  private isProven(source: string): boolean {
    return this.proven.has(source);
  }
}

const noop = () => {};
/** A proven source's admit: always a place, nothing counted. */
const exempt: LookupAdmit = () => noop;
