/**
 * Deadlines with one timer each, never moved per event: a pipelined session completes hundreds of
 * thousands of messages a second, and re-arming a timer per message would cost more than the
 * messages. When the timer fires, the driver's check looks at what has happened since and either
 * declares the deadline passed or asks to look again later.
 */
import type { Machine } from "../machine.ts";

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

/** Told once a partly received record or frame has passed its deadline (PartialInputDeadline). */
export interface PartialInputOwner {
  partialInputExpired(): void;
}

/**
 * A partly received record or frame must complete within `ms`, however slowly it dribbles. When the
 * timer fires, input that is still partial and has not completed a single record or frame since the
 * timer was armed has passed its deadline; otherwise it re-arms. A sender streaming large frames
 * back to back (every read ending mid-frame) keeps completing frames, so it is never cut off.
 */
export class PartialInputDeadline extends Deadline {
  private readonly machine: Pick<Machine, "hasPartialInput" | "inputProgress">;
  private readonly ms: number;
  private readonly owner: PartialInputOwner;

  // One object per session, not three: the owner is told through an interface, not a closure with
  // its scope; a fleet holds tens of thousands of them (the fleet bench, issue 13).
  constructor(machine: Pick<Machine, "hasPartialInput" | "inputProgress">, ms: number, owner: PartialInputOwner) {
    super();
    this.machine = machine;
    this.ms = ms;
    this.owner = owner;
  }

  /** After a read: starts watching if input is left partial and nothing watches it yet. */
  watch(): void {
    if (this.armed || !this.machine.hasPartialInput) return;
    let progress = this.machine.inputProgress;
    this.arm(this.ms, () => {
      if (!this.machine.hasPartialInput) return undefined;
      if (this.machine.inputProgress === progress) {
        this.owner.partialInputExpired();
        return undefined;
      }
      progress = this.machine.inputProgress;
      return this.ms;
    });
  }
}
