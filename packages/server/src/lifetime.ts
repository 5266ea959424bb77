/**
 * A session's idle timeout and maximum lifetime (docs/PROTOCOL.md §v2 "Session lifetime"), on one
 * timer wheel per server. The driver tells it when input has been read; it calls back once when the
 * session has to end.
 */
import type { ClockWheel, WheelEntry } from "./clock-wheel.ts";

/** Why the server ended a session that had not failed (nstp_sessions_ended_total's reason label). */
export type SessionEndReason = "idle_timeout" | "max_lifetime" | "user_removed";

export interface LifetimeLimits {
  /**
   * v2: a session ends after this long without an authenticated frame from the client (its pings
   * count); 0 never. Default 5 minutes.
   */
  idleTimeoutMs: number;
  /** The same for the reference protocol, whose Dart clients cannot ping: default 0 (never). */
  legacyIdleTimeoutMs: number;
  /** A session ends this long after it was established, whatever it does; 0 (the default) never. */
  maxSessionLifetimeMs: number;
}

/** The session a clock runs for: what it has read so far, and how to end it. */
export interface ClockedSession {
  /** Records or frames completed so far (authenticated input). */
  readonly inputProgress: number;
  end(reason: SessionEndReason): void;
}

/**
 * A session's two deadlines, on the server's shared ClockWheel (clock-wheel.ts) rather than a timer
 * each: the clock is in the wheel once, at the earlier of its idle deadline (moved by input, checked
 * when it comes up) and its maximum lifetime. Neither deadline is moved per frame.
 */
export class SessionClock implements WheelEntry {
  wheelTick: number | undefined;
  private readonly idleLimitMs: number;
  private readonly endOfLife: number;
  private readonly session: ClockedSession;
  private readonly wheel: ClockWheel;
  private seenProgress: number;
  private lastInputAt: number;

  /** `peerPings`: the version's clients can ping (core's Capabilities), so the idle timeout is fair. */
  constructor(limits: LifetimeLimits, peerPings: boolean, session: ClockedSession, wheel: ClockWheel, now = wheel.now()) {
    this.idleLimitMs = peerPings ? limits.idleTimeoutMs : limits.legacyIdleTimeoutMs;
    this.endOfLife = limits.maxSessionLifetimeMs > 0 ? now + limits.maxSessionLifetimeMs : Infinity;
    this.session = session;
    this.wheel = wheel;
    this.seenProgress = session.inputProgress;
    this.lastInputAt = now;
    this.scheduleNext();
  }

  /** Input was read: if it completed a record or frame (authenticated), the session is not idle. */
  noteInput(): void {
    if (this.idleLimitMs === 0) return;
    const p = this.session.inputProgress;
    if (p !== this.seenProgress) {
      this.seenProgress = p;
      this.lastInputAt = this.wheel.now();
    }
  }

  stop(): void {
    this.wheel.cancel(this);
  }

  /** The wheel reached this clock: end the session if a deadline passed, or sleep until the next. */
  due(now: number): void {
    if (now >= this.endOfLife) this.endNow("max_lifetime");
    else if (this.idleLimitMs > 0 && now - this.lastInputAt >= this.idleLimitMs) this.endNow("idle_timeout");
    else this.scheduleNext();
  }

  private scheduleNext(): void {
    const idleAt = this.idleLimitMs > 0 ? this.lastInputAt + this.idleLimitMs : Infinity;
    const at = Math.min(idleAt, this.endOfLife);
    if (at !== Infinity) this.wheel.schedule(this, at);
  }

  private endNow(reason: SessionEndReason): void {
    this.stop();
    this.session.end(reason);
  }
}

/**
 * The wheel's granule for these limits: a sixteenth of the shortest deadline in use (so a deadline
 * fires at most about 6 % late), at most a second, at least 10 ms.
 */
export function clockGranularityMs(limits: LifetimeLimits): number {
  const used = [limits.idleTimeoutMs, limits.legacyIdleTimeoutMs, limits.maxSessionLifetimeMs].filter((ms) => ms > 0);
  if (!used.length) return 1000;
  return Math.min(1000, Math.max(10, Math.floor(Math.min(...used) / 16)));
}
