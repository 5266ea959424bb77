/**
 * Tick batching, once for both drivers: the messages a driver is given in one turn of the event loop
 * (a client's requests, a server's replies and pushes) are gathered here and sealed together at the
 * turn's end, so the version can pack them into as few frames as fit (v2, v3) and the wire gets one
 * write instead of one per message.
 *
 * The turn ends at setImmediate: after the I/O callbacks of this turn and every microtask they started,
 * so the replies an async handler resolves one after another in a chain, and the requests an
 * application makes after each `await` in the same turn, leave together.
 */

/**
 * Who seals the batch: an interface the driver implements, not a closure, so that each session's
 * outbox holds a reference to its driver and no function and scope of its own (issue 13: an idle
 * session's objects).
 */
export interface OutboxOwner {
  /** Takes the batch (take()) and seals it; runs at the end of the turn once scheduled. */
  flushOutbox(): void;
}

export class Outbox {
  /** Made when the first message is queued and dropped by take(): an idle session holds none. */
  private batch: Uint8Array[] | undefined;
  private size = 0;
  private scheduled = false;
  private held = false;
  private readonly owner: OutboxOwner;

  constructor(owner: OutboxOwner) {
    this.owner = owner;
  }

  /** Bytes of the messages gathered. */
  get bytes(): number {
    return this.size;
  }

  get empty(): boolean {
    return this.batch === undefined;
  }

  push(message: Uint8Array): void {
    (this.batch ??= []).push(message);
    this.size += message.length;
  }

  /** Everything gathered, in order; the outbox is empty after. */
  take(): Uint8Array[] {
    const batch = this.batch ?? [];
    this.batch = undefined;
    this.size = 0;
    return batch;
  }

  /** Flushes at the end of this turn (once, however often it is asked), unless a hold() is under way. */
  schedule(): void {
    if (this.scheduled || this.held) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.owner.flushOutbox();
    });
  }

  /**
   * Runs `fn` without scheduling: its caller flushes when `fn` returns (a read's replies leave with
   * the read, not a turn later).
   */
  hold<T>(fn: () => T): T {
    if (this.held) return fn();
    this.held = true;
    try {
      return fn();
    } finally {
      this.held = false;
    }
  }

  /** Drops what is gathered (the session failed: nothing more is written). */
  clear(): void {
    this.batch = undefined;
    this.size = 0;
  }
}
