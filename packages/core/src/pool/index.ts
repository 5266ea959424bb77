/**
 * A piscina worker pool that runs the CryptoBackend interface off the event loop. PBKDF2 with 600,000
 * iterations holds a thread for 60-100 ms; run inline, it freezes every other connection for that long.
 *
 * The queue is bounded: when it is full, work is refused at once (ERR_BUSY) rather than queued without
 * limit, and callers check `saturated` synchronously so a server can refuse a handshake before it has
 * sent anything. Queued tasks whose caller has gone are dropped, through an AbortSignal. The queue
 * is ours (gate.ts), in front of piscina's, so that tasks start in the order they came.
 */
import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import type { CryptoBackend } from "../crypto/backend.ts";
import { InvalidPointError, type VerifierCurveInput, type VerifierCurveResult } from "../v3/spake2plus.ts";
import { ThreadGate } from "./gate.ts";
import type { CurveFailure, PoolTask } from "./worker.ts";

/**
 * The worker beside this module: worker.ts when running from src (Bun, or Node's type stripping in the
 * workspace), worker.js when running from dist (the published build). A single-file executable
 * (scripts/build-bin.ts, `bun build --compile`) embeds the worker as an extra entry point and defines
 * NSTP_COMPILED_POOL_WORKER as its path inside the executable; elsewhere the name is undeclared.
 */
declare const NSTP_COMPILED_POOL_WORKER: string | undefined;
const WORKER_URL =
  typeof NSTP_COMPILED_POOL_WORKER === "string"
    ? NSTP_COMPILED_POOL_WORKER
    : new URL(import.meta.url.endsWith(".ts") ? "./worker.ts" : "./worker.js", import.meta.url).href;

/** A pool thread's young generation at most (Node; see the constructor). */
export const POOL_YOUNG_GENERATION_MB = 4;

export interface CryptoPoolOptions {
  /** Backend the workers run (by name: functions do not cross threads). Default native. */
  backend?: CryptoBackend;
  /** Worker threads; default: the machine's available parallelism. */
  threads?: number;
  /** Tasks waiting for a thread before new ones are refused; default 64 per thread. */
  maxQueue?: number;
}

export interface AeadItem {
  nonce: Uint8Array;
  data: Uint8Array;
  aad?: Uint8Array;
}

export class CryptoPool {
  private readonly piscina: Piscina;
  private readonly gate: ThreadGate<PoolTask>;
  readonly backendName: string;
  readonly threads: number;
  readonly maxQueue: number;
  /**
   * The queue's last places, which AEAD batches may not take: kept for handshake work (v3 curve steps,
   * PBKDF2). A backend whose AEAD runs here (noble: OrderedAead hands it every batch of 1 KiB or more
   * while the pool takes it) refills each freed place within the same turn on a busy server, and a
   * curve step finding the queue full is refused busy (crypto/placement.ts): without the reserve,
   * bulk traffic on established sessions refused every new v3 handshake (the attacker's review of
   * session 6). A quarter of the queue, at least one place.
   */
  readonly handshakeReserve: number;

  constructor(opts: CryptoPoolOptions = {}) {
    this.backendName = opts.backend?.name ?? "native";
    this.threads = Math.max(1, opts.threads ?? availableParallelism());
    this.maxQueue = opts.maxQueue ?? 64 * this.threads;
    this.handshakeReserve = Math.max(1, Math.floor(this.maxQueue / 4));
    this.piscina = new Piscina({
      filename: WORKER_URL,
      minThreads: this.threads,
      maxThreads: this.threads,
      maxQueue: this.maxQueue,
      // Threads start once and stay: a derivation should not pay for a thread start.
      idleTimeout: 2 ** 31 - 1,
      // Node: V8 grows a thread's young generation with its allocation rate (v3 curve steps make
      // megabytes of short-lived BigInts each) up to 16 MB semi-spaces, and shrinks it only in idle
      // tasks that a thread blocked in Atomics.wait never runs. Capped, a 1-thread pool grew by 26 MB
      // over 2,500 curve steps instead of 44 (2026-11-27, niced, loaded machine); its tasks keep
      // little alive, so a small young generation costs only more, cheap, scavenges. Bun ignores it.
      resourceLimits: { maxYoungGenerationSizeMb: POOL_YOUNG_GENERATION_MB },
    });
    // piscina is given no AbortSignal: the gate answers a caller that went away (gate.ts).
    this.gate = new ThreadGate((task) => this.piscina.run(task), this.threads, this.maxQueue);
  }

  /** Tasks waiting for a thread. */
  get queued(): number {
    return this.gate.queued;
  }

  /** Tasks finished since the pool started. */
  get completed(): number {
    return this.piscina.completed;
  }

  /** True when a new task would be refused. */
  get saturated(): boolean {
    return this.gate.saturated;
  }

  /** True when a new AEAD batch would be refused (the queue is full but for the handshake reserve). */
  get bulkSaturated(): boolean {
    return this.gate.full(this.bulkLimit);
  }

  private get bulkLimit(): number {
    return this.maxQueue - this.handshakeReserve;
  }

  pbkdf2(password: Uint8Array, salt: Uint8Array, iterations: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.run({ op: "pbkdf2", backend: this.backendName, password, salt, iterations, length }, signal) as Promise<Uint8Array>;
  }

  /** Seals a batch of records under one key in one hand-over (ERR_BUSY once only the handshake reserve is left). */
  seal(key: Uint8Array, items: AeadItem[], signal?: AbortSignal): Promise<Uint8Array[]> {
    return this.run({ op: "seal", backend: this.backendName, key, items }, signal, this.bulkLimit) as Promise<Uint8Array[]>;
  }

  /** Opens a batch of records; null where a tag fails. */
  open(key: Uint8Array, items: AeadItem[], signal?: AbortSignal): Promise<(Uint8Array | null)[]> {
    return this.run({ op: "open", backend: this.backendName, key, items }, signal, this.bulkLimit) as Promise<(Uint8Array | null)[]>;
  }

  /**
   * v3's server curve step (verifierShares: the five scalar multiplications of RFC 9383 §3.3) in a
   * thread. Resolves with the shares, or with the Error the function threw there (an invalid point);
   * rejects only for the pool's own reasons (ERR_BUSY, ERR_CLOSED), as every task does.
   */
  async verifierShares(job: VerifierCurveInput, signal?: AbortSignal): Promise<VerifierCurveResult | Error> {
    const r = (await this.run({ op: "verifierShares", backend: this.backendName, job }, signal)) as VerifierCurveResult | CurveFailure;
    return "failed" in r ? new InvalidPointError(r.failed) : r;
  }

  /** Refuses queued tasks, and stops the threads (running tasks fail with ERR_BUSY). */
  async destroy(): Promise<void> {
    this.gate.close();
    await this.piscina.destroy();
  }

  private run(task: PoolTask, signal?: AbortSignal, limit?: number): Promise<unknown> {
    return this.gate.run(task, signal, limit);
  }
}

/**
 * The CryptoBackend interface with PBKDF2 running in the pool and the cheap primitives inline: what
 * the server and client use when given a pool.
 */
export function pooledBackend(base: CryptoBackend, pool: CryptoPool): CryptoBackend {
  return { ...base, pbkdf2Sha256: (password, salt, iterations, length) => pool.pbkdf2(password, salt, iterations, length) };
}

export { OrderedAead } from "./ordered-aead.ts";
export { CurvePlacement, CurveRefusal, curvePlacement, runCurveJob, warmCurve } from "./curve.ts";
