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

export class SessionClock {
  private readonly idleLimitMs: number;
  /** Records or frames the machine had completed when last looked at, and when that changed. */
  private readonly progress: () => number;
  private seenProgress: number;
  private lastInputAt = Date.now();
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly lifetimeTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly expire: (reason: SessionEndReason) => void;

  /** `peerPings`: the version's clients can ping (core's Capabilities), so the idle timeout is fair. */
  constructor(limits: LifetimeLimits, peerPings: boolean, progress: () => number, expire: (reason: SessionEndReason) => void) {
    this.idleLimitMs = peerPings ? limits.idleTimeoutMs : limits.legacyIdleTimeoutMs;
    this.progress = progress;
    this.seenProgress = progress();
    this.expire = expire;
    if (this.idleLimitMs > 0) this.armIdle(this.idleLimitMs);
    if (limits.maxSessionLifetimeMs > 0) this.lifetimeTimer = setTimeout(() => this.end("max_lifetime"), limits.maxSessionLifetimeMs);
  }

  /** Input was read: if it completed a record or frame (authenticated), the session is not idle. */
  noteInput(): void {
    if (this.idleLimitMs === 0) return;
    const p = this.progress();
    if (p !== this.seenProgress) {
      this.seenProgress = p;
      this.lastInputAt = Date.now();
    }
  }

  stop(): void {
    clearTimeout(this.idleTimer);
    clearTimeout(this.lifetimeTimer);
  }

  /** When it fires, it looks at how long ago input last completed a frame: end, or sleep the rest. */
  private armIdle(delayMs: number): void {
    this.idleTimer = setTimeout(() => {
      const idle = Date.now() - this.lastInputAt;
      if (idle >= this.idleLimitMs) this.end("idle_timeout");
      else this.armIdle(this.idleLimitMs - idle);
    }, delayMs);
  }

  private end(reason: SessionEndReason): void {
    this.stop();
    this.expire(reason);
  }
}
