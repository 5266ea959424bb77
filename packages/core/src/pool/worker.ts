/**
 * The pool's worker: runs the CryptoBackend interface in another thread. Each task names the backend
 * and the operation, so the pool is a way of running that interface, not a second implementation.
 */
import { CountedCollection, runtimeCollection } from "../collection.ts";
import { getBackend } from "../crypto/index.ts";
import { type VerifierCurveInput, type VerifierCurveResult, verifierShares } from "../v3/spake2plus.ts";

/** A curve job's failure, returned as data: the thread never dies of a peer's bad point. */
export interface CurveFailure {
  failed: string;
}

export type PoolTask =
  | { op: "pbkdf2"; backend: string; password: Uint8Array; salt: Uint8Array; iterations: number; length: number }
  | { op: "seal"; backend: string; key: Uint8Array; items: { nonce: Uint8Array; data: Uint8Array; aad?: Uint8Array }[] }
  | { op: "open"; backend: string; key: Uint8Array; items: { nonce: Uint8Array; data: Uint8Array; aad?: Uint8Array }[] }
  | { op: "verifierShares"; backend: string; job: VerifierCurveInput };

/**
 * A full collection of this thread's heap every CURVE_STEPS_PER_COLLECTION curve steps (before the
 * step, as this thread's event loop does not turn between tasks: collection.ts CountedCollection).
 * Why: a step makes tens of thousands of short-lived BigInts (noble's P-256 field arithmetic: five
 * scalar multiplications of hundreds of point operations each), and a pool thread blocked in
 * Atomics.wait between tasks never runs the runtime's scheduled collections: over a burst of a few
 * thousand steps its heap grew by 30 MB (Bun) and kept it, 3 KiB of RSS per session at the fleet
 * bench's 10,000 idle v3 sessions (bench/src/density.ts, 2026-11-27). With a full collection every
 * 128 steps the same 10,000 steps leave 0-5 MB (every 256: 5-8 MB), for one collection of 11-18 ms
 * per 128 steps of 4-9 ms (niced, loaded machine): 2-3 % of the thread's curve work; v3 handshakes/s
 * unchanged within the noise. Counted in steps because the garbage is made per step. (On Node the
 * thread grew by 44 MB with or without these collections; 18 MB of it was V8's young generation,
 * which index.ts caps; a Node pool thread takes no collection at all: collection.ts says why.)
 */
export const CURVE_STEPS_PER_COLLECTION = 128;
export const curveCollections = new CountedCollection(CURVE_STEPS_PER_COLLECTION, runtimeCollection("major"));

export default async function run(task: PoolTask): Promise<Uint8Array | (Uint8Array | null)[] | VerifierCurveResult | CurveFailure> {
  const backend = getBackend(task.backend);
  switch (task.op) {
    // The password and key arrive as this thread's own copies (structured clone): zeroed once used, so
    // that a thread keeps no copy of a session's key or a user's password (machine.ts dispose).
    case "pbkdf2":
      try {
        return await backend.pbkdf2Sha256(task.password, task.salt, task.iterations, task.length);
      } finally {
        task.password.fill(0);
      }
    case "seal":
      try {
        return task.items.map((i) => backend.aesGcmSeal(task.key, i.nonce, i.data, i.aad));
      } finally {
        task.key.fill(0);
      }
    case "open":
      try {
        return task.items.map((i) => backend.aesGcmOpen(task.key, i.nonce, i.data, i.aad));
      } finally {
        task.key.fill(0);
      }
    case "verifierShares":
      // The same function V3Server runs inline (docs/PROTOCOL.md §v3 "Validation"): an invalid or
      // identity point, or any library exception, comes back as a failure the machine turns into the
      // ordinary silent AuthError.
      curveCollections.tick();
      try {
        return verifierShares(task.job);
      } catch (e) {
        return { failed: e instanceof Error ? e.message : String(e) };
      } finally {
        // This thread's copy of the record's w0 (the scalar y is a BigInt: not wipeable).
        task.job.w0.fill(0);
      }
  }
}
