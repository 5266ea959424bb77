// The write-stall deadline's rule (lifetime.ts SessionClock), on a wheel the test drives: a credit of
// up to the limit, spent by time and earned by what the kernel takes at the rate asked (min(the floor,
// what waited over the limit), at least a byte a limit). A reader that trickles below the floor is
// ended; one at or above it, or one whose link drops for less than the limit, is not. Real sockets show the same on loopback (stall.test.ts);
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
 * A session with `queued` bytes waiting (the server keeps it so: its handler answers what the client
 * keeps sending), whose reader has read `readBy(ms)` bytes by each moment, of which the kernel shows
 * whole steps of `step` bytes (as it wakes the writer), looked at for up to `ms`; returns when it was
 * ended (as write_stalled), if it was.
 */
function endedAt(floor: number, readBy: (ms: number) => number, step: number, queued: number, ms: number): number | undefined {
  const { w, wheel } = fakeWheel();
  let ended: number | undefined;
  const session = {
    inputProgress: 0,
    bytesSent: 0,
    unsentBytes: queued,
    end: (r: SessionEndReason) => {
      assert.equal(r, "write_stalled");
      ended = w.ms;
    },
  };
  const clock = new SessionClock(limits(floor), true, session, wheel, 0);
  clock.noteOutput();
  for (let i = 0; i < 100_000 && ended === undefined && w.at !== undefined && w.at <= ms; i++) {
    w.ms = w.at;
    session.bytesSent = Math.floor(readBy(w.ms) / step) * step;
    clock.due(w.ms);
  }
  return ended;
}

/** A reader at `rate` bytes a second throughout. */
const steady = (rate: number) => (ms: number) => (rate * ms) / 1000;

/** As `run` with a steady reader: the reason it was ended, if it was. */
function run(floor: number, rate: number, step: number, queued: number, ms: number): SessionEndReason | undefined {
  return endedAt(floor, steady(rate), step, queued, ms) === undefined ? undefined : "write_stalled";
}

test("a reader that trickles below the floor is ended, though the kernel takes some of its bytes in every window", () => {
  // 300 B/s in 1,460-byte steps: a step every 5 s, so the old rule (some byte each window) never fired.
  assert.equal(run(1024, 300, 1460, 1 << 20, 10 * LIMIT_MS), "write_stalled");
  assert.equal(run(0, 300, 1460, 1 << 20, 10 * LIMIT_MS), undefined, "with floor 0, only the zero-progress rule");
});

test("a reader above the floor is never ended", () => {
  // 2.5 KiB/s in steps of a third of an 87 KiB send buffer.
  assert.equal(run(1024, 2560, 29 * 1024, 1 << 20, 30 * LIMIT_MS), undefined);
  assert.equal(run(1024, 1100, 1460, 1 << 20, 30 * LIMIT_MS), undefined, "small steps: just above the floor is enough");
});

test("a reader at the floor itself is never ended while its steps come less than the limit apart; further apart, it is", () => {
  // Fixed windows cut every one of these within the first (29 KiB steps: 58 KiB a minute, short of 60).
  for (const stepKiB of [29, 45, 59]) {
    for (const phaseMs of [0, 7_000, 20_000]) {
      const readBy = (ms: number) => (1024 * (ms + phaseMs)) / 1000;
      assert.equal(endedAt(1024, readBy, stepKiB * 1024, 1 << 20, 30 * LIMIT_MS), undefined, `steps of ${stepKiB} KiB, phase ${phaseMs} ms`);
    }
  }
  assert.ok(endedAt(1024, steady(1024), 61 * 1024, 1 << 20, 30 * LIMIT_MS) !== undefined, "steps 61 s apart");
});

test("a live reader at 2-2.5 KiB/s whose link drops for 30-40 s, wherever in a window, is not ended", () => {
  // Fixed windows (session 8 round 2) cut each of these: the window holding the outage drained less
  // than the floor x the limit (attacker review, round 3).
  for (const rate of [2048, 2560]) {
    for (const outageMs of [30_000, 40_000]) {
      for (let from = 120_000; from < 180_000; from += 5_000) {
        const readBy = (ms: number) => (rate * (ms < from ? ms : ms < from + outageMs ? from : ms - outageMs)) / 1000;
        assert.equal(endedAt(1024, readBy, 29 * 1024, 1 << 20, 20 * LIMIT_MS), undefined, `${rate} B/s, ${outageMs} ms from ${from} ms`);
      }
    }
  }
});

