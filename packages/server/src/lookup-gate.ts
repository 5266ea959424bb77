/**
 * Key lookups under way, per source (the attacker's review of session 8). The
 * handshake asks the store for the claimed user's key as soon as the preamble (v2, v3) or hello
 * (legacy) names them, before any guess is charged: the guessing budget counts judgements, and a
 * stranger who sends only preambles with random names, and hangs up, is never judged. Each such name
 * costs the store work that outlives the connection (PasswordKeyStore: an unknown name's delay, as
 * long as a derivation, so that its timing tells nothing; PostgreSQL: a query), and the store's
 * pending set is bounded (PasswordKeyStore maxPending: 130 on 2 cores), so one address at about
 * 1,000 connections a second kept it full and every device whose key was not cached was refused busy.
 *
 * So each source (budget.ts budgetSource: an IPv4 address, an IPv6 /64, the guessing budget's key)
 * may have at most `maxPerSource` lookups under way at once; beyond that, the handshake is refused
 * (ERR_BUSY) before the store is asked, whatever name it claims, and sends the busy signal.
 *
 * Every lookup counts, not only those that miss the cache (the attacker's review of session 8, round
 * 2): when only misses took a place, a stranger learned from one address, without a guess, whether
 * a name was cached, that is an active user's (fill all places but one with random unknown names,
 * each holding its place for the unknown-name delay; name X; then one more random name: refused busy
 * at once if X missed and took the last place, not if X was cached). So the handshake takes the place
 * before asking the store (enter()), and it is held until the later of (a) the end of the lookup:
 * the store's uncached work for it (the store calls the admit it is handed, which takes no second
 * place but says when that work ends), else its answer (a cache hit, a lookup joined to one under
 * way, a refusal); and (b) the store's typical uncached lookup time since it began
 * (KeyStore.lookupHoldMs, DEFAULT_LOOKUP_HOLD_MS if it does not say), the same for a hit as for a
 * miss. The connection going away changes neither: the work goes on without it. What is counted then
 * does not depend on the cache; what remains is timing: a miss whose work outlasts the hold (a slow
 * application lookup, a slow database) holds its place longer than a hit, which a stranger sees only
 * by probing at that moment, as the first probe of a name may differ anyway (docs/PROTOCOL.md,
 * "Uniform failure"). A source from which a peer has proven its key (a session alive from it, or
 * ended within `trustMs`: proven-sources.ts) takes no place and is counted nowhere: devices behind one NAT keep logging in at the
 * store's pace however many reconnect at once, and a stranger behind the same address shares their
 * luck.
 *
 * Many sources together: every source not proven shares one cap, `maxUnproven` lookups under way
 * (default half the store's bound), counted the same way, and at it every such source is refused,
 * whatever name it claims (so from many sources, too, busy or not depends on no cache): however many
 * addresses a stranger holds, devices from proven sources keep the other half of the store's pending
 * set, as they keep half the pool's curve queue (curve-cap.ts). What it does not bound: a client
 * holding a valid password proves its source; and a device that has never logged in from its
 * address (a new one, or every device just after a restart: proven sources are kept in memory)
 * competes with the strangers for their half.
 */
import { DEFAULT_LOOKUP_HOLD_MS, type LookupAdmit } from "./credentials.ts";
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

/**
 * One lookup's place from a source not proven, taken before the store is asked (LookupGate.enter)
 * and given back once, when both (a) the lookup is over, and (b) `holdMs` has passed since it began.
 * (a) is the later of its answer arriving (settled(): a cached hit, a joined lookup, a refusal, a
 * failure, an abort) and the end of every piece of uncached work the store started for it through
 * `admit` (which takes no second place: the place is already held). The connection going away
 * changes neither: work it started, and the hold, go on without it. (b) makes a cached hit hold its
 * place as long as the store's typical miss (KeyStore.lookupHoldMs), so that what the gate counts
 * does not depend on the cache.
 */
export interface LookupPlace {
  /** What the handshake hands the store: never refuses (the place is held); its result tells the place the work is over. */
  readonly admit: LookupAdmit;
  /** The lookup's answer (or its failure) has arrived; called once, on every path. */
  settled(): void;
}

export class LookupGate {
  readonly maxPerSource: number;
  /** Sources exempt from the cap: a peer proved its key from them within trustMs. */
  readonly proven: ProvenSources;
  /**
   * Source -> its places held. Only sources holding one are kept (an entry goes at zero), so its
   * size is bounded by the caps (maxUnproven, else the store's own bound times the hold).
   */
  private readonly underWay = new Map<string, number>();
  /** Places held by sources not proven when they took them, together. */
  private unprovenUnderWay = 0;
  readonly maxUnproven: number;
  /** Lookups refused for their source being at the cap (metrics). */
  refused = 0;
  /** Lookups refused for the sources not proven being at their shared cap (metrics). */
  refusedUnproven = 0;
  private readonly now: () => number;

