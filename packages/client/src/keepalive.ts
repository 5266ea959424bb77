/**
 * The client's keepalive and dead-server detection for an established v2 session (docs/PROTOCOL.md
 * §v2 "Ping"). One timer per session, never moved per frame:
 * - a ping goes out when a whole interval passed in which we sent nothing (so the server's idle
 *   timeout does not end a session that only listens), or when we have heard nothing authenticated
 *   for half an interval (the server answers a ping with a ping while established, so a live server
 *   is heard again before the deadline below);
 * - the session fails with ERR_TIMEOUT once nothing authenticated has arrived for two intervals: the
 *   server died, or a NAT on the way dropped the mapping, without a FIN or RST reaching us. A timer
 *   that fires late (our own event loop was stalled) does not judge: the server's answers may be
 *   waiting unread in the socket, and our pings may not have gone out, so it pings and looks again
 *   half an interval later.
 */
export interface KeepalivePeer {
  /** Frames sealed towards the server so far. */
  sent(): number;
  /** Frames from the server opened (authenticated) so far. */
  heard(): number;
  ping(): void;
  /** Nothing authenticated for two intervals (or the session's deadPeerMs). */
  dead(silentMs: number): void;
}

export class Keepalive {
  private readonly intervalMs: number;
  /** Silence after which the server is dead: two intervals unless the application says otherwise. */
  private readonly deadAfterMs: number;
  private readonly peer: KeepalivePeer;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sentSeen: number;
  private heardSeen: number;
  private heardAt = Date.now();
  /** When the timer should fire: firing much later means our own loop was stalled. */
  private dueAt = 0;

  constructor(intervalMs: number, peer: KeepalivePeer, deadAfterMs = 2 * intervalMs) {
    this.intervalMs = intervalMs;
    // Never before an interval has passed: a live server answers a ping within one.
    this.deadAfterMs = Math.max(intervalMs, deadAfterMs);
    this.peer = peer;
    this.sentSeen = peer.sent();
    this.heardSeen = peer.heard();
    this.arm(intervalMs);
  }

  /** Input was read: one comparison, and a clock read only when it completed a frame. */
  noteInput(): void {
    const h = this.peer.heard();
    if (h !== this.heardSeen) {
      this.heardSeen = h;
      this.heardAt = Date.now();
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(delayMs: number): void {
    this.dueAt = Date.now() + Math.max(1, delayMs);
    this.timer = setTimeout(() => this.fire(), Math.max(1, delayMs));
    // The socket keeps the process alive while the session is open; the keepalive must not.
    (this.timer as { unref?: () => void }).unref?.();
  }

  private fire(): void {
    const now = Date.now();
    const silent = now - this.heardAt;
    const deadline = this.deadAfterMs;
    const late = now - this.dueAt > this.intervalMs / 4;
    if (silent >= deadline && late) {
      // Read what arrived while we were stalled (I/O is polled after timers), and give a ping sent
      // now half an interval to be answered, before judging.
      this.peer.ping();
      this.sentSeen = this.peer.sent();
      this.arm(this.intervalMs / 2);
      return;
    }
    if (silent >= deadline) {
      this.timer = undefined;
      this.peer.dead(silent);
      return;
    }
    if (this.peer.sent() === this.sentSeen || silent >= this.intervalMs / 2) this.peer.ping();
    this.sentSeen = this.peer.sent();
    // Wake at the next interval, or at the deadline if that comes first.
    this.arm(Math.min(this.intervalMs, this.heardAt + deadline - now));
  }
}