test("the credit a reader earns is capped at the limit: fast reading bought no later trickle or silence", () => {
  const FAST_MS = 10 * LIMIT_MS;
  // 100 KiB/s for ten minutes, then 300 B/s: ended once a limit's worth behind (about 85 s), not after
  // the hours uncapped credit would allow.
  const trickle = (ms: number) => (ms < FAST_MS ? 102_400 * ms : 102_400 * FAST_MS + 300 * (ms - FAST_MS)) / 1000;
  const trickled = endedAt(1024, trickle, 1460, 1 << 20, 100 * LIMIT_MS);
  assert.ok(trickled !== undefined && trickled - FAST_MS <= 2 * LIMIT_MS, `ended at ${trickled}`);
  // The same, then nothing: ended a limit after its last step, and within a quarter more.
  const stop = (ms: number) => (102_400 * Math.min(ms, FAST_MS)) / 1000;
  const stopped = endedAt(1024, stop, 1460, 1 << 20, 100 * LIMIT_MS);
  const lastStep = Math.floor(stop(FAST_MS) / 1460) * 1460 * (1000 / 102_400);
  assert.ok(stopped !== undefined && stopped >= lastStep + LIMIT_MS && stopped <= lastStep + 1.25 * LIMIT_MS, `ended at ${stopped}`);
  // One silence of most of the limit is tolerated, but not a second before the credit has refilled:
  // 2 KiB/s refills a second a second.
  const silences = (ms: number) => {
    const idle = Math.min(Math.max(0, ms - 120_000), 45_000) + Math.min(Math.max(0, ms - 185_000), 45_000);
    return (2048 * (ms - idle)) / 1000;
  };
  const twice = endedAt(1024, silences, 29 * 1024, 1 << 20, 20 * LIMIT_MS);
  assert.ok(twice !== undefined && twice > 185_000 && twice <= 230_000 + LIMIT_MS / 4, `ended at ${twice}`);
});

test("the rate asked is no more than what waited at the last look, over the limit", () => {
  // 20 KiB waiting, drained at 500 B/s: all of it within the limit, below the floor's 60 KiB.
  assert.equal(run(1024, 500, 1460, 20 * 1024, 3 * LIMIT_MS), undefined);
  assert.equal(run(1024, 300, 1460, 20 * 1024, 10 * LIMIT_MS), "write_stalled", "less than that is ended");
});

test("a reader that takes nothing is ended after the limit, not before, and within a quarter more", () => {
  const { w, wheel } = fakeWheel();
  let ended: number | undefined;
  const session = { inputProgress: 0, bytesSent: 0, unsentBytes: 4096, end: () => void (ended = w.ms) };
  const clock = new SessionClock(limits(1024), true, session, wheel, 0);
  clock.noteOutput();
  for (let i = 0; i < 100 && ended === undefined && w.at !== undefined; i++) clock.due((w.ms = w.at));
  assert.ok(ended !== undefined && ended >= LIMIT_MS && ended <= LIMIT_MS * 1.25, `ended at ${ended}`);
});

test("output that drains stops the watch; the next wait starts with a full credit", () => {
  const { w, wheel } = fakeWheel();
  let ended: number | undefined;
  const session = { inputProgress: 0, bytesSent: 0, unsentBytes: 4096, end: () => void (ended = w.ms) };
  const clock = new SessionClock(limits(1024), true, session, wheel, 0);
  clock.noteOutput();
  // Nothing taken for 45 s, then all of it: the look after finds nothing waiting and stops watching.
  for (let i = 0; i < 100 && w.at !== undefined && w.at <= 45_000; i++) clock.due((w.ms = w.at));
  session.bytesSent = 4096;
  session.unsentBytes = 0;
  w.ms = w.at!;
  w.at = undefined; // the wheel took it off as it came due
  clock.due(w.ms);
  assert.equal(w.at, undefined, "nothing watched: not put back on the wheel");
  // A new wait: a limit again from here.
  const again = w.ms;
  session.unsentBytes = 4096;
  clock.noteOutput();
  for (let i = 0; i < 100 && ended === undefined && w.at !== undefined; i++) clock.due((w.ms = w.at));
  assert.ok(ended !== undefined && ended - again >= LIMIT_MS, `ended ${ended! - again} ms after the new wait began`);
});
