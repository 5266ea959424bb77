/**
 * The guessing budget (docs/PROTOCOL.md, "Guessing budget"): one token is reserved at the moment a
 * password is about to be judged, whatever the protocol (legacy: when the proof has arrived and the
 * key is known; v2: when message 1 is about to be read with the key; v3: when the client's share
 * arrives, before the server answers), and refunded once the password is found right. Reserving at
 * judgement, not at accept, is what makes the budget hold however many connections are open at once.
 *
 * Two budgets, both leaky buckets:
 * - per source address (an IPv6 source per /64; default burst 20, 1 per second): over it, the judgement fails exactly like a
 *   wrong password (same bytes, same close). An empty bucket also refuses new connections at accept,
 *   before any work (the busy signal), as before.
 * - per username (default burst 20, 1 per second), counted whatever the address: over it, the
 *   judgement waits (backoff) until the user's bucket has drained enough, so the wait grows with each
 *   unrefunded guess. A wait longer than `maxWaitMs` is not taken: the judgement fails like a wrong
 *   password instead. This slows guessing at one user from any number of addresses. So that an
 *   attacker cannot use it to lock a device out, an address from which the user proved its key in
 *   the last `trustSeconds` skips the user's backoff (its guesses still count, and the address
 *   budget still applies): the remembered-device exemption of OWASP's account-lockout guidance.
 *
 * Protocol drivers use it as: `const v = budget.reserve(source, user)`; if `v.kind === "over"`, fail
 * as for a wrong password; else judge after `v.delayMs` and call `budget.settle(v.ticket, verified)`,
 * or `budget.cancel(v.ticket)` if the connection went away before the judgement; once the session is
 * established (the peer proved its key, not a replay), `budget.confirmed(username, source)`.
 */
import { proxy } from "@nstp/core";
import { LeakyBuckets } from "./limiter.ts";

/** Bytes of an IPv6 address that name its subscriber: the /64 every end site is given at least (RFC 6177). */
const IPV6_SUBSCRIBER_BYTES = 8;

/**
 * The key of an address's budget: an IPv4 address as is, an IPv6 address as its /64. One IPv6
 * subscriber (a home, a VM) holds at least a /64 and can use any of its 2^64 addresses, so a budget
 * per IPv6 address would give it a fresh one per connection (and let it flush the bounded table).
 */
export function budgetSource(address: string): string {
  const b = proxy.addressBytes(address);
  if (!b || b.length === 4) return address;
  const prefix = new Uint8Array(b.length);
  prefix.set(b.subarray(0, IPV6_SUBSCRIBER_BYTES));
  return `${proxy.formatAddress(prefix)}/64`;
}

export interface BucketOptions {
  burst: number;
  refillPerSecond: number;
}

/**
 * A per-user budget that other hosts share (stores/guess-budget.ts keeps it in PostgreSQL): checked
 * from a local view when a guess is about to be judged, told of every guess that stayed wrong. With
 * it, adding hosts does not multiply what a guesser at one user gets.
 */
export interface SharedUserBudget {
  allows(username: string): boolean;
  failed(username: string): void;
}

export interface GuessBudgetOptions {
  /** Shared with other hosts, beside this process's own per-user budget. */
  shared?: SharedUserBudget;
  /** Per source address (the `failureLimit` server option). */
  address: BucketOptions & { maxSources: number };
  /** Per username, counted across addresses. */
  user: BucketOptions & { maxUsers: number; maxWaitMs: number; trustSeconds: number };
  now?: () => number;
}

export const DEFAULT_ADDRESS_BUDGET = { burst: 20, refillPerSecond: 1, maxSources: 65_536 };
/** A device that reconnects at least daily keeps its exemption from the user's backoff. */
export const DEFAULT_USER_BUDGET = { burst: 20, refillPerSecond: 1, maxUsers: 65_536, trustSeconds: 86_400 };

export interface Ticket {
  /** The address budget charged (budgetSource of the connection's address). */
  readonly source: string;
  readonly username: string;
  /** Settled, cancelled: further calls are ignored. */
  open: boolean;
}

export type Verdict =
  | { kind: "judge"; ticket: Ticket; delayMs: number }
  | { kind: "over"; scope: "address" | "user" };

export class GuessBudget {
  private readonly addresses: LeakyBuckets;
  private readonly users: LeakyBuckets;
  /** "user\0address" -> until when the address may skip the user's backoff (bounded like `users`). */
  private readonly trusted = new Map<string, number>();
  /** username\0source -> its sessions alive (only pairs with one: bounded by the connections). */
  private readonly live = new Map<string, number>();
  private readonly opts: GuessBudgetOptions;
  private readonly now: () => number;
  /** Counters for metrics. */
  readonly counts = { reserved: 0, refunded: 0, cancelled: 0, waited: 0, overAddress: 0, overUser: 0 };

