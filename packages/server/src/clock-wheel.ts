/**
 * One timer for every session's deadlines (idle timeout, maximum lifetime), instead of a timer per
 * session: a setTimeout was an idle session's largest object (a Timeout and its native entry, about
 * 0.3 KiB on Bun; the fleet bench's heap census). Deadlines are kept in buckets of `granularityMs`
 * (rounded up, so a deadline fires at most one granule late, never early); the wheel's single
 * timer sleeps until the earliest bucket. A session is in at most one bucket at a time.
 */
import { type HeapItem, MinHeap } from "./min-heap.ts";

/** What the wheel calls back: the session decides whether its deadline has really come. */
export interface WheelEntry {
  /** The bucket the entry is in (owned by the wheel); undefined when not scheduled. */
  wheelTick: number | undefined;
  due(now: number): void;
}

interface Bucket extends HeapItem {
  tick: number;
  entries: Set<WheelEntry>;
}

export class ClockWheel {
  private readonly granularityMs: number;
  /**
   * The wheel's clock, which its users read too (lifetime.ts): monotonic by default, so a step of the
   * wall clock neither ends every session at once nor keeps them past their limits (attacker review).
   */
  readonly now: () => number;
  private readonly buckets = new Map<number, Bucket>();
  /** Buckets by tick, earliest first: the timer sleeps until the top one. */
  private readonly order = new MinHeap<Bucket>((a, b) => a.tick < b.tick);
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerTick = Infinity;

  /** What an entry's callback threw, once every due entry was served (by default: thrown on). */
  private readonly onError: (e: unknown) => void;

  constructor(granularityMs: number, now: () => number = () => performance.now(), onError: (e: unknown) => void = (e) => { throw e; }) {
    this.granularityMs = Math.max(1, granularityMs);
    this.now = now;
    this.onError = onError;
  }

  /** Entries scheduled (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.entries.size;
    return n;
  }

  /** Calls `entry.due(now)` at `at` (the wheel's clock, ms) or up to one granule later; replaces an earlier schedule. */
  schedule(entry: WheelEntry, at: number): void {
    const tick = Math.ceil(at / this.granularityMs);
    if (entry.wheelTick === tick) return;
    this.cancel(entry);
    let bucket = this.buckets.get(tick);
    if (!bucket) {
      bucket = { tick, entries: new Set(), heapIndex: -1 };
      this.buckets.set(tick, bucket);
      this.order.push(bucket);
    }
    bucket.entries.add(entry);
    entry.wheelTick = tick;
    this.arm();
  }

  cancel(entry: WheelEntry): void {
    const tick = entry.wheelTick;
    if (tick === undefined) return;
    entry.wheelTick = undefined;
    const bucket = this.buckets.get(tick);
    if (!bucket) return;
    bucket.entries.delete(entry);
    if (bucket.entries.size === 0) this.drop(bucket);
  }

  private drop(bucket: Bucket): void {
    this.buckets.delete(bucket.tick);
    this.order.remove(bucket);
  }

  /** Sleeps until the earliest bucket; one timer, moved only when an earlier bucket appears. */
  private arm(): void {
    const first = this.order.peek();
    if (!first) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.timerTick = Infinity;
      return;
    }
    if (this.timer && first.tick >= this.timerTick) return;
    clearTimeout(this.timer);
    this.timerTick = first.tick;
    const timer = setTimeout(() => {
      // Judged after this turn's reads, as Deadline.arm is (core driver/deadline.ts): the event loop
      // runs expired timers before it polls the sockets, so after a stall longer than an idle timeout
      // less the ping interval, the pings that arrived meanwhile were still unread and live sessions
      // were ended as idle. setImmediate runs after the poll phase, once their input is noted.
      setImmediate(() => {
        if (this.timer === timer) this.fire();
      });
    }, Math.max(0, first.tick * this.granularityMs - this.now()));
    this.timer = timer;
    // The sessions' sockets keep the process alive, not their deadlines.
    this.timer.unref?.();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerTick = Infinity;
    const now = this.now();
    const nowTick = Math.floor(now / this.granularityMs);
    const due: WheelEntry[] = [];
    for (let b = this.order.peek(); b && b.tick <= nowTick; b = this.order.peek()) {
      this.drop(b);
      // Every entry leaves its bucket before any is called: one that throws cannot strand the
      // others in a dropped bucket (never called again: sessions past their limits).
      for (const entry of b.entries) {
        entry.wheelTick = undefined;
        due.push(entry);
      }
    }
    const failures: unknown[] = [];
    for (const entry of due) {
      // An entry's callback may end its session or schedule it again (into a later bucket).
      try {
        entry.due(now);
      } catch (e) {
        failures.push(e);
      }
    }
    this.arm();
    // A failure still surfaces (an application's logger, say), after every entry was served.
    for (const e of failures) this.onError(e);
  }
}
