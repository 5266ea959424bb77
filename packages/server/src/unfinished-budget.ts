/**
 * A server-wide bound on the memory unfinished messages hold (attacker review, session 8). Each v2 or
 * v3 session may hold one message in progress of up to the message maximum (16 MiB by default, a bit
 * more as retained: core v2/assembly.ts retainedLimit), so a thousand authenticated connections that
 * each begin one and never finish it held 16 GB until their message deadline, and again after they
 * reconnected. Sessions report what their unfinished message retains after every read; when the sum
 * goes over the limit, sessions are ended until it is under.
 *
 * Which ones: the slowest holders first, by the rate at which each message has grown (bytes retained
 * ÷ time since the budget first saw it). Ending the largest (as at first) let an attacker choose the
 * victim: K sessions each holding a message just under honest sizes (1,024 x 1 MiB fills 1 GiB), each
 * finished just before --message-timeout and begun again (about 4 KiB/s a session), made every honest
 * upload larger than theirs the largest holder, ended as soon as it pushed the sum over (attacker
 * review, round 2). Holding memory means holding it for long, and holding long for few bytes is a low
 * rate: a drip-feeder's 1 MiB over 250 s is 4 KiB/s, an honest upload arrives as fast as its link
 * (the message deadline's floor is 64 KiB/s, server.ts), so it goes last however large it is. To hold
 * its share against a fresh upload an attacker must keep re-sending at the honest rate, which is what
 * an honest upload costs. Per-source or per-user shares were not chosen: every device of a fleet may
 * be one user behind one NAT address, and an attacker with one account controls neither.
 * Not done: the rate counts time the server itself paused reading (a slow handler), which the
 * message deadline leaves out (core driver/deadline.ts). A 1 MB/s upload paused 100 s after its first
 * MiB still counts 10 KiB/s, above a 4 KiB/s drip-feeder, but a longer pause on a slower link could
 * put it first.
 *
 * Who pays instead (attacker review, round 3): slowest first protects fast uploads, not slow ones. A
 * password holder that restarts its messages keeps each one's rate at about its size ÷ the restart
 * period or more: the default 1 GiB filled by 1,024 sessions of 1 MiB begun again every 100 s counts
 * at least 10 KiB/s each, so whenever the sum goes over, any honest upload slower than that (a
 * device on a 64 kbit/s uplink, NB-IoT) is the one ended, and again on each retry. That costs the
 * attacker 10 KiB/s a session (10 MiB/s in all) and an account; the honest upload's defence is to
 * be faster than it. Treating every holder above the message deadline's implied floor (64 KiB/s) as
 * equal and ending the largest among them was considered and not done: it changes nothing for an
 * upload slower than the attacker (both are below the floor), and among fast holders it would let
 * ones just above the floor make a larger, faster honest upload the victim again (round 2's attack,
 * at a higher price). Per-user or per-source shares would protect the slow upload, but not a fleet
 * behind one user and one address (above).
 */
import { totalmem } from "node:os";

/** A session holding an unfinished message: told once when it must end to free its share. */
export interface UnfinishedHolder {
  overBudget(): void;
}

/**
 * The memory this process may use: the host's, or less when a cgroup (a container) bounds it. When
 * nothing bounds it, process.constrainedMemory() is not a limit: Node 24 returns 2^64 - 1, Bun 1.4.5
 * the host's memory, and other versions 0 or no function at all, so only a positive number below the
 * host's memory counts.
 */
export function usableMemory(hostMemory: number, constrained: number | undefined): number {
  return typeof constrained === "number" && constrained > 0 && constrained < hostMemory ? constrained : hostMemory;
}

/**
 * The default limit: a quarter of the memory this process may use (usableMemory: a container's limit
 * rather than the host's), at most 1 GiB, and always room for one message of the maximum. 1 GiB is 60
 * messages of 16 MiB in progress at once, beyond what the honest uploads of one process come to; a
 * quarter of a small host's or container's memory leaves the rest of the server room.
 */
export function defaultMaxUnfinishedBytes(oneMessage: number, memory = usableMemory(totalmem(), process.constrainedMemory?.())): number {
  return Math.max(oneMessage, Math.min(1 << 30, Math.floor(memory / 4)));
}

/** What one holder's unfinished message retains, and when the budget first saw it (ms, `now`). */
interface Holding {
  bytes: number;
  since: number;
}

export class UnfinishedBudget {
  readonly limit: number;
  private total = 0;
  /** Sessions holding an unfinished message: one record each, updated in place after each read. */
  private readonly holders = new Map<UnfinishedHolder, Holding>();
  private readonly now: () => number;
  /** Sessions ended to keep under the limit (a metric). */
  evictions = 0;

  /** `now`: a monotonic clock in ms (tests give their own). */
  constructor(limit: number, now: () => number = () => performance.now()) {
    this.limit = limit;
    this.now = now;
  }

  /** Bytes retained by unfinished messages, over every session. */
  get bytes(): number {
    return this.total;
  }

  /**
   * `holder`'s unfinished message now retains `bytes` (0: it completed, or the session ended). Over the
   * limit, the slowest holders are ended (overBudget) until the sum is under it again.
   */
  set(holder: UnfinishedHolder, bytes: number): void {
    const held = this.holders.get(holder);
    const before = held?.bytes ?? 0;
    if (bytes === before) return;
    this.total += bytes - before;
    if (bytes === 0) this.holders.delete(holder);
    else if (held) held.bytes = bytes;
    // A new message: its rate is timed from this first report (a session holds one at a time, and
    // reports 0 when it completes, so the next one starts a new record).
    else this.holders.set(holder, { bytes, since: this.now() });
    while (this.total > this.limit) {
      const victim = this.slowest();
      if (!victim) break;
      // Out of the account before it is told: its end reports 0, which then changes nothing.
      this.total -= this.holders.get(victim)!.bytes;
      this.holders.delete(victim);
      this.evictions++;
      victim.overBudget();
    }
  }

  /**
   * The holder whose message has grown slowest (bytes ÷ ms since first seen; a message seen this very
   * millisecond counts as 1 ms old). A scan, only when over the limit: holders are few (each retains
   * at least 8 KiB), and ties go to the larger (the earlier seen when equal).
   */
  private slowest(): UnfinishedHolder | undefined {
    const now = this.now();
    let best: UnfinishedHolder | undefined;
    let lowest = Infinity;
    let bestBytes = 0;
    for (const [h, { bytes, since }] of this.holders) {
      const rate = bytes / Math.max(1, now - since);
      if (rate < lowest || (rate === lowest && bytes > bestBytes)) {
        lowest = rate;
        bestBytes = bytes;
        best = h;
      }
    }
    return best;
  }
}