  constructor(opts: GuessBudgetOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
    const { address, user } = opts;
    this.addresses = new LeakyBuckets({ leakPerSecond: address.refillPerSecond, maxKeys: address.maxSources, now: opts.now });
    // A user's level exceeds its burst by at most what maxWaitMs lets wait (reserve checks first).
    this.users = new LeakyBuckets({ leakPerSecond: user.refillPerSecond, maxKeys: user.maxUsers, now: opts.now });
  }

  /** True if `source` has a token left: checked at accept, before any work. */
  allows(source: string): boolean {
    return this.addresses.level(budgetSource(source)) + 1 <= this.opts.address.burst;
  }

  /** Reserves one judgement for `username` from `source`, or says it is over budget. */
  reserve(source: string, username: string): Verdict {
    const { address, user } = this.opts;
    const block = budgetSource(source);
    if (this.addresses.level(block) + 1 > address.burst) {
      this.counts.overAddress++;
      return { kind: "over", scope: "address" };
    }
    // Past the burst, wait until the bucket has drained to where this guess fits.
    // The hosts' shared view of this user: spent across hosts, the guess fails like a wrong password
    // (it cannot wait for other hosts' buckets); a remembered device is exempt, as from the backoff.
    if (this.opts.shared && !this.opts.shared.allows(username) && !this.isTrusted(username, source)) {
      this.counts.overUser++;
      return { kind: "over", scope: "user" };
    }
    const excess = this.users.level(username) + 1 - user.burst;
    const delayMs = excess > 0 && !this.isTrusted(username, source) ? (excess / user.refillPerSecond) * 1000 : 0;
    if (delayMs > user.maxWaitMs) {
      this.counts.overUser++;
      return { kind: "over", scope: "user" };
    }
    this.addresses.add(block, 1);
    this.users.add(username, 1);
    this.counts.reserved++;
    if (delayMs > 0) this.counts.waited++;
    return { kind: "judge", ticket: { source: block, username, open: true }, delayMs };
  }

  /**
   * The judgement happened: a right password refunds the token; a wrong one keeps it spent. (v2: a
   * message 1 that verifies was made with the right key, even if replayed, so it costs no guess.)
   */
  settle(ticket: Ticket, verified: boolean): void {
    if (!ticket.open) return;
    ticket.open = false;
    if (verified) {
      this.counts.refunded++;
      this.refund(ticket);
    } else {
      this.opts.shared?.failed(ticket.username);
    }
  }

  /**
   * The peer proved its key (the session is established: for v2, its first frame authenticated, so
   * it is no replay): this address skips the user's backoff for `trustSeconds`.
   */
  confirmed(username: string, source: string): void {
    const key = `${username}\0${source}`;
    this.trusted.delete(key);
    this.trusted.set(key, this.now() + this.opts.user.trustSeconds * 1000);
    if (this.trusted.size > this.opts.user.maxUsers) this.trusted.delete(this.trusted.keys().next().value!);
  }

  /** The connection went away before the judgement: nothing was judged, so nothing is charged. */
  cancel(ticket: Ticket): void {
    if (!ticket.open) return;
    ticket.open = false;
    this.counts.cancelled++;
    this.refund(ticket);
  }

  /** Sources and users with tokens in use (bounded tables). */
  get trackedSources(): number {
    return this.addresses.size;
  }
  get trackedUsers(): number {
    return this.users.size;
  }

  /**
   * A session of `username` was established from `source` (confirmed() from now, and trusted while it
   * lives: a device's session may last longer than trustSeconds, and it reconnects from the same
   * address before the server has seen the old session end; attacker review, session 8 round 3).
   */
  sessionStarted(username: string, source: string): void {
    const key = `${username}\0${source}`;
    this.live.set(key, (this.live.get(key) ?? 0) + 1);
    this.confirmed(username, source);
  }

  /** A session sessionStarted() counted has ended: trusted for trustSeconds from now. */
  sessionEnded(username: string, source: string): void {
    const key = `${username}\0${source}`;
    const n = this.live.get(key);
    if (n === undefined) return;
    if (n <= 1) this.live.delete(key);
    else this.live.set(key, n - 1);
    this.confirmed(username, source);
  }

  private isTrusted(username: string, source: string): boolean {
    if (this.live.size > 0 && this.live.has(`${username}\0${source}`)) return true;
    const until = this.trusted.get(`${username}\0${source}`);
    return until !== undefined && until > this.now();
  }

  private refund(ticket: Ticket): void {
    this.addresses.add(ticket.source, -1);
    this.users.add(ticket.username, -1);
  }
}
