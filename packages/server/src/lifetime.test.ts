// The write-stall deadline's rule (lifetime.ts SessionClock), on a wheel the test drives: over each
// window of the limit the kernel must take min(what waited at the window's start, the floor rate x the
// limit), and at least a byte. A reader that trickles below the floor is ended; one at or above it,
// or one that drains all that waited, is not. Real sockets show the same on loopback (stall.test.ts);
// here the kernel's steps are the test's own, so the rule itself is what is checked.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ClockWheel, WheelEntry } from "./clock-wheel.ts";
import { type LifetimeLimits, SessionClock, type SessionEndReason } from "./lifetime.ts";

const LIMIT_MS = 60_000;
const limits = (floor: number): LifetimeLimits => ({ idleTimeoutMs: 0, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 0, writeStallTimeoutMs: LIMIT_MS, writeStallMinBytesPerSecond: floor });

/** A wheel that only records when the clock asked to be looked at; the test advances time itself. */
function fakeWheel() {
  const w = { ms: 0, at: undefined as number | undefined };
  const wheel = { now: () => w.ms, schedule: (_e: WheelEntry, at: number) => void (w.at = at), cancel: () => void (w.at = undefined) };
  return { w, wheel: wheel as unknown as ClockWheel };
}

/**
 * A session with `queued` bytes waiting, drained at `rate` bytes a second in steps of `step` bytes (as
 * the kernel wakes the writer), looked at for up to `ms`; returns the reason it was ended, if it was.
 */
function run(floor: number, rate: number, step: number, queued: number, ms: number): SessionEndReason | undefined {
  const { w, wheel } = fakeWheel();
  let ended: SessionEndReason | undefined;
  let drained = 0; // what the reader has read, whole steps or not
  const session = { inputProgress: 0, bytesSent: 0, unsentBytes: queued, end: (r: SessionEndReason) => void (ended = r) };
  const clock = new SessionClock(limits(floor), true, session, wheel, 0);
  clock.noteOutput();
  for (let i = 0; i < 10_000 && ended === undefined && w.at !== undefined && w.at <= ms; i++) {
    w.ms = w.at;
    // The server keeps the queue full (its handler answers what the client keeps sending).
    const steps = Math.floor((rate * w.ms) / 1000 / step) - Math.floor(drained / step);
    drained = (rate * w.ms) / 1000;
    session.bytesSent += Math.max(0, steps) * step;
    clock.due(w.ms);
  }
  return ended;
}

test("a reader that trickles below the floor is ended, though the kernel takes some of its bytes in every window", () => {
  // 300 B/s in 1,460-byte steps: a step every 5 s, so the old rule (some byte each window) never fired.
  assert.equal(run(1024, 300, 1460, 1 << 20, 10 * LIMIT_MS), "write_stalled");
  assert.equal(run(0, 300, 1460, 1 << 20, 10 * LIMIT_MS), undefined, "with floor 0, only the zero-progress rule");
});

test("a reader above the floor plus a step per window is never ended", () => {
  // 2.5 KiB/s in 87 KiB / 3 steps: the bound the header states (the ask, 60 KiB, plus a step in 60 s).
  assert.equal(run(1024, 2560, 29_696, 1 << 20, 30 * LIMIT_MS), undefined);
  assert.equal(run(1024, 1100, 1460, 1 << 20, 30 * LIMIT_MS), undefined, "small steps: just above the floor is enough");
});

test("a window asks no more than what waited at its start", () => {
  // 20 KiB waiting, drained at 500 B/s: all of it within the window, below the floor's 60 KiB.
  assert.equal(run(1024, 500, 1460, 20 * 1024, 3 * LIMIT_MS), undefined);
});

test("a reader that takes nothing is ended after the limit, not before, and within a quarter more", () => {
  const { w, wheel } = fakeWheel();
  let endedAt: number | undefined;
  const session = { inputProgress: 0, bytesSent: 0, unsentBytes: 4096, end: () => void (endedAt = w.ms) };
  const clock = new SessionClock(limits(1024), true, session, wheel, 0);
  clock.noteOutput();
  for (let i = 0; i < 100 && endedAt === undefined && w.at !== undefined; i++) clock.due((w.ms = w.at));
  assert.ok(endedAt !== undefined && endedAt >= LIMIT_MS && endedAt <= LIMIT_MS * 1.25, `ended at ${endedAt}`);
});
