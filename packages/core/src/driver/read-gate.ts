/**
 * Flow control, once for both drivers: reading pauses while the driver says it is congested (too
 * many messages waiting, too many bytes queued) and resumes when it is not, so a slow consumer slows
 * its peer through TCP instead of growing memory. Only transitions reach the wire.
 */
import type { Wire } from "../transport/wire.ts";

export class ReadGate {
  private closed = false;
  private readonly wire: Pick<Wire, "pause" | "resume">;

  constructor(wire: Pick<Wire, "pause" | "resume">) {
    this.wire = wire;
  }

  get paused(): boolean {
    return this.closed;
  }

  /** Pauses reading while `congested`, resumes once it is not. */
  set(congested: boolean): void {
    if (congested === this.closed) return;
    this.closed = congested;
    if (congested) this.wire.pause();
    else this.wire.resume();
  }
}
