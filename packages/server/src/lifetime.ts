/**
 * A session's idle timeout and maximum lifetime (docs/PROTOCOL.md §v2 "Session lifetime"): two timers
 * per session, neither moved per frame. The driver tells it when input has been read; it calls back
 * once when the session has to end.
 */

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
 * The timers' callbacks are shared functions given the clock as an argument, and the clock holds its
 * session rather than closures over it: an idle session's memory is mostly its count of objects
 * (the fleet bench).
 */
function fireIdle(clock: SessionClock): void {
  clock.idleFired();
}

function fireLifetime(clock: SessionClock): void {
  clock.endNow("max_lifetime");
}

export class SessionClock {
  private readonly idleLimitMs: number;
  private readonly session: ClockedSession;
  private seenProgress: number;
  private lastInputAt = Date.now();
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly lifetimeTimer: ReturnType<typeof setTimeout> | undefined;

  /** `peerPings`: the version's clients can ping (core's Capabilities), so the idle timeout is fair. */
  constructor(limits: LifetimeLimits, peerPings: boolean, session: ClockedSession) {
    this.idleLimitMs = peerPings ? limits.idleTimeoutMs : limits.legacyIdleTimeoutMs;
    this.session = session;
    this.seenProgress = session.inputProgress;
    if (this.idleLimitMs > 0) this.idleTimer = setTimeout(fireIdle, this.idleLimitMs, this);
    if (limits.maxSessionLifetimeMs > 0) this.lifetimeTimer = setTimeout(fireLifetime, limits.maxSessionLifetimeMs, this);
  }

  /** Input was read: if it completed a record or frame (authenticated), the session is not idle. */
  noteInput(): void {
    if (this.idleLimitMs === 0) return;
    const p = this.session.inputProgress;
    if (p !== this.seenProgress) {
      this.seenProgress = p;
      this.lastInputAt = Date.now();
    }
  }

  stop(): void {
    clearTimeout(this.idleTimer);
    clearTimeout(this.lifetimeTimer);
  }

  /** The idle timer fired: it looks at how long ago input last completed a frame: end, or sleep the rest. */
  idleFired(): void {
    const idle = Date.now() - this.lastInputAt;
    if (idle >= this.idleLimitMs) this.endNow("idle_timeout");
    else this.idleTimer = setTimeout(fireIdle, this.idleLimitMs - idle, this);
  }

  endNow(reason: SessionEndReason): void {
    this.stop();
    this.session.end(reason);
  }
}
