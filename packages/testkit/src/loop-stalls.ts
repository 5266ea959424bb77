/**
 * Why an event loop was late: its own work, or waiting for a CPU.
 *
 * An event-loop delay histogram (perf_hooks.monitorEventLoopDelay) counts a timer that fires late,
 * whatever the reason. On a machine shared with the load generator (the bench's devices, other
 * engineers' runs) most of a long delay can be the kernel not running the thread at all: the thread
 * is runnable and waits on a run queue. Linux records both per thread in
 * /proc/<pid>/task/<tid>/schedstat (Documentation/scheduler/sched-stats.rst: "time spent on the cpu",
 * "time spent waiting on a runqueue", in nanoseconds). Sampling the main thread's two counters with a
 * short timer splits every gap between samples into "ran" (our code, the runtime, its collector on
 * this thread) and "waited runnable" (CPU starvation); what is neither is the thread sleeping.
 *
 * Linux only: elsewhere the monitor reports nothing (undefined) rather than guessing.
 */
import { readFileSync } from "node:fs";

/** One reading of a thread's scheduler counters, at a wall-clock time. */
export interface SchedSample {
  atMs: number;
  /** CPU time the thread has run, ns. */
  runNs: number;
  /** Time the thread has been runnable and waiting for a CPU, ns. */
  waitNs: number;
}

export interface LoopStallReport {
  /** The longest wall time between two consecutive samples. */
  longestGapMs: number;
  /** Of that gap: the CPU time the thread ran, and the time it was runnable but not running. */
  longestGapRanMs: number;
  longestGapWaitedMs: number;
  /** The most CPU the thread used between two consecutive samples: the upper bound of its own longest turn. */
  longestRanMs: number;
  /** Run-queue wait summed over the whole period. */
  runQueueWaitMs: number;
  samples: number;
}

/** "run wait slices" → the first two fields; undefined if the text is not schedstat's. */
export function parseSchedstat(text: string): { runNs: number; waitNs: number } | undefined {
  const f = text.trim().split(/\s+/);
  if (f.length < 2) return undefined;
  const runNs = Number(f[0]);
  const waitNs = Number(f[1]);
  return Number.isSafeInteger(runNs) && Number.isSafeInteger(waitNs) && runNs >= 0 && waitNs >= 0 ? { runNs, waitNs } : undefined;
}

/** Consecutive samples folded into a report; memory is constant (the previous sample and the maxima). */
export class LoopStallTally {
  private prev: SchedSample | undefined;
  private r: LoopStallReport = LoopStallTally.empty();

  private static empty(): LoopStallReport {
    return { longestGapMs: 0, longestGapRanMs: 0, longestGapWaitedMs: 0, longestRanMs: 0, runQueueWaitMs: 0, samples: 0 };
  }

  add(s: SchedSample): void {
    const p = this.prev;
    this.prev = s;
    this.r.samples++;
    if (!p) return;
    const gap = s.atMs - p.atMs;
    const ran = (s.runNs - p.runNs) / 1e6;
    const waited = (s.waitNs - p.waitNs) / 1e6;
    this.r.runQueueWaitMs += waited;
    if (ran > this.r.longestRanMs) this.r.longestRanMs = ran;
    if (gap > this.r.longestGapMs) {
      this.r.longestGapMs = gap;
      this.r.longestGapRanMs = ran;
      this.r.longestGapWaitedMs = waited;
    }
  }

  /** Starts a new period from the last sample (like the delay histogram's reset). */
  reset(): void {
    this.r = LoopStallTally.empty();
    if (this.prev) this.r.samples = 1;
  }

  report(): LoopStallReport {
    return { ...this.r };
  }
}

/** The calling process's main thread's counters (its tid is the pid), or undefined off Linux. */
export function mainThreadSchedstat(): { runNs: number; waitNs: number } | undefined {
  try {
    return parseSchedstat(readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * Samples the main thread every `intervalMs` (unref'd timer: it keeps no process alive). Returns
 * undefined where the counters cannot be read.
 */
export function startLoopStallMonitor(intervalMs = 10, read = mainThreadSchedstat): { report(): LoopStallReport; reset(): void; stop(): void } | undefined {
  if (!read()) return undefined;
  const tally = new LoopStallTally();
  const sample = () => {
    const c = read();
    if (c) tally.add({ atMs: performance.now(), ...c });
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  timer.unref?.();
  return {
    report: () => (sample(), tally.report()),
    reset: () => (sample(), tally.reset()),
    stop: () => clearInterval(timer),
  };
}
