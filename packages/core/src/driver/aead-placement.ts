/**
 * The inline-or-pool AEAD choice, once for both drivers. Established, a machine may offer its AEAD to
 * run elsewhere (machine.ts `deferred`); where the measured placement says so for a batch of this
 * size (crypto/placement.ts), or while earlier batches are still there, the batch goes through the
 * connection's OrderedAead (pool/ordered-aead.ts), which keeps wire order. Otherwise the machine
 * seals and opens inline. Either way the driver sees the same outputs and the same bytes, in order.
 */
import type { Output } from "../events.ts";
import type { Machine, SealOptions } from "../machine.ts";
import type { OrderedAead } from "../pool/ordered-aead.ts";

/** What the placement needs of the pool's ordered AEAD (pool/ordered-aead.ts). */
export type PooledAead = Pick<OrderedAead, "wantsIn" | "wantsOut" | "receive" | "send" | "writesDone" | "settled" | "pendingOut" | "pendingInBytes">;

export class AeadPlacement {
  private readonly machine: Machine;
  private readonly pool: PooledAead | undefined;

  /** `pool`: the connection's ordered AEAD when a worker pool exists; undefined runs everything inline. */
  constructor(machine: Machine, pool: PooledAead | undefined) {
    this.machine = machine;
    this.pool = pool;
  }

  /**
   * Received bytes: the machine's outputs now (inline), or undefined when they were handed to the
   * pool, in which case `deliver` gets them later, after every earlier batch, and `fail` any tag
   * failure. Malformed bytes throw at once either way.
   */
  receive(chunk: Uint8Array, deliver: (outputs: Output[]) => void, fail: (e: unknown) => void): Output[] | undefined {
    const deferred = this.machine.deferred;
    if (deferred && this.pool?.wantsIn(chunk.length)) {
      this.pool.receive(deferred, chunk, deliver, fail);
      return undefined;
    }
    return this.machine.receive(chunk);
  }

  /**
   * Seals `messages` (`bytes` long in all) and hands the wire bytes to `write`: now when inline, after
   * every earlier pooled batch otherwise. A version with nothing to send (a close where it has no close
   * chunk) writes nothing. Sealing errors throw at once inline and reach `fail` from the pool.
   */
  seal(messages: readonly Uint8Array[], bytes: number, opts: SealOptions, write: (wire: Uint8Array) => void, fail: (e: unknown) => void): void {
    const deferred = this.machine.deferred;
    if (deferred && this.pool?.wantsOut(bytes)) {
      this.pool.send(deferred, messages, opts, write, fail);
      return;
    }
    const wire = this.machine.seal(messages, opts);
    if (wire.length) write(wire);
  }

  /** Batches being sealed in the pool and not yet written (a ping must not overtake them). */
  get pendingOut(): number {
    return this.pool?.pendingOut ?? 0;
  }

  /** Bytes handed to the pool to open and not yet delivered, for flow control. */
  get pendingInBytes(): number {
    return this.pool?.pendingInBytes ?? 0;
  }

  /**
   * Runs `dispose` (the machine's, when the connection has ended) now, or, while batches handed to
   * the pool are still out, once they are all back: a pooled job seals or opens under the machine's
   * own key array, which dispose zeroes. Their results reach a driver that has ended, which drops
   * them (it writes and delivers nothing after its end; a graceful close has sealed its last batch
   * before it ends, and that batch is written, under the live key).
   */
  afterPending(dispose: () => void): void {
    const settled = this.pool?.settled();
    // Either way: a batch that failed must not leave the machine's keys unwiped (the review of
    // session 7: a driver's fail() that throws inside the pool's chain rejects it).
    if (settled) void settled.then(dispose, dispose);
    else dispose();
  }

  /** Resolves once every pooled write has been handed to `write`. */
  writesDone(): Promise<void> {
    return this.pool?.pendingOut ? this.pool.writesDone() : Promise.resolve();
  }
}
