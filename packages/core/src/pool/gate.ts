/**
 * The pool's own queue in front of piscina: a task is handed to piscina only when a thread is free,
 * so tasks start strictly in the order they came, and the queue is bounded here.
 *
 * piscina 5.3's queue is not first-in first-out under a burst: a task it shifts but cannot place goes
 * back to the tail (tasks with an AbortSignal into a second queue; with its stricterFIFO option, to
 * that queue's head, so newest first), and an early task is passed over again and again
 * (piscinajs/piscina#1031, #899). In the v3 soak against the Node server (2 threads, 100 handshakes at
 * once, 2026-11-27), a curve step queued 0.4 s after the start came back at 10.1 s, past its
 * handshake deadline, while the ones queued after it had run: every 4th handshake from the 5th on.
 *
 * A caller that goes away (its AbortSignal) is answered ERR_CLOSED at once. Waiting, its job is
 * unlinked from the queue and its task (a password, a w0) let go at once, so the queue holds only
 * live jobs and its bound is its real length (100,000 submit-then-cancel calls left 100,001 jobs
 * held when they stayed until their turn); running, it runs to its end on its thread and the result
 * is dropped: piscina would terminate the thread to stop it, and a new thread costs more (its start,
 * and on Node 230 ms of cold curve tables: curve.ts warmCurve) than the one job it saves.
 */
import { NstpError } from "../errors.ts";

interface Job<T> {
  /** Let go once the job is cancelled. */
  task: T | undefined;
  state: "waiting" | "running" | "cancelled";
  resolve(result: unknown): void;
  reject(e: unknown): void;
  /** Stops listening for the caller's AbortSignal. */
  unlisten?: () => void;
  /** Neighbours in the queue while waiting: a cancelled job is unlinked in O(1). */
  prev?: Job<T>;
  next?: Job<T>;
}

export class ThreadGate<T> {
  private readonly exec: (task: T) => Promise<unknown>;
  private readonly threads: number;
  private readonly maxQueue: number;
  /** Tasks handed to piscina and not yet back: at most one per thread, so piscina never queues. */
  private running = 0;
  /** Tasks waiting for a thread, oldest (head) first, doubly linked; a cancelled one leaves at once. */
  private head: Job<T> | undefined;
  private tail: Job<T> | undefined;
  /** Jobs linked in the queue, all waiting: what the bound counts. */
  private waitingCount = 0;
  private closed = false;

  constructor(exec: (task: T) => Promise<unknown>, threads: number, maxQueue: number) {
    this.exec = exec;
    this.threads = threads;
    this.maxQueue = maxQueue;
  }

  /** Tasks waiting for a thread: the queue's real length (cancelled ones are unlinked at once). */
  get queued(): number {
    return this.waitingCount;
  }

  /** Jobs linked in the queue, counted by walking it (for tests: what the queue really holds). */
  get held(): number {
    let n = 0;
    for (let job = this.head; job; job = job.next) n++;
    return n;
  }

  /** True when a new task would be refused. */
  get saturated(): boolean {
    return this.full(this.maxQueue);
  }

  /** True when a task allowed `limit` of the queue's places would be refused: no thread free and that many waiting. */
  full(limit: number): boolean {
    return this.running >= this.threads && this.waitingCount >= limit;
  }

  /**
   * Starts the task on a free thread, or queues it behind the others (ERR_BUSY when the queue is full,
   * or holds `limit` waiting tasks: a kind of work kept out of the queue's last places).
   */
  run(task: T, signal?: AbortSignal, limit = this.maxQueue): Promise<unknown> {
    if (this.closed) return Promise.reject(new NstpError("ERR_BUSY", "crypto pool shut down"));
    if (this.full(Math.min(limit, this.maxQueue))) return Promise.reject(new NstpError("ERR_BUSY", "crypto pool queue is full"));
    if (signal?.aborted) return Promise.reject(cancelled(signal.reason));
    return new Promise((resolve, reject) => {
      const job: Job<T> = { task, state: "waiting", resolve, reject };
      if (signal) {
        const onAbort = () => {
          if (job.state === "waiting") {
            this.unlink(job);
            job.task = undefined;
          }
          job.state = "cancelled";
          reject(cancelled(signal.reason));
        };
        signal.addEventListener("abort", onAbort, { once: true });
        job.unlisten = () => signal.removeEventListener("abort", onAbort);
      }
      if (this.running < this.threads) this.start(job);
      else this.link(job);
    });
  }

  /** Refuses every waiting task (ERR_BUSY) and any later one; running tasks end with their threads. */
  close(): void {
    this.closed = true;
    for (let job = this.head; job; job = this.head) {
      this.unlink(job);
      job.task = undefined;
      job.unlisten?.();
      job.reject(new NstpError("ERR_BUSY", "crypto pool shut down"));
    }
  }

  private start(job: Job<T>): void {
    job.state = "running";
    this.running++;
    const task = job.task!;
    job.task = undefined; // the thread has it now
    this.exec(task)
      .then(job.resolve, (e: unknown) => job.reject(new NstpError("ERR_BUSY", "crypto pool refused the task", { cause: e })))
      .finally(() => {
        job.unlisten?.();
        this.running--;
        this.next();
      });
  }

  /** Starts the oldest waiting tasks while threads are free. */
  private next(): void {
    while (this.running < this.threads && !this.closed && this.head) {
      const job = this.head;
      this.unlink(job);
      this.start(job);
    }
  }

  /** Appends a waiting job. */
  private link(job: Job<T>): void {
    job.prev = this.tail;
    if (this.tail) this.tail.next = job;
    else this.head = job;
    this.tail = job;
    this.waitingCount++;
  }

  /** Takes a waiting job out of the queue, wherever it is. */
  private unlink(job: Job<T>): void {
    if (job.prev) job.prev.next = job.next;
    else this.head = job.next;
    if (job.next) job.next.prev = job.prev;
    else this.tail = job.prev;
    job.prev = job.next = undefined;
    this.waitingCount--;
  }
}

const cancelled = (cause?: unknown) => new NstpError("ERR_CLOSED", "cancelled: the caller went away", { cause });
