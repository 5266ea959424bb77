/**
 * Admission that favours progress (docs/PROTOCOL.md, "Admission that favours progress"). At most
 * `maxHandshaking` connections may be in the handshake. When a newcomer arrives at the cap, it is
 * admitted only if a handshake there is stalled: one that has taken no step `silentMs` after its
 * accept (every client speaks first and sends its first flight at once), or none for `stallMs`; the
 * one stalled earliest is closed to make room. If every handshake there is progressing, the
 * newcomer itself is refused with the busy signal and retries after its back-off: evicting a
 * progressing handshake for it wastes the work done and, when honest arrivals outpace completions
 * (a reconnect storm), lets almost none finish (the fleet bench's Bun storm: 721 of 10,000 back in
 * 300 s). A step is the protocol machine's state advancing (a hello, preamble, proof or message 1
 * parsed, message 2 sent), never mere bytes, so a connection that sent a whole
 * message 1 and then waits is stalled from that step on. The number of steps buys no rank: an
 * attacker who sends a preamble and stops would otherwise outrank every honest newcomer.
 *
 * Sources are not refused (devices behind one NAT share the attacker's address), but a source whose
 * handshakes recently stalled (timed out or were evicted) is marked, and its handshakes go before
 * any unmarked source's. On loopback every attacker shares the honest client's address, so the
 * order rests on the stall clock alone: an honest client steps every round trip, so it is younger
 * than the stalled handshakes around it.
 *
 * The stall clock counts only time the server waits for the client. While the server itself keeps a
 * handshake waiting (its key lookup, the guessing budget's judge delay, v3's curve step: see
 * serverWaiting), its clock stops, and it resumes where it stopped: a server slowed by a reconnect
 * storm does not evict, for its own slowness, the handshakes it has not answered yet. Each of those
 * waits is bounded elsewhere (the store's pending lookups, a guess from the budget, the pool's queue),
 * and the handshake deadline excuses them only up to the deadline itself (handshake.ts).
 *
 * A connection is not evicted before the server has had the chance to read it: it waits two
 * event-loop turns in a nursery (see nextTurn) before it joins the eviction order. When only nursery
 * connections are left to evict, the table runs over the cap, never beyond twice the cap; past that
 * the newcomer itself is refused.
 *
 * O(log n) per admission, step and exit (indexed heaps: handshakes per source, sources by their
 * first due and by their oldest handshake; the nursery is a FIFO); the table of remembered stalls
 * is bounded.
 */
import { budgetSource } from "./budget.ts";
import { Fifo } from "@nstp/core";
import { LeakyBuckets } from "./limiter.ts";
import { type HeapItem, MinHeap } from "./min-heap.ts";

export interface AdmissionOptions {
  maxHandshaking: number;
  /** A stall is forgotten after this long (the source's mark fades at one stall per second). */
  stallMemorySeconds: number;
  /** Sources whose stalls are remembered at most. */
  maxSources: number;
  /**
   * A handshake whose last step is older than this is stalled, and may be closed for a newcomer at the
   * cap (one with no step at all: silentMs after its accept). An honest client steps once per
   * round trip plus the server's own step; an attacker without the password gets at most two steps,
   * three replaying a recorded first flight (docs/PROTOCOL.md says what that buys it).
   */
  stallMs: number;
  /**
   * A handshake that has taken no step this long after its accept is stalled (every client speaks
   * first, sending its first flight at once). Shorter than stallMs, so that a silent flood's slots
   * come free quickly (at 125 ms the hostile suite's loopback flood took most freed slots); not zero,
   * so that a device on a loaded host whose flight is late is not evicted at once (at 0 the fleet
   * storm lost 89 of 10,000 devices to that: at 20 refusals they give up).
   */
  silentMs: number;
  /**
   * Handshakes whose stall clock may be stopped at once while the server keeps them waiting on its
   * own load (key lookup, curve step: serverWaiting). Default a quarter of maxHandshaking: a store or
   * pool slowed by a storm does not cost honest handshakes their places, and a stranger who makes the
   * server wait (names whose lookups queue) pins at most that many slots.
   */
  maxServerWaiting?: number;
  now?: () => number;
}

