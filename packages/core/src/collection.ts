/**
 * Collections nudged by time while garbage is being made: the server's young collections while
 * connections arrive, and the worker pool's full collections while v3 curve steps run there.
 *
 * The server (young generation, at most every 50 ms while connections arrive, none while it only
 * serves established sessions). Why (measured with the fleet bench's heap census, docs in README "A
 * fleet on one host"): each handshake leaves node:crypto temporaries behind (an AES-GCM cipher
 * context is about 0.9 KiB of native memory on Bun, KeyObjects and HMAC contexts a few hundred
 * bytes), held by small JS wrappers. Neither JavaScriptCore nor V8 counts that native memory when
 * deciding to collect, so during a burst of handshakes it piles up between collections, and the
 * allocator keeps the pages (glibc, with the MALLOC_TRIM_THRESHOLD_ recommended for Node, returns
 * none). An idle fleet's RSS was mostly that high-water mark: 10,000 v2 sessions cost 7.8 KiB each on
 * Bun and 20 KiB on Node without the nudge, 3.5-4 and 9 with it (bare sockets: 1.4 and 5.8). A young
 * collection is short (it visits live young objects only), and at most 20 a second while handshakes
 * arrive; echo and other traffic on established sessions never trigger one.
 *
 * The pool's threads: pool/worker.ts (a full collection every CURVE_STEPS_PER_COLLECTION curve steps).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { isMainThread } from "node:worker_threads";

type Collect = () => void;

/** "minor": the young generation only; "major": the whole heap. */
export type CollectionKind = "minor" | "major";

/** The runtime's collection of that kind on this thread, or undefined where there is none to call. */
export function runtimeCollection(kind: CollectionKind): Collect | undefined {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  // Bun.gc(false): a collection without forcing a full synchronous one; Bun.gc(true): a full one.
  if (bun) return () => bun.gc(kind === "major");
  let gc = (globalThis as { gc?: (opts?: { type: CollectionKind }) => void }).gc;
  // V8's flags are process-wide: toggled from several threads at once (every pool thread loads this
  // module), one thread's --no-expose-gc can land between another's two toggles, which then gets no
  // collection, and a context the application makes meanwhile gets a gc global (the review of session
  // 5). Only the main thread takes it. A Node pool thread does without: its growth under curve
  // garbage is held by its young-generation cap (pool/index.ts), which full collections did not do.
  if (!gc && !isMainThread) return undefined;
  if (!gc) {
    try {
      // V8's gc extension, made available to a new context only: the application's global scope is
      // unchanged. It takes { type: "minor" } for a scavenge of the young generation. The flag is
      // turned off again at once, so contexts the host application creates later (node:vm) do not
      // get a `gc` global from us.
      setFlagsFromString("--expose-gc");
      try {
        gc = runInNewContext("gc") as typeof gc;
      } finally {
        setFlagsFromString("--no-expose-gc");
      }
    } catch {
      return undefined;
    }
  }
  if (typeof gc !== "function") return undefined;
  const exposed = gc;
  return () => exposed({ type: kind });
}

/** The runtime's young-generation collection (the server's nudge). */
export function youngCollection(): Collect | undefined {
  return runtimeCollection("minor");
}

export class CollectionNudge {
  private readonly intervalMs: number;
  private readonly collect: Collect | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Collections run so far (tests, metrics). */
  collections = 0;

  constructor(intervalMs: number, collect: Collect | undefined = intervalMs > 0 ? youngCollection() : undefined) {
    this.intervalMs = intervalMs;
    this.collect = collect;
  }

  /** Garbage is being made (a connection arrived, a curve step ran): a collection follows within `intervalMs` (one for all that come meanwhile). */
  note(): void {
    if (this.timer || !this.collect) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.collections++;
      this.collect!();
    }, this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * A collection every `every` units of work, counted by the caller, for a thread whose event loop
 * does not turn between tasks (a piscina worker waits for tasks with Atomics.wait, so no timer of
 * its own fires there, and neither do the runtime's scheduled collections).
 */
export class CountedCollection {
  private readonly every: number;
  private readonly collect: Collect | undefined;
  private count = 0;
  /** Collections run so far (tests, metrics). */
  collections = 0;

  constructor(every: number, collect: Collect | undefined) {
    this.every = every;
    this.collect = collect;
  }

  /** One unit of work is about to run: the collection first, when `every` have run since the last. */
  tick(): void {
    if (!this.collect || ++this.count < this.every) return;
    this.count = 0;
    this.collections++;
    this.collect();
  }
}
