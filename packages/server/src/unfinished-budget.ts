/**
 * A server-wide bound on the memory unfinished messages hold (attacker review, session 8). Each v2 or
 * v3 session may hold one message in progress of up to the message maximum (16 MiB by default, a bit
 * more as retained: core v2/assembly.ts retainedLimit), so a thousand authenticated connections that
 * each begin one and never finish it held 16 GB until their message deadline, and again after they
 * reconnected. Sessions report what their unfinished message retains after every read; when the sum
 * goes over the limit, the sessions holding the most are ended, largest first, until it is under:
 * a peer that pins memory this way holds the largest messages, and an honest upload of a few frames
 * is not the one to go.
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

export class UnfinishedBudget {
  readonly limit: number;
  private total = 0;
  /** Sessions holding an unfinished message, with the bytes it retains. */
  private readonly holders = new Map<UnfinishedHolder, number>();
  /** Sessions ended to keep under the limit (a metric). */
  evictions = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes retained by unfinished messages, over every session. */
  get bytes(): number {
    return this.total;
  }

  /**
   * `holder`'s unfinished message now retains `bytes` (0: it completed, or the session ended). Over the
   * limit, the largest holders are ended (overBudget) until the sum is under it again.
   */
  set(holder: UnfinishedHolder, bytes: number): void {
    const before = this.holders.get(holder) ?? 0;
    if (bytes === before) return;
    this.total += bytes - before;
    if (bytes === 0) this.holders.delete(holder);
    else this.holders.set(holder, bytes);
    while (this.total > this.limit) {
      const victim = this.largest();
      if (!victim) break;
      // Out of the account before it is told: its end reports 0, which then changes nothing.
      this.total -= this.holders.get(victim)!;
      this.holders.delete(victim);
      this.evictions++;
      victim.overBudget();
    }
  }

  /** A scan, only when over the limit: holders are few (each retains at least 8 KiB). */
  private largest(): UnfinishedHolder | undefined {
    let best: UnfinishedHolder | undefined;
    let most = 0;
    for (const [h, n] of this.holders) {
      if (n > most) {
        most = n;
        best = h;
      }
    }
    return best;
  }
}