export const DEFAULT_ADMISSION: Omit<AdmissionOptions, "maxHandshaking"> = {
  stallMemorySeconds: 60,
  maxSources: 65_536,
  // Far above an honest step on a loaded server (the fleet storm's Node loop: p99 delay 16 ms), and
  // short enough that an attacker's slot, young for at most three of these (its steps without the
  // password), keeps coming free well within the 10 s handshake deadline.
  stallMs: 500,
  silentMs: 25,
};

/** A connection in the handshake, as admission sees it. */
export interface Contender {
  readonly remoteAddress: string;
}

interface Entry extends HeapItem {
  readonly contender: Contender;
  /** Handshake steps taken (the protocol machine's; 0 at accept). */
  step: number;
  /**
   * When it counts as stalled: silentMs after accept for one that has taken no step (and only once
   * out of the nursery: the server has read whatever it sent), else stallMs after its last step.
   */
  stallsAt: number;
  /**
   * While the server keeps it waiting (serverWaiting): what was left of its stall clock when the wait
   * began (stallsAt is then +Infinity). Undefined otherwise.
   */
  stallLeft: number | undefined;
  /**
   * The server keeps it waiting now (serverWaiting), its clock stopped or not: evicted meanwhile, it
   * does not mark its source, which did nothing wrong (only a client that keeps the server waiting for
   * it stalls its source).
   */
  onServer: boolean;
  /** The event-loop turn it was accepted in: until two turns later the server may not have read it. */
  readonly turn: number;
  /** Its source's node, once out of the nursery and in the eviction order. */
  source: SourceNode | undefined;
}

/** The handshakes of one source address in the eviction order, oldest stall first. */
interface SourceNode extends HeapItem {
  readonly address: string;
  readonly entries: MinHeap<Entry>;
  /** The source has stalls remembered: its handshakes go before any unmarked source's. */
  marked: boolean;
  readonly age: AgeNode;
}

/** A source's place in the order of age alone, marks aside. */
interface AgeNode extends HeapItem {
  readonly source: SourceNode;
}

/** Stalled earliest first. */
const stalledFirst = (a: Entry, b: Entry) => a.stallsAt < b.stallsAt;
const oldestFirst = (a: AgeNode, b: AgeNode) => stalledFirst(a.source.entries.peek()!, b.source.entries.peek()!);
const evictFirst = (a: SourceNode, b: SourceNode) =>
  a.marked !== b.marked ? a.marked : stalledFirst(a.entries.peek()!, b.entries.peek()!);

export class HandshakeAdmission {
  /** Sources with handshakes in the eviction order, ordered by mark then by their first due. */
  private readonly sources = new MinHeap<SourceNode>(evictFirst);
  /** The same sources by their oldest handshake alone: where a stalled one is when marked ones are young. */
  private readonly byAge = new MinHeap<AgeNode>(oldestFirst);
  private readonly bySource = new Map<string, SourceNode>();
  /** Every handshake admitted and not gone: in the nursery or in the eviction order. */
  private readonly entries = new Map<Contender, Entry>();
  /** Handshakes accepted in the last two turns, in order (entries that left are skipped). */
  private readonly nursery = new Fifo<Entry>();
  private readonly stalls: LeakyBuckets;
  private readonly opts: AdmissionOptions;
  private readonly now: () => number;
  /** Handshakes closed to make room (or refused over twice the cap), and stalls recorded, since start. */
  evictions = 0;
  /** Newcomers refused busy at the cap because every handshake there was progressing. */
  busyRefusals = 0;
  stallsRecorded = 0;
  /** Event-loop turns counted by the server (nextTurn). */
  private turn = 0;
  /** Handshakes whose stall clock is stopped (serverWaiting), and how many may be at once. */
  private stoppedClocks = 0;
  private readonly maxServerWaiting: number;

