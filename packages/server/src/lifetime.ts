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
   * Every version: a session whose output waits to be sent, and of which the kernel has taken less
   * than min(what waited, writeStallMinBytesPerSecond x this limit) over a window of this long (the
   * client reads nothing, or trickles), is closed at once, what waits dropped; 0 never.
   * Default 60 s (DEFAULT_WRITE_STALL_TIMEOUT_MS).
   */
  writeStallTimeoutMs: number;
  /**
   * The drain rate a client must keep on average while output waits for it (above); 0 keeps only
   * the rule that the kernel takes some byte in each window. Default 1 KiB/s
   * (DEFAULT_WRITE_STALL_MIN_BYTES_PER_SECOND).
   */
  writeStallMinBytesPerSecond: number;
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

/**
 * 1 KiB/s (8 kbit/s): a live device on the slowest link we serve (GPRS, NB-IoT downlink: tens of
 * kbit/s) reads faster, and a Dart reference client reads every reply before it sends again, so its
 * output never waits a whole window. Without a floor, "the kernel took some byte" was met by a peer
 * reading a few hundred bytes a second, which kept up to the high-water mark (1 MiB) of replies per
 * session queued for ever on the reference protocol (attacker review, round 2); with it, holding that
 * costs the peer 1 KiB/s of reading per session, and a slower one is closed within the window (and
 * a quarter) after it fell behind.
 */
export const DEFAULT_WRITE_STALL_MIN_BYTES_PER_SECOND = 1024;

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
 * The write stall: once a write leaves bytes unsent, the clock marks bytesSent and what waits, and
 * looks every quarter of the limit. A look that finds nothing unsent stops watching; one that finds
 * the kernel has taken, since the mark, at least what the window asks (min(what waited at the mark,
 * the floor rate x the limit), and at least a byte) marks again; one that finds less, the mark at
 * least the limit old, ends the session. So a session is never ended before a whole window (the
 * limit) in which the kernel took less than that, and at most a quarter of it (and a granule) after.
 *
 * What bytesSent sees: the kernel takes our bytes in steps, when it wakes the writer (Linux: once
 * about a third of the socket's send buffer is free), so a reader at rate R shows progress in steps
 * of that size S every S/R. A reader is therefore never cut while R x limit is at least the window's
 * ask plus one step (at the defaults, 60 KiB plus S in 60 s: 2.5 KiB/s for a send buffer of 87 KiB,
 * about what Linux gives a slow peer, more for a larger one), and is certainly cut below the floor;
 * between the two it depends on the steps. The zero-progress rule (floor 0) has the same blind spot
 * for a reader slower than S per window.
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
  /** What a window must drain at most (the floor rate over the limit; at least a byte). */
  private readonly stallAskBytes: number;
  /** Output waits and is watched: bytesSent at the mark, what waited then, and when that was. */
  private outputWatched = false;
  private sentMark = 0;
  private waitingAtMark = 0;
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
    this.stallAskBytes = Math.max(1, Math.floor((limits.writeStallMinBytesPerSecond * this.stallLimitMs) / 1000));
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
    this.mark(this.wheel.now());
    this.scheduleNext(this.sentMarkAt);
  }

  /** Starts a window: what the kernel has taken so far and what waits for it now. */
  private mark(now: number): void {
    this.sentMark = this.session.bytesSent;
    this.waitingAtMark = this.session.unsentBytes;
    this.sentMarkAt = now;
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

  /** A look at the output: true once a whole window drained less than it asks. */
  private writeStalled(now: number): boolean {
    if (this.session.unsentBytes === 0) {
      this.outputWatched = false;
      return false;
    }
    const taken = this.session.bytesSent - this.sentMark;
    if (taken >= Math.max(1, Math.min(this.waitingAtMark, this.stallAskBytes))) {
      this.mark(now);
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
export function clockGranularityMs(limits: Pick<LifetimeLimits, "idleTimeoutMs" | "legacyIdleTimeoutMs" | "maxSessionLifetimeMs" | "writeStallTimeoutMs">): number {
  // The write stall is looked at every quarter of its limit.
  const used = [limits.idleTimeoutMs, limits.legacyIdleTimeoutMs, limits.maxSessionLifetimeMs, limits.writeStallTimeoutMs / 4].filter((ms) => ms > 0);
  if (!used.length) return 1000;
  return Math.min(1000, Math.max(10, Math.floor(Math.min(...used) / 16)));
}
