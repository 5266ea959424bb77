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