  constructor(opts: AdmissionOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
    this.maxServerWaiting = opts.maxServerWaiting ?? Math.max(1, Math.floor(opts.maxHandshaking / 4));
    this.stalls = new LeakyBuckets({ leakPerSecond: 1, maxLevel: opts.stallMemorySeconds, maxKeys: opts.maxSources, now: this.now });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Sources whose stalls are remembered (an entry fades out when next touched after its stalls drain). */
  get markedSources(): number {
    return this.stalls.size;
  }

  /**
   * Admits `c`, or returns what to close: at the cap, a stalled handshake (already removed, its stall
   * recorded) to make room for `c`; or `c` itself (not admitted), refused busy, when the handshakes out
   * of the nursery are all progressing. While none is out of the nursery, the table runs over the cap
   * until a later turn, up to twice the cap, past which `c` is refused too.
   */
  admit(c: Contender): Contender | undefined {
    if (this.entries.has(c)) return undefined;
    const full = this.entries.size >= this.opts.maxHandshaking;
    const judged = full && this.due() !== undefined;
    const victim = judged ? this.stalledVictim() : undefined;
    if (judged && !victim) {
      // Every handshake that can be judged is progressing: the newcomer waits its turn, not they.
      this.busyRefusals++;
      return c;
    }
    const e: Entry = { contender: c, step: 0, stallsAt: this.now() + this.opts.silentMs, stallLeft: undefined, onServer: false, turn: this.turn, source: undefined, heapIndex: -1 };
    this.entries.set(c, e);
    this.nursery.push(e);
    if (victim) return this.evict(victim);
    if (this.entries.size <= 2 * this.opts.maxHandshaking) return undefined;
    // Everything is too fresh to judge and the overflow is full: refuse the newcomer.
    this.left(c);
    this.evictions++;
    this.stalled(c.remoteAddress);
    return c;
  }

  /**
   * The server calls this once per event-loop turn while `wantsTurns` (from setImmediate, after the
   * turn's reads). Moves the handshakes accepted two turns ago into the eviction order, and returns
   * the stalled ones to close to bring the table back to the cap (progressing ones stay: the table
   * remains over the cap, at most twice it, until they finish or stall).
   *
   * Why turns: under a flood whose every closed connection is reopened at once, one turn can accept
   * hundreds of connections before it reads any of them; evicting them by stall age would then close
   * an honest newcomer before its first bytes were read. A connection accepted in turn t joins the
   * eviction order in turn t + 2, once the turn after its accept has read what it sent.
   */
  nextTurn(): Contender[] {
    this.turn++;
    for (let e = this.nursery.peek(); e && e.turn <= this.turn - 2; e = this.nursery.peek()) {
      this.nursery.shift();
      if (this.entries.get(e.contender) === e) this.order(e);
    }
    const out: Contender[] = [];
    while (this.entries.size > this.opts.maxHandshaking) {
      const victim = this.stalledVictim();
      if (!victim) break;
      out.push(this.evict(victim));
    }
    return out;
  }

  /**
   * True while the nursery holds handshakes, or the table is over the cap with a stalled handshake to
   * close. Over the cap with only progressing ones, turns stop (no busy loop); one that stalls later
   * is closed at the next arrival, which asks for turns again.
   */
  get wantsTurns(): boolean {
    if (this.nursery.length > 0) return true;
    return this.entries.size > this.opts.maxHandshaking && this.stalledVictim() !== undefined;
  }

  /** `c`'s handshake reached step `step`: its stall clock restarts (stopped still, if the server keeps it waiting). */
  stepped(c: Contender, step: number): void {
    const e = this.entries.get(c);
    if (!e) return;
    e.step = step;
    if (e.stallLeft !== undefined) e.stallLeft = this.opts.stallMs;
    else this.stallAt(e, this.now() + this.opts.stallMs);
  }

  /**
   * The server starts (true) or ends (false) keeping `c` waiting on its own work: its key lookup, the
   * guessing budget's judge delay, v3's curve step. Meanwhile its stall clock is stopped, so it cannot
   * be evicted as stalled; it then runs on from where it stopped. Under a reconnect storm the server's
   * own waits grow (a busy loop, a queued pool), and a handshake evicted for them had done nothing wrong.
   */
  serverWaiting(c: Contender, waiting: boolean, stopClock = true): void {
    const e = this.entries.get(c);
    if (!e || waiting === e.onServer) return;
    e.onServer = waiting;
    const now = this.now();
    if (waiting) {
      // Bounded: a stranger can make the server wait (a flood of names whose lookups queue at a slow
      // store costs no guess), so at most maxServerWaiting handshakes have their clock stopped; beyond
      // that one waits with its clock running, evictable as before (the review of session 5). The
      // judge delay never stops it (stopClock false: a penalty on guesses, not the server's load).
      if (!stopClock || this.stoppedClocks >= this.maxServerWaiting) return;
      this.stoppedClocks++;
      e.stallLeft = e.stallsAt - now;
      this.stallAt(e, Number.POSITIVE_INFINITY);
    } else if (e.stallLeft !== undefined) {
      // Already stalled when the wait began (left < 0): stalled as long before as it was then.
      const left = e.stallLeft;
      e.stallLeft = undefined;
      this.stoppedClocks--;
      this.stallAt(e, now + left);
    }
  }

  /** Handshakes whose stall clock is stopped now (serverWaiting). */
  get serverWaitingCount(): number {
    return this.stoppedClocks;
  }

  /** Moves `e`'s stall time, and its place in the eviction order. */
  private stallAt(e: Entry, t: number): void {
    e.stallsAt = t;
    if (!e.source) return;
    e.source.entries.update(e);
    this.sources.update(e.source);
    this.byAge.update(e.source.age);
  }

  /** `c` left the handshake (session confirmed, or closed). */
  left(c: Contender): void {
    const e = this.entries.get(c);
    if (!e) return;
    this.entries.delete(c);
    if (e.stallLeft !== undefined) this.stoppedClocks--;
    if (!e.source) return; // in the nursery: skipped when it reaches the head
    e.source.entries.remove(e);
    this.placeSource(e.source);
  }

  /** A handshake from `source` stalled (timed out, or was evicted). */
  stalled(address: string): void {
    // Keyed like the guessing budget: an IPv6 subscriber holds a whole /64 and could otherwise
    // present a fresh, unmarked source on every connection.
    const source = budgetSource(address);
    this.stallsRecorded++;
    this.stalls.add(source, 1);
    const node = this.bySource.get(source);
    if (node && !node.marked) {
      node.marked = true;
      this.sources.update(node);
    }
  }

  /** Puts a handshake out of the nursery into the eviction order. */
  private order(e: Entry): void {
    const address = budgetSource(e.contender.remoteAddress);
    let node = this.bySource.get(address);
    if (!node) {
      const entries = new MinHeap(stalledFirst);
      const marked = this.isMarked(address);
      const age: { heapIndex: number; source?: SourceNode } = { heapIndex: -1 };
      node = { address, entries, marked, heapIndex: -1, age: age as AgeNode };
      age.source = node;
      this.bySource.set(address, node);
    }
    e.source = node;
    node.entries.push(e);
    this.placeSource(node);
  }

  /** The source whose first handshake is due for eviction, if any is out of the nursery. */
  private due(): SourceNode | undefined {
    // Marks fade with time, not with an event: a source still marked at the top is checked, and
    // moved down if its stalls have drained (fading only lowers a source, so the top is then right).
    let top = this.sources.peek();
    while (top && top.marked && !this.isMarked(top.address)) {
      top.marked = false;
      this.sources.update(top);
      top = this.sources.peek();
    }
    return top;
  }

  /**
   * The source whose first due handshake is stalled, marked sources first, then the one stalled
   * earliest; none if every handshake out of the nursery is progressing.
   */
  private stalledVictim(): SourceNode | undefined {
    const top = this.due();
    if (!top) return undefined;
    if (this.isStalled(top)) return top;
    // A young marked source is on top: an unmarked one may still hold the longest-stalled handshake.
    if (!top.marked) return undefined;
    const oldest = this.byAge.peek()!.source;
    return this.isStalled(oldest) ? oldest : undefined;
  }

  private isStalled(node: SourceNode): boolean {
    return this.now() >= node.entries.peek()!.stallsAt;
  }

  private evict(top: SourceNode): Contender {
    const victim = top.entries.pop()!;
    victim.source = undefined;
    this.entries.delete(victim.contender);
    // A stopped clock is never stalled (stallsAt is +Infinity), so a victim has none; kept exact anyway.
    if (victim.stallLeft !== undefined) this.stoppedClocks--;
    this.placeSource(top);
    this.evictions++;
    if (!victim.onServer) this.stalled(top.address);
    return victim.contender;
  }

  /** Re-sorts a source after its first due handshake changed; forgets it when it has none left. */
  private placeSource(node: SourceNode): void {
    if (node.entries.size === 0) {
      this.sources.remove(node);
      this.byAge.remove(node.age);
      this.bySource.delete(node.address);
    } else if (this.sources.has(node)) {
      this.sources.update(node);
      this.byAge.update(node.age);
    } else {
      this.sources.push(node);
      this.byAge.push(node.age);
    }
  }

  private isMarked(source: string): boolean {
    return this.stalls.level(source) > 0;
  }
}
