/**
 * Admission that favours progress (docs/PROTOCOL.md, "Admission and guessing budget"). At most
 * `maxHandshaking` connections may be in the handshake; when a newcomer arrives at the cap, it is
 * admitted and the handshake that has gone longest without progress is closed to make room: the one
 * whose last step is oldest. A step is the protocol machine's state advancing (a hello, preamble,
 * proof or message 1 parsed, message 2 sent), never mere bytes, so a connection that sent a whole
 * message 1 and then waits is stalled from that step on. The number of steps buys no rank: an
 * attacker who sends a preamble and stops would otherwise outrank every honest newcomer.
 *
 * Sources are not refused (devices behind one NAT share the attacker's address), but a source whose
 * handshakes recently stalled (timed out or were evicted) is marked, and its handshakes go before
 * any unmarked source's. On loopback every attacker shares the honest client's address, so the
 * order rests on the stall clock alone: an honest client steps every round trip, so it is younger
 * than the stalled handshakes around it.
 *
 * A connection is not evicted before the server has had the chance to read it: it waits two
 * event-loop turns in a nursery (see nextTurn) before it joins the eviction order. When only nursery
 * connections are left to evict, the table runs over the cap, never beyond twice the cap; past that
 * the newcomer itself is refused.
 *
 * O(log n) per admission, step and exit (indexed heaps: handshakes per source, sources by their
 * first due; the nursery is a FIFO); the table of remembered stalls is bounded.
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
  now?: () => number;
}

export const DEFAULT_ADMISSION: Omit<AdmissionOptions, "maxHandshaking"> = {
  stallMemorySeconds: 60,
  maxSources: 65_536,
};

/** A connection in the handshake, as admission sees it. */
export interface Contender {
  readonly remoteAddress: string;
}

interface Entry extends HeapItem {
  readonly contender: Contender;
  /** Handshake steps taken (the protocol machine's; 0 at accept). */
  step: number;
  /** When the handshake last stepped (or was accepted). */
  since: number;
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
}

/** Stalled longest first (since its last step). */
const stalledFirst = (a: Entry, b: Entry) => a.since < b.since;
const evictFirst = (a: SourceNode, b: SourceNode) =>
  a.marked !== b.marked ? a.marked : stalledFirst(a.entries.peek()!, b.entries.peek()!);

export class HandshakeAdmission {
  /** Sources with handshakes in the eviction order, ordered by mark then by their first due. */
  private readonly sources = new MinHeap<SourceNode>(evictFirst);
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
  stallsRecorded = 0;
  /** Event-loop turns counted by the server (nextTurn). */
  private turn = 0;

  constructor(opts: AdmissionOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
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
   * Admits `c`. Returns the connection to close to make room (already removed, its stall recorded)
   * if the cap was passed and one out of the nursery is due; else the table runs over the cap until
   * a later turn, up to twice the cap, past which `c` itself is returned (refused).
   */
  admit(c: Contender): Contender | undefined {
    if (this.entries.has(c)) return undefined;
    const e: Entry = { contender: c, step: 0, since: this.now(), turn: this.turn, source: undefined, heapIndex: -1 };
    this.entries.set(c, e);
    this.nursery.push(e);
    if (this.entries.size <= this.opts.maxHandshaking) return undefined;
    const due = this.due();
    if (due) return this.evict(due);
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
   * those to close to bring the table back to the cap.
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
    for (let due = this.due(); due && this.entries.size > this.opts.maxHandshaking; due = this.due()) out.push(this.evict(due));
    return out;
  }

  /** True while the nursery holds handshakes, or the table is over the cap. */
  get wantsTurns(): boolean {
    return this.nursery.length > 0 || this.entries.size > this.opts.maxHandshaking;
  }

  /** `c`'s handshake reached step `step`: its stall clock restarts. */
  stepped(c: Contender, step: number): void {
    const e = this.entries.get(c);
    if (!e) return;
    e.step = step;
    e.since = this.now();
    if (!e.source) return;
    e.source.entries.update(e);
    this.sources.update(e.source);
  }

  /** `c` left the handshake (session confirmed, or closed). */
  left(c: Contender): void {
    const e = this.entries.get(c);
    if (!e) return;
    this.entries.delete(c);
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
      node = { address, entries: new MinHeap(stalledFirst), marked: this.isMarked(address), heapIndex: -1 };
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

  private evict(top: SourceNode): Contender {
    const victim = top.entries.pop()!;
    victim.source = undefined;
    this.entries.delete(victim.contender);
    this.placeSource(top);
    this.evictions++;
    this.stalled(top.address);
    return victim.contender;
  }

  /** Re-sorts a source after its first due handshake changed; forgets it when it has none left. */
  private placeSource(node: SourceNode): void {
    if (node.entries.size === 0) {
      this.sources.remove(node);
      this.bySource.delete(node.address);
    } else if (this.sources.has(node)) {
      this.sources.update(node);
    } else {
      this.sources.push(node);
    }
  }

  private isMarked(source: string): boolean {
    return this.stalls.level(source) > 0;
  }
}
