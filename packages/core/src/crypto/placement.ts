/**
 * Where AES-GCM runs for a batch of v2 frames: inline on the event loop, or in the worker pool.
 * Decided by measurement (bench/src/placement.ts, in `bun run bench`; table "Crypto backends and AEAD
 * placement" in the README), on this project's 2-core reference machine, Bun 1.4.5 and Node 24:
 *
 * - native (node:crypto): seal + open of a 64 KiB frame takes about 25 µs inline (2.5 GB/s) while a
 *   round trip to a pool thread alone costs 200-350 µs, and the pool's throughput is a fifth of
 *   inline at every size (64 B: 14 vs 8 MB/s; 60 KiB: 2,490 vs 410 MB/s). Inline, always.
 * - noble (pure JS): 69 µs per 64 B frame and 3.3 ms per 60 KiB frame inline, blocking the event loop
 *   for all of it; the pool is 1.6-2x faster at every size (60 KiB: 18 vs 30 MB/s) and blocks
 *   nothing. Below about 1 KiB a batch costs less inline (128 µs) than the hand-over (150 µs).
 *
 * End to end (bench scenario echo-pipelined-noble vs -noble-inline), where the peer competes for the
 * same two cores, the pool does not raise noble's echo throughput (Node 13 vs 18 MB/s at 60 KiB; Bun
 * 13.5 vs 9.6): what it buys is the event loop, which inline noble holds for 3-6 ms per 60 KiB frame
 * while every other connection waits. That is the server's priority, so noble batches go to the pool.
 *
 * The thresholds are in bytes of frames per batch (a driver hands all frames of one read, or of one
 * tick's writes, to one task), so many small messages packed together also go to the pool.
 */
import type { BackendName } from "./backend.ts";

export const AEAD_POOL_MIN_BATCH: Record<BackendName, number> = {
  native: Number.POSITIVE_INFINITY,
  noble: 1024,
};

export function aeadInPool(backend: BackendName, batchBytes: number): boolean {
  return batchBytes >= AEAD_POOL_MIN_BATCH[backend];
}

/**
 * Whether any batch of this backend's AEAD can go to the pool: a connection of a backend that never
 * does (native) needs no OrderedAead, though its server has a pool for v3's curve steps (an object
 * per idle session fewer: issue 13).
 */
export function aeadMayUsePool(backend: BackendName): boolean {
  return Number.isFinite(AEAD_POOL_MIN_BATCH[backend]);
}

/**
 * Where v3's server curve step (verifierShares: five P-256 scalar multiplications, RFC 9383 §3.3)
 * runs: inline on the event loop when it is idle, in the worker pool when it is busy. Measured with
 * `bun bench/src/v3-curve.ts --ms 600` and `node bench/src/v3-curve.ts --ms 600` (its "placement"
 * figures), 2026-11-26, on the shared 2-core machine at load 4-7, so upper bounds:
 *
 * - one job, wall time: Bun 3.9 ms inline vs 5.5 ms through an idle 2-thread pool; Node 24 19 ms vs
 *   20 ms. Inline saves the hand-over (1-1.5 ms) but holds the loop for the whole job: on Node one
 *   job alone is already more than the 10 ms event-loop p99 the server keeps in a storm.
 * - 64 jobs at once (a cold storm's curve work): inline, the loop goes 260 ms (Bun) and 1,070 ms
 *   (Node) without a turn; in the pool its longest gap is 16 ms (Bun) and 9 ms (Node), for a wall
 *   time of 640 and 1,120 ms (the threads compete with the server's own loop for the two cores).
 *
 * So a job runs inline only when nothing else is waiting for curve work and the loop has not spent
 * more than CURVE_INLINE_SHARE of its recent time on it: after an inline job of c ms the next one
 * may run inline no sooner than c·(1/share − 1) ms later. Busy is measured two ways, both cheap and
 * the same on Bun and Node (whose eventLoopUtilization Bun reports as zero): the pool's own measure,
 * curve jobs handed to it and not yet back (a burst is under way: join it rather than block the
 * loop), and the loop's measure, its inline curve time (so a steady trickle of handshakes cannot
 * hold the loop more than that share). The job's cost is measured as it runs, so the rule adapts to
 * the runtime (four to five times dearer on Node) without a table per runtime. Whatever the rule,
 * at most CURVE_INLINE_PER_TURN steps run inline in one event-loop turn, and a full pool queue is
 * overload (below), where nothing runs inline.
 */
export const CURVE_INLINE_SHARE = 0.1;

/**
 * Overload: the pool's queue is full (CryptoPool.maxQueue). The step is not run: the handshake is
 * refused with the busy signal (shed, don't stall: the client retries, ERR_BUSY, and nothing about
 * its password was judged). History, both measured:
 * - Running every further step inline, as this rule once did, stalled the loop: in the v3 soak
 *   (1,000 sessions, `--workers 2`, Node server, 2026-11-27) server 0 ran 437 steps of 9-17 ms on its
 *   loop and 75 in its pool, both loops went up to 7.8 s without a turn, and 900 echo replies of
 *   established sessions were lost.
 * - Then the loop lent itself within a budget (one step per turn, half of its recent time). That
 *   held the loop, but each inline step leaves tens of thousands of BigInts in the main heap, in the
 *   same size classes as a session's small objects, while sessions are being established: the
 *   sessions' objects end up scattered over blocks that JavaScriptCore keeps (it does not compact).
 *   At 10,000 idle v3 sessions opened in a burst on Bun (`bun bench/src/density.ts --census`,
 *   2026-11-27, 3,800-4,500 of 10,050 steps inline) the main heap's capacity was 5.0-5.5 KiB per
 *   session for 3.0 live; with overload refused (15-22 inline), 4.3-4.4 KiB. The loop's share of
 *   curve work bought no throughput where it matters: the server's pool has as many threads as the
 *   process's share of the cores (cli.ts), so an inline step only competes with them.
 * The pool's queue is not made deeper for curve work: it is already worth 64 steps per thread (about
 * 1.1 s on Node), and a deeper one only makes the client wait longer for an answer it gets sooner by
 * retrying after the busy signal.
 */
export const CURVE_INLINE_PER_TURN = 1;

export interface CurvePlacementState {
  /** A pool exists to run the job. */
  pool: boolean;
  /** The pool would refuse a task (its queue is full). */
  poolSaturated: boolean;
  /** Curve jobs in the pool and not yet back. */
  poolOutstanding: number;
  /** Curve steps run inline in this event-loop turn. */
  inlineThisTurn: number;
  /** Now, and the time before which the loop's share (CURVE_INLINE_SHARE) of inline curve work is spent (ms, one clock). */
  nowMs: number;
  inlineQuietUntilMs: number;
}

/** Where a curve step goes: run it here, hand it to the pool, or refuse the handshake (busy). */
export type CurvePlace = "inline" | "pool" | "refuse";

export function curvePlace(s: CurvePlacementState): CurvePlace {
  // Without a pool the step has nowhere else to go (a server without one computes it in the machine).
  if (!s.pool) return "inline";
  if (s.poolSaturated) return "refuse";
  const turnLeft = s.inlineThisTurn < CURVE_INLINE_PER_TURN;
  return turnLeft && s.poolOutstanding === 0 && s.nowMs >= s.inlineQuietUntilMs ? "inline" : "pool";
}

/** When the loop may next run a curve job inline at CURVE_INLINE_SHARE of its time, after one that ran from startMs to endMs. */
export function curveQuietUntil(startMs: number, endMs: number): number {
  return endMs + (endMs - startMs) * (1 / CURVE_INLINE_SHARE - 1);
}
