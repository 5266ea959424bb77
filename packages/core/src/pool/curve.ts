/**
 * Running v3's server curve step for a driver: on "need-curve", `runCurveJob(job, pool)` and hand
 * what it resolves with to `V3Server.provideCurve`, unless it is a CurveRefusal: then refuse the
 * handshake with the busy signal. Inline, in the pool or refused as crypto/placement.ts decides
 * (curvePlace: inline on an idle loop within a budget per turn and share of its time, the pool on a
 * busy one, refused when the pool's queue is full, so a burst can neither stall the loop nor leave
 * its garbage among the sessions' objects in the main heap). Run, the same function (v3 verifierShares) runs either way, and it never
 * rejects: an invalid point, a library exception or a connection gone comes back as an Error, which
 * the machine turns into the ordinary silent authentication failure.
 */
import { fromHex } from "../bytes.ts";
import { CURVE_INLINE_SHARE, type CurvePlace, curvePlace, curveQuietUntil } from "../crypto/placement.ts";
import { NstpError } from "../errors.ts";
import { type VerifierCurveInput, type VerifierCurveResult, SCALAR_SIZE, verifierShares } from "../v3/spake2plus.ts";
import type { CryptoPool } from "./index.ts";

/**
 * The step was not run: the pool's queue is full, the pool failed to take or run it (a thread lost:
 * `cause`), or, from a server, the connection's source has its share of the queue in flight (server
 * curve-cap.ts: `reason`). The peer sees only the busy signal whichever it was.
 */
export class CurveRefusal extends NstpError {
  constructor(cause?: unknown, reason?: string) {
    const message = reason ?? (cause === undefined ? "pool queue full" : "the pool failed it");
    super("ERR_BUSY", `server overloaded: curve step refused (${message})`, cause === undefined ? undefined : { cause });
  }
}

/** The event loop's curve accounting: one per thread (module state, as the event loop is). */
export class CurvePlacement {
  /** Curve jobs in the pool and not yet back. */
  outstanding = 0;
  inlineQuietUntilMs = 0;
  /** Steps run inline in this event-loop turn; set back to 0 at the next turn (setImmediate). */
  inlineThisTurn = 0;
  /** Jobs run each way, and refused, for tests and metrics. */
  readonly ran = { inline: 0, pool: 0, refused: 0 };
  readonly share = CURVE_INLINE_SHARE;

  place(pool: CryptoPool | undefined, saturated = pool?.saturated ?? false): CurvePlace {
    return curvePlace({
      pool: pool !== undefined,
      poolSaturated: saturated,
      poolOutstanding: this.outstanding,
      inlineThisTurn: this.inlineThisTurn,
      nowMs: performance.now(),
      inlineQuietUntilMs: this.inlineQuietUntilMs,
    });
  }

  /** Counts an inline step against this turn's budget; the first of a turn arms the reset. */
  tookTurn(): void {
    if (this.inlineThisTurn++ === 0) setImmediate(() => (this.inlineThisTurn = 0));
  }
}

export const curvePlacement = new CurvePlacement();

function runInline(job: VerifierCurveInput, placement: CurvePlacement): VerifierCurveResult | Error {
  placement.tookTurn();
  const start = performance.now();
  try {
    return verifierShares(job);
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  } finally {
    const end = performance.now();
    placement.ran.inline++;
    placement.inlineQuietUntilMs = curveQuietUntil(start, end);
  }
}

function refuse(placement: CurvePlacement, cause?: unknown): CurveRefusal {
  placement.ran.refused++;
  return new CurveRefusal(cause);
}

export async function runCurveJob(job: VerifierCurveInput, pool?: CryptoPool, opts: { signal?: AbortSignal; placement?: CurvePlacement } = {}): Promise<VerifierCurveResult | Error> {
  const placement = opts.placement ?? curvePlacement;
  const place = placement.place(pool);
  if (!pool || place === "inline") return runInline(job, placement);
  if (place === "refuse") return refuse(placement);
  placement.outstanding++;
  placement.ran.pool++;
  try {
    return await pool.verifierShares(job, opts.signal);
  } catch (e) {
    // The pool's own failure (its queue filled since we looked, a thread lost) is no fault of the
    // peer's: refused busy, as on a full queue (placement.ts: overload runs nothing inline), and the
    // client retries. A connection gone (ERR_CLOSED) needs no answer at all.
    if (opts.signal?.aborted) return e as Error;
    return refuse(placement, e);
  } finally {
    placement.outstanding--;
  }
}

/** G in uncompressed SEC1: a valid share and L for the warm-up job (w0 = 1: X - w0·M is not the identity). */
const G_SEC1 = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

function warmJob(): VerifierCurveInput {
  const g = fromHex(G_SEC1);
  const w0 = new Uint8Array(SCALAR_SIZE);
  w0[SCALAR_SIZE - 1] = 1;
  return { w0, L: g, shareP: g.slice(), y: 2n };
}

/**
 * Builds the curve tables (G, M, N) and compiles the curve code once, on this thread and on every
 * pool thread, before the first handshake would pay for it on the event loop: measured in a fresh
 * process (2026-11-26, `bench/src/v3-curve.ts` setup), the first G, M and variable-base
 * multiplications cost 140 ms on Bun and 230 ms on Node, where a warm handshake's cost 4-9 ms. A
 * server calls it before it listens.
 */
export async function warmCurve(pool?: CryptoPool): Promise<void> {
  for (let i = 0; i < 2; i++) verifierShares(warmJob());
  if (pool) await Promise.all(Array.from({ length: pool.threads * 2 }, () => pool.verifierShares(warmJob())));
}
