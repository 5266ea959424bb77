/**
 * Deadlines with one timer each, never moved per event: a pipelined session completes hundreds of
 * thousands of messages a second, and re-arming a timer per message would cost more than the
 * messages. When the timer fires, the driver's check looks at what has happened since and either
 * declares the deadline passed or asks to look again later.
 */
import type { Machine, ServerMachine } from "../machine.ts";

export class Deadline {
  private timer: ReturnType<typeof setTimeout> | undefined;

  get armed(): boolean {
    return this.timer !== undefined;
  }

  /**
   * Arms the timer unless it is armed already. When it fires, `check` returns how many ms until the
   * next look (the timer re-arms for that), or undefined when nothing more is to be watched (it has
   * passed, and the check acted on it; or what it watched is done).
   */
  arm(ms: number, check: () => number | undefined): void {
    if (this.timer) return;
    const timer = setTimeout(() => {
      // Judged after this turn's reads, not before them: the event loop runs expired timers before
      // it polls the sockets, so after a stall longer than the deadline (a loaded host: the soak with
      // --workers 2 saw 6.8 s) the peer's bytes that arrived meanwhile were still unread when the
      // check ran, and live sessions were cut mid-frame (ERR_CLOSED at the client) and handshakes
      // whose last message was waiting failed. setImmediate runs after the poll phase.
      setImmediate(() => {
        if (this.timer !== timer) return; // cancelled meanwhile
        this.timer = undefined;
        const next = check();
        if (next !== undefined) this.arm(Math.max(1, next), check);
      });
    }, ms);
    this.timer = timer;
  }

