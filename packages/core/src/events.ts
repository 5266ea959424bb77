/**
 * What a sans-IO protocol machine hands back to its driver. Machines never touch sockets, timers or
 * globals: they take bytes and return these, and throw an NstpError when the connection must close.
 */
import type { VerifierCurveInput } from "./v3/spake2plus.ts";

export type Output =
  /** Bytes to write to the peer, in order. */
  | { type: "send"; data: Uint8Array }
  /**
   * The server needs this user's PSK (or a dummy key for an unknown user) before it can go on; a v3
   * server takes the user's verifier { w0, L } (or a fake one) through provideVerifier instead.
   */
  | { type: "need-key"; username: string }
  /**
   * v3 server built with `deferCurve`: shareP and the user's record are both in, and the five scalar
   * multiplications are due. Run `verifierShares(job)` (inline or in the worker pool) and hand the
   * result (or the error it threw) to `provideCurve`. Message 2 follows it: charge guessing budgets here.
   */
  | { type: "need-curve"; job: VerifierCurveInput }
  /** Both sides proved knowledge of the key; application messages may flow. */
  | { type: "established"; username: string }
  /** An authenticated application message (server: a request; client: a reply). */
  | { type: "message"; data: Uint8Array }
  /** The peer ended the session cleanly (v2 close chunk): nothing was truncated. */
  | { type: "closed" };

export type Random = (length: number) => Uint8Array;
