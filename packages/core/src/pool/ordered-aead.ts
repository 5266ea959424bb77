/**
 * A connection's AEAD run in the worker pool without losing order. Nonces are taken synchronously,
 * in wire order, when frames are split or prepared; the pool may finish tasks in any order; this
 * releases results strictly in the order they were queued, one chain per direction. Where the
 * measured placement (crypto/placement.ts) says inline, or the pool's queue is full, the same chain
 * runs the AEAD inline, so order holds either way.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { aeadInPool } from "../crypto/placement.ts";
import { NstpError } from "../errors.ts";
import type { Output } from "../events.ts";
import type { DeferredAead, SealOptions } from "../machine.ts";
import type { AeadJob } from "../v2/cipher.ts";
import type { PreparedFrames } from "../v2/writer.ts";
import type { CryptoPool } from "./index.ts";

/** Where a chain starts when nothing is queued in its direction. */
const SETTLED: Promise<void> = Promise.resolve();

export class OrderedAead {
  private readonly pool: CryptoPool;
  private readonly crypto: CryptoBackend;
  /**
   * The tail of each direction's chain while batches are queued; undefined once none are, so an idle
   * session holds no promises (the fleet bench: two per session, for every connection of a server
   * with a pool).
   */
  private inChain: Promise<void> | undefined;
  private outChain: Promise<void> | undefined;
  /** Batches queued and not yet released, per direction. */
  pendingIn = 0;
  pendingOut = 0;
  /** Bytes of those batches, for the driver's flow control. */
  pendingInBytes = 0;

  constructor(pool: CryptoPool, crypto: CryptoBackend) {
    this.pool = pool;
    this.crypto = crypto;
  }

  /** Whether a batch of `bytes` takes this path: by measurement, or because earlier ones did. */
  wantsIn(bytes: number): boolean {
    return this.pendingIn > 0 || aeadInPool(this.crypto.name, bytes);
  }

  wantsOut(bytes: number): boolean {
    return this.pendingOut > 0 || aeadInPool(this.crypto.name, bytes);
  }

  /**
   * Takes the frames `chunk` completes (their nonces now, in wire order), opens them, and hands the
   * machine's outputs to `deliver` after every earlier batch. Malformed bytes throw at once; a frame
   * that fails its tag reaches `fail`, with nothing of it delivered.
   */
  receive(endpoint: DeferredAead, chunk: Uint8Array, deliver: (outputs: Output[]) => void, fail: (e: unknown) => void): void {
    const jobs = endpoint.splitFrames(chunk);
    if (!jobs.length) return;
    this.open(jobs, chunk.length, (plaintexts) => {
      let outputs: Output[];
      try {
        outputs = endpoint.acceptFrames(plaintexts);
      } catch (e) {
        fail(e);
        return;
      }
      deliver(outputs);
    }, fail);
  }

  /** Lays out `messages` (nonces taken now), seals them, and calls `write` after every earlier batch. */
  send(endpoint: DeferredAead, messages: readonly Uint8Array[], opts: SealOptions, write: (bytes: Uint8Array) => void, fail: (e: unknown) => void): void {
    this.seal(endpoint.prepare(messages, opts), write, fail);
  }

  /** Opens `jobs`, then calls `deliver` after every batch queued before it was delivered. */
  private open(jobs: AeadJob[], bytes: number, deliver: (plaintexts: (Uint8Array | null)[]) => void, fail: (e: unknown) => void): void {
    this.pendingIn++;
    this.pendingInBytes += bytes;
    const work = this.run(jobs, "open");
    this.inChain = (this.inChain ?? SETTLED).then(async () => {
      try {
        const pts = await work;
        this.pendingIn--;
        this.pendingInBytes -= bytes;
        deliver(pts);
      } catch (e) {
        fail(e);
      }
      // Nothing queued after this batch (deliver may have queued one): the next starts a new chain.
      if (this.pendingIn === 0) this.inChain = undefined;
    });
  }

  /** Seals prepared frames, then calls `write` with the wire bytes, in preparation order. */
  private seal(prepared: PreparedFrames, write: (bytes: Uint8Array) => void, fail: (e: unknown) => void): void {
    this.pendingOut++;
    const work = this.run(prepared.items, "seal");
    this.outChain = (this.outChain ?? SETTLED).then(async () => {
      try {
        const sealed = (await work) as Uint8Array[];
        this.pendingOut--;
        write(prepared.assemble(sealed));
      } catch (e) {
        fail(e);
      }
      if (this.pendingOut === 0) this.outChain = undefined;
    });
  }

  /** Resolves when every queued write has been handed over. */
  writesDone(): Promise<void> {
    return this.outChain ?? SETTLED;
  }

  /**
   * Resolves once every batch queued so far, either way, is back from the pool and released (or
   * failed); undefined when none is queued. Until then a job may still seal or open under a key the
   * machine holds (AeadJob.key is that very array), so its owner must not wipe it before.
   */
  settled(): Promise<unknown> | undefined {
    if (!this.inChain && !this.outChain) return undefined;
    return Promise.all([this.inChain, this.outChain]);
  }

  /** Runs jobs grouped by key (a rekey changes it mid-batch), all groups at once, results in order. */
  private async run(jobs: AeadJob[], op: "seal" | "open"): Promise<(Uint8Array | null)[]> {
    const groups: AeadJob[][] = [];
    for (const j of jobs) {
      const last = groups.at(-1);
      if (last && last[0]!.key === j.key) last.push(j);
      else groups.push([j]);
    }
    // runGroup never rejects today (a pool failure is ERR_BUSY, and the group then runs inline), so
    // no sibling group can still be queued under a key that dispose() zeroes once this settles.
    const results = await Promise.all(groups.map((g) => this.runGroup(g, op)));
    return results.flat();
  }

  private async runGroup(group: AeadJob[], op: "seal" | "open"): Promise<(Uint8Array | null)[]> {
    const key = group[0]!.key;
    const items = group.map((j) => ({ nonce: j.nonce, data: j.data }));
    if (aeadInPool(this.crypto.name, group.reduce((n, j) => n + j.data.length, 0)) && !this.pool.bulkSaturated) {
      try {
        return op === "seal" ? await this.pool.seal(key, items) : await this.pool.open(key, items);
      } catch (e) {
        // A full queue is not a failure of the connection: do the work here instead.
        if (!(e instanceof NstpError && e.code === "ERR_BUSY")) throw e;
      }
    }
    return items.map((i) => (op === "seal" ? this.crypto.aesGcmSeal(key, i.nonce, i.data) : this.crypto.aesGcmOpen(key, i.nonce, i.data)));
  }
}