  /** A plain deadline: `expire` runs once, `ms` from now, unless cancelled first. */
  once(ms: number, expire: () => void): void {
    this.arm(ms, () => (expire(), undefined));
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Told once partial input has passed its deadline (PartialInputDeadline). */
export interface PartialInputOwner {
  /** A partly received record or frame completed nothing within the record deadline. */
  partialInputExpired(): void;
  /** A message begun in several pieces did not complete within the message deadline. */
  partialMessageExpired(): void;
}

/** What the deadline reads of the machine: the message facts only where the version has them (ServerMachine). */
type WatchedMachine = Pick<Machine, "hasPartialInput" | "inputProgress"> & Partial<Pick<ServerMachine, "hasPartialMessage" | "messagesStarted">>;

/**
 * Two bounds on partial input, on one timer.
 *
 * A partly received record or frame must complete within `ms`, however slowly it dribbles: when the
 * timer fires, input that is still partial and has not completed a single record or frame in `ms`
 * has passed its deadline; otherwise it looks again. A sender streaming large frames back to back
 * (every read ending mid-frame) keeps completing frames, so it is never cut off.
 *
 * A message spread over several frames (v2's "more to follow" chunks) must also complete within
 * `messageMs` of its first chunk (0: no bound), pings and other frames notwithstanding: each frame
 * advances inputProgress, so without it a peer could hold one unfinished message, and up to the
 * message maximum of memory, for ever at one ping per record deadline (attacker review, session 8).
 * Its start is the first watch() (after a read) that sees it: the machine says only that a message
 * is partial and how many have begun (no clock in the machine).
 *
 * Neither counts time the driver has paused reading (readingPaused: too many messages await
 * replies, frames wait in the worker pool, or replies wait for the peer to read them): the rest of the
 * peer's input then sits unread in the socket, and cutting an honest upload for it was wrong
 * (attacker reviews, session 8: a slow handler; a device on a slow link uploading while it downloads
 * a large reply at its link's speed). The record deadline excuses all of it: a pause for the
 * server's own work is the server's, and one for write congestion is bounded by the write-stall
 * deadline (server lifetime.ts), which ends a peer that does not read. The message deadline, which
 * bounds how long a message's memory is held, excuses at most its own length: a client that kept
 * our output at its high-water mark while reading just above the write-stall floor held an
 * unfinished message for ever when every pause was excused (round 3), and now holds it at most
 * twice the deadline. Each mark keeps when it was set and the time excused since (added on resume; a
 * pause under way is counted at each look), so a look computes when the deadline passes if the pause
 * goes on, and the deadline fires at most a timer's lateness after that. Only pause transitions cost
 * anything (a clock read each), never a read or a message.
 */
/** The record deadline excuses every pause, however long (see PartialInputDeadline). */
const RECORD_EXCUSE_CAP = Number.POSITIVE_INFINITY;

export class PartialInputDeadline extends Deadline {
  private readonly machine: WatchedMachine;
  private readonly ms: number;
  private readonly messageMs: number;
  private readonly owner: PartialInputOwner;
  /** inputProgress at the look that first saw it, when that was, and the paused time excused since (all of it). */
  private progress = 0;
  private progressSeenAt = 0;
  private progressExcused = 0;
  /**
   * The unfinished message timed (its messagesStarted count; -1 none yet), when it was first seen,
   * and the paused time excused since (at most messageMs).
   */
  private message = -1;
  private messageSeenAt = 0;
  private messageExcused = 0;
  /** When the driver paused reading (-1: reading). */
  private pausedAt = -1;

  // One object per session, not three: the owner is told through an interface, not a closure with
  // its scope; a fleet holds tens of thousands of them (the fleet bench, issue 13).
  constructor(machine: WatchedMachine, ms: number, owner: PartialInputOwner, messageMs = 0) {
    super();
    this.machine = machine;
    this.ms = ms;
    this.owner = owner;
    this.messageMs = messageMs;
  }

  /**
   * After a read: notes a message that has begun, and starts watching if input is left partial. A
   * read that leaves nothing partial (a session exchanging whole messages) costs one getter: a
   * partial message is partial input, and a watch already armed stops at its next look.
   */
  watch(): void {
    if (!this.machine.hasPartialInput) return;
    this.noteMessage();
    if (this.armed) return;
    this.progress = this.machine.inputProgress;
    this.progressSeenAt = performance.now();
    this.progressExcused = 0;
    this.arm(this.untilNextLook(this.progressSeenAt), () => this.look());
  }

  /**
   * The driver paused (true) or resumed (false) reading; a repeat of the current state is ignored, so
   * the driver may tell it on every flow update. Resuming adds the time paused since each mark was set
   * to what that mark has excused (the message's up to its limit).
   */
  readingPaused(paused: boolean): void {
    if (paused === this.pausedAt >= 0) return;
    const now = performance.now();
    if (paused) {
      this.pausedAt = now;
      return;
    }
    this.progressExcused = this.excused(this.progressSeenAt, this.progressExcused, RECORD_EXCUSE_CAP, now);
    this.messageExcused = this.excused(this.messageSeenAt, this.messageExcused, this.messageMs, now);
    this.pausedAt = -1;
  }

  /** The timer's check: ms until the next look, or undefined (expired, or nothing partial). */
  private look(): number | undefined {
    if (!this.machine.hasPartialInput) return undefined;
    const now = performance.now();
    this.noteMessage(now);
    if (this.messageOpen && this.charged(this.messageSeenAt, this.messageExcused, this.messageMs, now) >= this.messageMs) {
      this.owner.partialMessageExpired();
      return undefined;
    }
    if (this.machine.inputProgress !== this.progress) {
      this.progress = this.machine.inputProgress;
      this.progressSeenAt = now;
      this.progressExcused = 0;
    } else if (this.charged(this.progressSeenAt, this.progressExcused, RECORD_EXCUSE_CAP, now) >= this.ms) {
      this.owner.partialInputExpired();
      return undefined;
    }
    return this.untilNextLook(now);
  }

  /** The time excused from a mark by `now`: what it had, plus the pause under way since the mark, at most `limit`. */
  private excused(mark: number, excused: number, limit: number, now: number): number {
    return this.pausedAt < 0 ? excused : Math.min(limit, excused + Math.max(0, now - Math.max(this.pausedAt, mark)));
  }

  /** The time since a mark that counts against the peer. */
  private charged(mark: number, excused: number, limit: number, now: number): number {
    return now - mark - this.excused(mark, excused, limit, now);
  }

  /**
   * When a mark's deadline passes if nothing changes: the time the peer has left, plus, while paused,
   * the excuse still unused (the pause under way is excused up to `cap`; with no cap, look again in
   * a deadline's length: a paused look neither fires nor spins).
   */
  private untilDeadline(mark: number, excused: number, limit: number, cap: number, now: number): number {
    const used = this.excused(mark, excused, cap, now);
    const left = limit - (now - mark - used);
    if (this.pausedAt < 0) return left;
    return cap === RECORD_EXCUSE_CAP ? Math.max(left, limit) : left + (cap - used);
  }

  /** Starts timing a message begun since the last one timed. */
  private noteMessage(now?: number): void {
    if (this.messageMs > 0 && this.machine.hasPartialMessage && this.machine.messagesStarted !== this.message) {
      this.message = this.machine.messagesStarted!;
      this.messageSeenAt = now ?? performance.now();
      this.messageExcused = 0;
    }
  }

  /** A message is partial and timed (noted by watch()). */
  private get messageOpen(): boolean {
    return this.messageMs > 0 && this.machine.hasPartialMessage === true && this.machine.messagesStarted === this.message;
  }

  private untilNextLook(now: number): number {
    const record = this.untilDeadline(this.progressSeenAt, this.progressExcused, this.ms, RECORD_EXCUSE_CAP, now);
    const left = this.messageOpen ? Math.min(record, this.untilDeadline(this.messageSeenAt, this.messageExcused, this.messageMs, this.messageMs, now)) : record;
    return Math.max(1, left);
  }
}
