/**
 * Admission that favours progress (docs/PROTOCOL.md, "Admission"). At most `maxHandshaking`
 * connections may be in the handshake; when a newcomer arrives at the cap, it is admitted and the
 * handshake that has gone longest without a step is closed to make room. A step is the protocol
 * machine's state advancing (a hello, a proof or message 1 parsed, a session confirmed), never mere
 * bytes, so a connection that sent a whole message 1 and then waits is as stalled as a silent one.
 *
 * Sources are not refused (devices behind one NAT share the attacker's address), but a source whose
 * handshakes recently stalled (timed out or were evicted) is marked, and its handshakes go before
 * any unmarked source's; within that order, the oldest stalled goes first. On loopback every attacker shares the
 * honest client's address; there the order is the stall clock alone, and an honest client, which
 * steps every round trip, is always younger than the attackers' stalled connections.
 *
 * O(log n) per admission, step and exit (indexed heaps: handshakes per source, sources by their
 * oldest); the table of remembered stalls is bounded.
 */
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
  readonly source: SourceNode;
  /** When the handshake last stepped (or was accepted). */
  since: number;
}

/** The handshakes of one source address, oldest stalled first. */
interface SourceNode extends HeapItem {
  readonly address: string;
  readonly entries: MinHeap<Entry>;
  /** The source has stalls remembered: its handshakes go before any unmarked source's. */
  marked: boolean;
}

const oldestFirst = (a: Entry, b: Entry) => a.since < b.since;
const evictFirst = (a: SourceNode, b: SourceNode) =>
  a.marked !== b.marked ? a.marked : a.entries.peek()!.since < b.entries.peek()!.since;

export class HandshakeAdmission {
  /** Sources with handshakes open, ordered by mark then by their oldest stalled handshake. */
  private readonly sources = new MinHeap<SourceNode>(evictFirst);
  private readonly bySource = new Map<string, SourceNode>();
  private readonly entries = new Map<Contender, Entry>();
  private readonly stalls: LeakyBuckets;
  private readonly opts: AdmissionOptions;
  private readonly now: () => number;
  /** Handshakes closed to make room, and stalls (timeouts and evictions) recorded, since start. */
  evictions = 0;
  stallsRecorded = 0;

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
   * if the cap was passed; it is `c` itself only when `c`'s source is marked and some other is not.
   */
  admit(c: Contender): Contender | undefined {
    if (this.entries.has(c)) return undefined;
    let node = this.bySource.get(c.remoteAddress);
    if (!node) {
      node = { address: c.remoteAddress, entries: new MinHeap(oldestFirst), marked: this.isMarked(c.remoteAddress), heapIndex: -1 };
      this.bySource.set(node.address, node);
    }
    const e: Entry = { contender: c, source: node, since: this.now(), heapIndex: -1 };
    this.entries.set(c, e);
    node.entries.push(e);
    this.placeSource(node);
    return this.entries.size > this.opts.maxHandshaking ? this.evictOne() : undefined;
  }

  /** `c`'s handshake took a step: its stall clock restarts. */
  stepped(c: Contender): void {
    const e = this.entries.get(c);
    if (!e) return;
    e.since = this.now();
    e.source.entries.update(e);
    this.sources.update(e.source);
  }

  /** `c` left the handshake (session confirmed, or closed). */
  left(c: Contender): void {
    const e = this.entries.get(c);
    if (!e) return;
    this.entries.delete(c);
    e.source.entries.remove(e);
    this.placeSource(e.source);
  }

  /** A handshake from `source` stalled (timed out, or was evicted). */
  stalled(source: string): void {
    this.stallsRecorded++;
    this.stalls.add(source, 1);
    const node = this.bySource.get(source);
    if (node && !node.marked) {
      node.marked = true;
      this.sources.update(node);
    }
  }

  private evictOne(): Contender {
    // Marks fade with time, not with an event: a source still marked at the top is checked, and
    // moved down if its stalls have drained (fading only lowers a source, so the top is then right).
    let top = this.sources.peek()!;
    while (top.marked && !this.isMarked(top.address)) {
      top.marked = false;
      this.sources.update(top);
      top = this.sources.peek()!;
    }
    const victim = top.entries.pop()!;
    this.entries.delete(victim.contender);
    this.placeSource(top);
    this.evictions++;
    this.stalled(top.address);
    return victim.contender;
  }

  /** Re-sorts a source after its oldest handshake changed; forgets it when it has none left. */
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