  constructor(opts: LookupGateOptions) {
    if (!Number.isInteger(opts.maxPerSource) || opts.maxPerSource < 1) throw new RangeError(`maxUncachedLookupsPerSource must be an integer >= 1, got ${opts.maxPerSource}`);
    this.maxPerSource = opts.maxPerSource;
    this.maxUnproven = opts.maxUnproven ?? Number.POSITIVE_INFINITY;
    if (!(this.maxUnproven >= 1)) throw new RangeError(`maxUncachedLookupsUnproven must be >= 1, got ${opts.maxUnproven}`);
    this.now = opts.now ?? (() => performance.now());
    this.proven = opts.proven ?? new ProvenSources({ trustMs: opts.trustMs, max: opts.maxProvenSources, now: opts.now });
  }

  /**
   * For a lookup by a connection from `address`, before the store is asked: undefined if its source
   * is at its cap, or it is not proven and the sources not proven are at theirs (refuse the
   * handshake busy, whatever name it claims); else its place (held until given back, see
   * LookupPlace), whose `admit` goes to the store. A proven source takes no place: nothing counted.
   * `holdMs` is the store's KeyStore.lookupHoldMs (DEFAULT_LOOKUP_HOLD_MS if it does not say).
   */
  enter(address: string, holdMs: number = DEFAULT_LOOKUP_HOLD_MS): LookupPlace | undefined {
    const source = budgetSource(address);
    if (this.isProven(source)) return EXEMPT;
    if (this.refuses(source)) return undefined;
    this.underWay.set(source, (this.underWay.get(source) ?? 0) + 1);
    this.unprovenUnderWay++;
    return new HeldPlace(() => this.giveBack(source), this.now, holdMs);
  }

  /** A peer proved its key from `address`: its source is exempt for trustMs from now. */
  confirmed(address: string): void {
    this.proven.confirmed(address);
  }

  /** Places held by `address`'s source (for tests). */
  underWayFrom(address: string): number {
    return this.underWay.get(budgetSource(address)) ?? 0;
  }

  /** Sources holding a place. */
  get sources(): number {
    return this.underWay.size;
  }

  /** Places held by sources not proven, together. */
  get unprovenLookups(): number {
    return this.unprovenUnderWay;
  }

  /** True (and counted) if a source not proven may not take a place now. */
  private refuses(source: string): boolean {
    if ((this.underWay.get(source) ?? 0) >= this.maxPerSource) {
      this.refused++;
      return true;
    }
    if (this.unprovenUnderWay >= this.maxUnproven) {
      this.refusedUnproven++;
      return true;
    }
    return false;
  }

  private giveBack(source: string): void {
    this.unprovenUnderWay--;
    const n = this.underWay.get(source) ?? 0;
    if (n <= 1) this.underWay.delete(source);
    else this.underWay.set(source, n - 1);
  }

  private isProven(source: string): boolean {
    return this.proven.has(source);
  }
}

/**
 * A place held (LookupPlace). At most one timer, armed only once the lookup is over and its hold not
 * yet passed, and unref'd (a place never keeps the process up); so timers number at most the places
 * held, which the caps bound.
 */
class HeldPlace implements LookupPlace {
  /** Pieces of uncached work the store started for this lookup (admit) and has not yet ended. */
  private work = 0;
  private answered = false;
  private holdPassed = false;
  private given = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly giveBack: () => void;
  private readonly now: () => number;
  private readonly holdUntil: number;

  constructor(giveBack: () => void, now: () => number, holdMs: number) {
    this.giveBack = giveBack;
    this.now = now;
    this.holdUntil = now() + Math.max(0, holdMs);
  }

  readonly admit: LookupAdmit = () => {
    this.work++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.work--;
      this.maybeGiveBack();
    };
  };

  settled(): void {
    if (this.answered) return;
    this.answered = true;
    this.maybeGiveBack();
  }

  private maybeGiveBack(): void {
    if (this.given || !this.answered || this.work > 0 || this.timer) return;
    const left = this.holdUntil - this.now();
    if (this.holdPassed || left <= 0) {
      this.given = true;
      this.giveBack();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.holdPassed = true;
      this.maybeGiveBack();
    }, Math.ceil(left));
    this.timer.unref?.();
  }
}

const noop = () => {};
/** A proven source's place: the store's admit always has a place, and nothing is counted or held. */
const EXEMPT: LookupPlace = { admit: () => noop, settled: noop };
