/**
 * A young-generation collection at most every `intervalMs` while connections arrive, none while the
 * server only serves established sessions.
 *
 * Why (measured with the fleet bench's heap census, docs in README "A fleet on one host"): each
 * handshake leaves node:crypto temporaries behind (an AES-GCM cipher context is about 0.9 KiB of
 * native memory on Bun, KeyObjects and HMAC contexts a few hundred bytes), held by small JS
 * wrappers. Neither JavaScriptCore nor V8 counts that native memory when deciding to collect, so
 * during a burst of handshakes it piles up between collections, and the allocator keeps the pages
 * (glibc, with the MALLOC_TRIM_THRESHOLD_ recommended for Node, returns none). An idle fleet's RSS
 * was mostly that high-water mark: 10,000 v2 sessions cost 7.8 KiB each on Bun and 20 KiB on Node
 * without the nudge, 3.5-4 and 9 with it (bare sockets: 1.4 and 5.8). A young collection is short
 * (it visits live young objects only), and at most 20 a second while handshakes arrive; echo and
 * other traffic on established sessions never trigger one.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Collect = () => void;

/** The runtime's young-generation collection, or undefined where there is none to call. */
export function youngCollection(): Collect | undefined {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  // Bun.gc(false): a collection without forcing a full synchronous one.
  if (bun) return () => bun.gc(false);
  let gc = (globalThis as { gc?: (opts?: { type: "minor" | "major" }) => void }).gc;
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
  return () => exposed({ type: "minor" });
}

export class CollectionNudge {
  private readonly intervalMs: number;
  private readonly collect: Collect | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(intervalMs: number, collect: Collect | undefined = intervalMs > 0 ? youngCollection() : undefined) {
    this.intervalMs = intervalMs;
    this.collect = collect;
  }

  /** A connection arrived: a collection follows within `intervalMs` (one for all that arrive meanwhile). */
  noteConnection(): void {
    if (this.timer || !this.collect) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.collect!();
    }, this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
