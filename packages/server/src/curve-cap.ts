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
 * What the per-source cap does not bound (the second review of session 6, and the red team of session
 * 8): many sources together. A stranger needs no password to cost a curve step (any valid point will
 * do as its share; the guess it is charged buys it nothing else), and one IPv6 customer holds 256 /64s
 * (a /56), so with the per-source cap alone strangers could keep the queue full and every v3 device
 * would be refused busy for as long as they liked. So the sources no peer has proven its key from
 * lately (proven-sources.ts; the guessing budget's trustSeconds) share one cap among them all,
 * `maxUnproven` steps in flight (default half the pool's queue): however many sources a stranger
 * holds, devices that have logged in from their addresses before keep the other half. What is left:
 * a device that has never logged in from its address (a new one; and every device just after the
 * server restarted, since proven sources are remembered in memory) competes with the strangers for
 * their half; a client holding a valid password proves its source and is not a stranger. A cap per
 * claimed user would bound that last one, but a fleet that shares one password under one name (this
 * library's first use) would then share one cap for all its devices. The README says so.
 *
 * Without a pool the step runs inline in the machine: there is no queue to fill and no cap.
 */
import { budgetSource } from "./budget.ts";
import type { ProvenSources } from "./proven-sources.ts";

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

/**
 * What every source not proven lately may hold together: half the pool's queue. The other half is
 * left to devices that have logged in from their addresses before; half is still 32 steps per pool
 * thread, far more than the thread runs while a handshake waits (a step is 4-17 ms: a queue of 32 is
 * 0.1-0.5 s of work), so a burst of new devices is slowed by it no more than by the queue itself.
 */
export const CURVE_QUEUE_SHARE_UNPROVEN = 1 / 2;

/** The default `maxCurveStepsUnproven` for a pool whose queue holds `maxQueue` tasks. */
export function defaultCurveStepsUnproven(maxQueue: number): number {
  return Math.max(1, Math.floor(maxQueue * CURVE_QUEUE_SHARE_UNPROVEN));
}

/** A place for one curve step, to give back to release() once. */
export interface CurvePlace {
  readonly source: string;
  /** Counted in the strangers' shared cap (its source was not proven when it was taken). */
  readonly unproven: boolean;
}

export interface CurveStepCapOptions {
  /** Sources a peer proved its key from lately (the server's, shared with lookup-gate.ts). */
  proven: ProvenSources;
  /** Steps in flight from every source not proven, together. */
  maxUnproven: number;
}

export class CurveStepCap {
  readonly max: number;
  readonly maxUnproven: number;
  private readonly proven: ProvenSources | undefined;
  /**
   * Source -> its curve steps in flight. Only sources with a step in flight are held (an entry goes
   * at zero), so its size is bounded by the handshakes in progress (the handshake cap).
   */
  private readonly inFlight = new Map<string, number>();
  /** Steps in flight that were taken by sources not proven (the strangers' shared cap). */
  private unprovenInFlight = 0;
  /** Steps refused for their source being at the cap (for tests and metrics). */
  refused = 0;
  /** Steps refused for the sources not proven being at their shared cap (for tests and metrics). */
  refusedUnproven = 0;

  /** Without `shared`, only the per-source cap applies. */
  constructor(max: number, shared?: CurveStepCapOptions) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxCurveStepsPerSource must be an integer >= 1, got ${max}`);
    const maxUnproven = shared?.maxUnproven ?? Number.POSITIVE_INFINITY;
    if (shared && (!Number.isInteger(maxUnproven) || maxUnproven < 1)) throw new RangeError(`maxCurveStepsUnproven must be an integer >= 1, got ${maxUnproven}`);
    this.max = max;
    this.maxUnproven = maxUnproven;
    this.proven = shared?.proven;
  }

  /**
   * Takes a place for a curve step from `address`: the place to give back to release(), or undefined
   * if its source is at its cap, or it is not proven and the unproven sources are at theirs (the step
   * must not run).
   */
  take(address: string): CurvePlace | undefined {
    const source = budgetSource(address);
    const n = this.inFlight.get(source) ?? 0;
    if (n >= this.max) {
      this.refused++;
      return undefined;
    }
    const unproven = this.proven !== undefined && !this.proven.has(source);
    if (unproven && this.unprovenInFlight >= this.maxUnproven) {
      this.refusedUnproven++;
      return undefined;
    }
    this.inFlight.set(source, n + 1);
    if (unproven) this.unprovenInFlight++;
    return { source, unproven };
  }

  /** Gives back a place that take() returned; the caller gives each back exactly once. */
  release(place: CurvePlace): void {
    const n = this.inFlight.get(place.source);
    if (n === undefined) return;
    if (n <= 1) this.inFlight.delete(place.source);
    else this.inFlight.set(place.source, n - 1);
    if (place.unproven) this.unprovenInFlight--;
  }

  /** Steps in flight from `address`'s source. */
  inFlightFrom(address: string): number {
    return this.inFlight.get(budgetSource(address)) ?? 0;
  }

  /** Steps in flight from sources not proven, together. */
  get unprovenSteps(): number {
    return this.unprovenInFlight;
  }

  /** Sources with a step in flight (the map's size). */
  get sources(): number {
    return this.inFlight.size;
  }
}
