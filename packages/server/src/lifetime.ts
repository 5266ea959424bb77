/**
 * A session's idle timeout, maximum lifetime and write-stall deadline (docs/PROTOCOL.md §v2 "Session
 * lifetime"), on one timer wheel per server. The driver tells it when input has been read and when
 * output was written; it calls back once when the session has to end.
 */
import type { ClockWheel, WheelEntry } from "./clock-wheel.ts";

/** Why the server ended a session that had not failed (nstp_sessions_ended_total's reason label). */
export type SessionEndReason = "idle_timeout" | "max_lifetime" | "user_removed" | "write_stalled" | "message_timeout" | "message_budget";

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
  /**
   * Every version: a session whose output waits to be sent, and of which the kernel has taken no byte
   * for this long (the client reads nothing), is closed at once, what waits dropped; 0 never.
   * Default 60 s (DEFAULT_WRITE_STALL_TIMEOUT_MS).
   */
  writeStallTimeoutMs: number;
}

/**
 * A minute: a live peer that is slow still takes some bytes every few seconds (TCP's window opens as
 * it reads), and one whose network drops for a while retransmits within TCP's backoff (RTOs double
 * from 200 ms; after a 30 s outage the next try comes within about 30 s more), so it cannot reach this;
 * the reference's Dart client reads every reply before it sends again. It is also TCP keepalive's idle
 * time (transport/wire.ts), and a fifth of the v2 idle timeout: what a client that stopped reading
 * pins (up to writeHighWaterMark, 1 MiB) is released within about 75 s instead of never (the
 * reference's sessions have no idle timeout) or 300 s (attacker review, session 8).
 */
export const DEFAULT_WRITE_STALL_TIMEOUT_MS = 60_000;

/** The session a clock runs for: what it has read and sent so far, and how to end it. */
export interface ClockedSession {
  /** Records or frames completed so far (authenticated input). */
  readonly inputProgress: number;
  /** Bytes written and not yet taken by the kernel (Wire.bufferedAmount). */
  readonly unsentBytes: number;
  /** Bytes the kernel has taken so far (Wire.bytesSent): it advances while the client reads. */
  readonly bytesSent: number;
  end(reason: SessionEndReason): void;
}

/**
 * A session's deadlines, on the server's shared ClockWheel (clock-wheel.ts) rather than a timer each:
 * the clock is in the wheel once, at the earliest of its idle deadline (moved by input, checked when it
 * comes up), its maximum lifetime and, while output waits, its next look at the output. No deadline
 * is moved per frame.
 *
 * The write stall: once a write leaves bytes unsent, the clock looks every quarter of the limit; a
 * look that finds bytesSent moved marks progress, one that finds nothing unsent stops watching, and
 * one that finds it still where a look first saw it at least the limit ago ends the session. So a
 * session is never ended before the kernel has taken nothing for the whole limit, and at most a
 * quarter of it (and a granule) after.
 */
export class SessionClock implements WheelEntry {
  wheelTick: number | undefined;
  private readonly idleLimitMs: number;
  private readonly endOfLife: number;
  private readonly session: ClockedSession;
  private readonly wheel: ClockWheel;
  private seenProgress: number;
  private lastInputAt: number;
  private readonly stallLimitMs: number;
  /** Output waits and is watched: bytesSent at the look that first saw it, and when that was. */
  private outputWatched = false;
  private sentMark = 0;
  private sentMarkAt = 0;

  /** `peerPings`: the version's clients can ping (core's Capabilities), so the idle timeout is fair. */
  constructor(limits: LifetimeLimits, peerPings: boolean, session: ClockedSession, wheel: ClockWheel, now = wheel.now()) {
    this.idleLimitMs = peerPings ? limits.idleTimeoutMs : limits.legacyIdleTimeoutMs;
    this.endOfLife = limits.maxSessionLifetimeMs > 0 ? now + limits.maxSessionLifetimeMs : Infinity;
    this.session = session;
    this.wheel = wheel;
    this.seenProgress = session.inputProgress;
    this.lastInputAt = now;
    this.stallLimitMs = limits.writeStallTimeoutMs;
    this.scheduleNext(now);
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

  /** Output was written: if some of it waits unsent, watch that the kernel keeps taking it. */
  noteOutput(): void {
    if (this.outputWatched || this.stallLimitMs === 0 || this.session.unsentBytes === 0) return;
    this.outputWatched = true;
    this.sentMark = this.session.bytesSent;
    this.sentMarkAt = this.wheel.now();
    this.scheduleNext(this.sentMarkAt);
  }

  stop(): void {
    this.wheel.cancel(this);
  }

  /** The wheel reached this clock: end the session if a deadline passed, or sleep until the next. */
  due(now: number): void {
    if (now >= this.endOfLife) this.endNow("max_lifetime");
    else if (this.idleLimitMs > 0 && now - this.lastInputAt >= this.idleLimitMs) this.endNow("idle_timeout");
    else if (this.outputWatched && this.writeStalled(now)) this.endNow("write_stalled");
    else this.scheduleNext(now);
  }

  /** A look at the output: true once the kernel has taken nothing for the whole limit. */
  private writeStalled(now: number): boolean {
    if (this.session.unsentBytes === 0) {
      this.outputWatched = false;
      return false;
    }
    const sent = this.session.bytesSent;
    if (sent !== this.sentMark) {
      this.sentMark = sent;
      this.sentMarkAt = now;
      return false;
    }
    return now - this.sentMarkAt >= this.stallLimitMs;
  }

  private scheduleNext(now: number): void {
    const idleAt = this.idleLimitMs > 0 ? this.lastInputAt + this.idleLimitMs : Infinity;
    const outputAt = this.outputWatched ? Math.min(this.sentMarkAt + this.stallLimitMs, now + this.stallLimitMs / 4) : Infinity;
    const at = Math.min(idleAt, this.endOfLife, outputAt);
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
  // The write stall is looked at every quarter of its limit.
  const used = [limits.idleTimeoutMs, limits.legacyIdleTimeoutMs, limits.maxSessionLifetimeMs, limits.writeStallTimeoutMs / 4].filter((ms) => ms > 0);
  if (!used.length) return 1000;
  return Math.min(1000, Math.max(10, Math.floor(Math.min(...used) / 16)));
}
