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
   * Every version: a session whose output waits to be sent, and whose client has read less than the
   * drain rate below asks (it reads nothing, or trickles) by more than this long's worth, or nothing
   * at all for this long, is closed at once, what waits dropped (SessionClock); 0 never. Default 60 s
   * (DEFAULT_WRITE_STALL_TIMEOUT_MS).
   */
  writeStallTimeoutMs: number;
  /**
   * The drain rate a client must keep on average while output waits for it (above), or less when
   * less waits (what waits over the limit); 0 keeps only the rule that the kernel takes some byte
   * within the limit. Default 1 KiB/s (DEFAULT_WRITE_STALL_MIN_BYTES_PER_SECOND).
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
 * output never waits a whole limit. Without a floor, "the kernel took some byte" was met by a peer
 * reading a few hundred bytes a second, which kept up to the high-water mark (1 MiB) of replies per
 * session queued for ever on the reference protocol (attacker review, round 2); with it, holding that
 * costs the peer 1 KiB/s of reading per session, and a slower one is closed once it has fallen a
 * limit's worth behind.
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
 * The write stall, as credit in time. Once a write leaves bytes unsent, the clock gives the session
 * a full limit of credit and looks at least every quarter of the limit, and when the credit would
 * run out. Each look charges the time since the last and credits what the kernel took meanwhile at
 * the rate asked, min(the floor rate, what waited at the last look ÷ the limit) and at least a byte
 * a limit, capped at the limit. A look that finds nothing unsent stops watching (the next wait
 * starts afresh); one that finds the credit spent ends the session. So:
 * - a client that takes nothing is ended a limit after its output began to wait, or after its last
 *   byte (and at most a quarter of the limit more, the look that credited it);
 * - one that reads at the rate asked or faster is never ended while the kernel's steps (below) come
 *   less than the limit apart, however long it reads;
 * - a silence shorter than the limit is tolerated anywhere once the credit has refilled (a reader at
 *   twice the floor earns back a second a second), a second one only as far as it has;
 * - one below the rate is ended once it has fallen a limit's worth behind, however its reads are
 *   spread (300 B/s against 1 KiB/s: in about 85 s).
 * Windows fixed in time (session 8 round 2) cut a live reader at 2-2.5 KiB/s whose link dropped for
 * 30-40 s inside one window, which then drained less than the floor x the window, where the
 * zero-progress rule before them did not (attacker review, round 3); uncapped credit would let a
 * client that once read fast trickle for ever after. The state is a few numbers, changed at looks
 * only: nothing is done per write.
 *
 * What bytesSent sees: the kernel takes our bytes in steps, waking the writer once a third of the
 * socket's send buffer is free (Linux), so a reader at rate R shows steps of S, a third of the send
 * buffer, every S/R. For the 87 KiB buffer Linux gives a slow peer S is 29 KiB, 29 s apart at the
 * 1 KiB/s floor, well within the default limit; a reader at the floor needs S under 60 KiB (a send
 * buffer under 180 KiB), and with a larger buffer it needs S ÷ the limit.
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
  /** What the limit's worth of draining is at most (the floor rate over the limit; at least a byte). */
  private readonly stallAskBytes: number;
  /** Output waits and is watched: bytesSent and what waited at the last look, when that was, and the credit (ms) then. */
  private outputWatched = false;
  private sentAtLook = 0;
  private waitingAtLook = 0;
  private lookedAt = 0;
  private creditMs = 0;

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

  /** Output was written: if some of it waits unsent, watch that the kernel keeps taking it. */
  noteOutput(): void {
    if (this.outputWatched || this.stallLimitMs === 0 || this.session.unsentBytes === 0) return;
    this.outputWatched = true;
    this.creditMs = this.stallLimitMs;
    this.mark(this.wheel.now());
    this.scheduleNext();
  }

  /** What the kernel has taken so far, what waits for it now, and when that was seen. */
  private mark(now: number): void {
    this.sentAtLook = this.session.bytesSent;
    this.waitingAtLook = this.session.unsentBytes;
    this.lookedAt = now;
  }

  stop(): void {
    this.wheel.cancel(this);
  }

  /** The wheel reached this clock: end the session if a deadline passed, or sleep until the next. */
  due(now: number): void {
    if (now >= this.endOfLife) this.endNow("max_lifetime");
    else if (this.idleLimitMs > 0 && now - this.lastInputAt >= this.idleLimitMs) this.endNow("idle_timeout");
    else if (this.outputWatched && this.writeStalled(now)) this.endNow("write_stalled");
    else this.scheduleNext();
  }

  /** A look at the output: true once the credit is spent (the class comment). */
  private writeStalled(now: number): boolean {
    if (this.session.unsentBytes === 0) {
      this.outputWatched = false;
      return false;
    }
    // Bytes taken since the last look, as time at the rate asked over that interval.
    const askBytes = Math.max(1, Math.min(this.waitingAtLook, this.stallAskBytes));
    const earnedMs = ((this.session.bytesSent - this.sentAtLook) * this.stallLimitMs) / askBytes;
    this.creditMs = Math.min(this.stallLimitMs, this.creditMs + earnedMs - (now - this.lookedAt));
    this.mark(now);
    return this.creditMs <= 0;
  }

  private scheduleNext(): void {
    const idleAt = this.idleLimitMs > 0 ? this.lastInputAt + this.idleLimitMs : Infinity;
    // At the latest when the credit runs out if nothing is taken meanwhile.
    const outputAt = this.outputWatched ? this.lookedAt + Math.min(this.creditMs, this.stallLimitMs / 4) : Infinity;
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
