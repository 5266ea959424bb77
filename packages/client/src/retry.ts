/**
 * Reconnect with backoff: connect() again after a failure that a later attempt can cure (the server
 * is down, restarting, busy, or the network dropped), waiting longer each time, with jitter so a
 * fleet of clients does not return in step. Failures that waiting cannot cure (a wrong password, a
 * bad argument, a protocol mismatch) are thrown at once.
 */
import { type ErrorCode, NstpError } from "@nstp/core";
import { type ConnectOptions, type Session, connect } from "./connect.ts";

export interface BackoffOptions {
  /** Attempts in all, the first included (default 10; Infinity retries until aborted). */
  attempts?: number;
  /** First wait (default 200 ms), multiplied by `factor` (default 2) each time, capped at `maxDelayMs` (default 30 s). */
  initialDelayMs?: number;
  factor?: number;
  maxDelayMs?: number;
  /** Cancels the waiting and the attempts. */
  signal?: AbortSignal;
  /** Told of each failed attempt before the wait. */
  onRetry?: (error: NstpError, attempt: number, delayMs: number) => void;
  /** The randomness of the jitter (tests). */
  random?: () => number;
}

export const RETRYABLE: ReadonlySet<ErrorCode> = new Set(["ERR_CONNECT", "ERR_BUSY", "ERR_CLOSED", "ERR_TIMEOUT"]);

/** The wait before attempt `n + 1` after `n` failures: exponential, capped, with full jitter. */
export function backoffDelay(failures: number, o: BackoffOptions = {}): number {
  const base = Math.min(o.maxDelayMs ?? 30_000, (o.initialDelayMs ?? 200) * (o.factor ?? 2) ** (failures - 1));
  return Math.round(base / 2 + (base / 2) * (o.random ?? Math.random)());
}

export async function connectWithBackoff(opts: ConnectOptions, backoff: BackoffOptions = {}): Promise<Session> {
  const attempts = backoff.attempts ?? 10;
  for (let attempt = 1; ; attempt++) {
    if (backoff.signal?.aborted) throw new NstpError("ERR_CLOSED", "reconnect cancelled");
    try {
      return await connect(opts);
    } catch (e) {
      const err = e instanceof NstpError ? e : new NstpError("ERR_CONNECT", String(e), { cause: e });
      if (!RETRYABLE.has(err.code) || attempt >= attempts) throw err;
      const delay = backoffDelay(attempt, backoff);
      backoff.onRetry?.(err, attempt, delay);
      await sleep(delay, backoff.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
