/**
 * v3's curve steps in flight per source (the attacker's review of session 6). With a worker pool, a
 * curve step beyond the pool's queue is refused busy (crypto/placement.ts curvePlace: overload runs
 * nothing inline), so the queue is shared by every v3 client; and neither admission (which caps the
 * handshake total) nor the guessing budget (which refunds the guess of a handshake that completes)
 * bounds one client's share of it. One client holding a valid password could keep the whole queue
 * full from one address, opening v3 handshakes back to back at about 2 of the server's 5 scalar
 * multiplications each, and every other v3 client would be refused busy meanwhile. So each source
 * (budget.ts budgetSource: an IPv4 address, an IPv6 /64, the same key as the guessing budget's) may
 * hold at most `max` curve steps in flight (waiting in the queue or running, for connections still
 * open: a step whose connection went gives its place back at once, though a thread may still be
 * running it; each such abandoned step cost its source a guess); beyond it the handshake is refused
 * exactly as a full queue refuses it (handshake.ts curve()), so busy or close still tells nothing
 * about user or password.
 *
 * What it does not bound (the second review of session 6): the key is the source, and a client with
 * a valid password gets every guess back, so one that controls many sources (eight IPv6 /64s of a
 * /56) can still fill the queue at no cost; with the noble backend, whose AEAD batches may take three
 * quarters of the queue (CryptoPool.handshakeReserve), two sources fill the rest. A cap per claimed
 * user would close that, but a fleet that shares one password under one name (this library's first
 * use) would then share one cap for all its devices. Left as it is; the README says so.
 *
 * Without a pool the step runs inline in the machine: there is no queue to fill and no cap.
 */
import { budgetSource } from "./budget.ts";

/**
 * The default cap is this fraction of the pool's queue (CryptoPool.maxQueue: 64 steps per thread),
 * at least 1: one source may then take an eighth of the queue, so filling it takes at least eight
 * sources (addresses or /64s; above: with a valid password those cost nothing more), while one address behind
 * which several honest devices reconnect at once still has 8 steps per pool thread in flight (a
 * step is 4-17 ms of CPU: crypto/placement.ts), and past that is refused busy and retries.
 */
export const CURVE_QUEUE_SHARE_PER_SOURCE = 1 / 8;

/** The default `maxCurveStepsPerSource` for a pool whose queue holds `maxQueue` tasks. */
export function defaultCurveStepsPerSource(maxQueue: number): number {
  return Math.max(1, Math.floor(maxQueue * CURVE_QUEUE_SHARE_PER_SOURCE));
}

export class CurveStepCap {
  readonly max: number;
  /**
   * Source -> its curve steps in flight. Only sources with a step in flight are held (an entry goes
   * at zero), so its size is bounded by the handshakes in progress (the handshake cap).
   */
  private readonly inFlight = new Map<string, number>();
  /** Steps refused for their source being at the cap (for tests and metrics). */
  refused = 0;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxCurveStepsPerSource must be an integer >= 1, got ${max}`);
    this.max = max;
  }

  /**
   * Takes a place for a curve step from `address`: the source key to give back to release(), or
   * undefined if its source is at the cap (the step must not run).
   */
  take(address: string): string | undefined {
    const source = budgetSource(address);
    const n = this.inFlight.get(source) ?? 0;
    if (n >= this.max) {
      this.refused++;
      return undefined;
    }
    this.inFlight.set(source, n + 1);
    return source;
  }

  /** Gives back a place that take() returned; the caller gives each back exactly once. */
  release(source: string): void {
    const n = this.inFlight.get(source);
    if (n === undefined) return;
    if (n <= 1) this.inFlight.delete(source);
    else this.inFlight.set(source, n - 1);
  }

  /** Steps in flight from `address`'s source. */
  inFlightFrom(address: string): number {
    return this.inFlight.get(budgetSource(address)) ?? 0;
  }

  /** Sources with a step in flight (the map's size). */
  get sources(): number {
    return this.inFlight.size;
  }
}
