/**
 * Flow control, once for both drivers. Reading pauses while the driver says it is congested (too
 * many messages waiting, too many bytes queued) and resumes when it is not, so a slow consumer slows
 * its peer through TCP instead of growing memory; only transitions reach the wire. Writers that must
 * not outrun a slow reader (a server's push, a client's send) wait until the wire's queue is below its
 * high-water mark.
 */
import type { Wire } from "../transport/wire.ts";

type FlowWire = Pick<Wire, "pause" | "resume" | "bufferedAmount">;

interface Waiter {
  resolve(): void;
  reject(e: Error): void;
}

export class Flow {
  private paused_ = false;
  private readonly wire: FlowWire;
  private readonly highWaterMark: number;
  /** Writers waiting for the wire to drain; made on demand (an idle session holds none). */
  private waiters: Waiter[] | undefined;

  constructor(wire: FlowWire, highWaterMark: number) {
    this.wire = wire;
    this.highWaterMark = highWaterMark;
  }

  get paused(): boolean {
    return this.paused_;
  }

  /** The wire's queue (plus `extra` bytes about to join it) is at or above the high-water mark. */
  writeCongested(extra = 0): boolean {
    return this.wire.bufferedAmount + extra >= this.highWaterMark;
  }

  /**
   * Pauses reading while `congested`, resumes once it is not; then, if the wire's queue is below its
   * mark, wakes the writers waiting for it.
   */
  set(congested: boolean): void {
    if (congested !== this.paused_) {
      this.paused_ = congested;
      if (congested) this.wire.pause();
      else this.wire.resume();
    }
    if (this.waiters && !this.writeCongested()) this.release();
  }

  /** Resolves at once if the queue (plus `extra` bytes not yet on it) is below the mark, else once it drains. */
  writable(extra = 0): Promise<void> {
    if (!this.writeCongested(extra)) return Promise.resolve();
    return new Promise((resolve, reject) => (this.waiters ??= []).push({ resolve, reject }));
  }

  /** Ends every wait: resolved (the session ended cleanly, nothing more to wait for) or rejected with `error`. */
  release(error?: Error): void {
    const waiters = this.waiters;
    this.waiters = undefined;
    if (!waiters) return;
    for (const w of waiters) {
      if (error) w.reject(error);
      else w.resolve();
    }
  }
}
