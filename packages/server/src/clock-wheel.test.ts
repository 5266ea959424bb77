// The sessions' timer wheel: never early, at most a granule late, one bucket per entry, and an entry
// rescheduled from its own callback lands in a later bucket. Real timers, short granules, bounded waits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ClockWheel, type WheelEntry } from "./clock-wheel.ts";
import { clockGranularityMs } from "./lifetime.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function entry(onDue: (now: number) => void = () => {}): WheelEntry & { fired: number[] } {
  const fired: number[] = [];
  return { wheelTick: undefined, fired, due: (now) => (fired.push(now), onDue(now)) };
}

test("entries fire at their deadline or up to one granule later, never before", async () => {
  const wheel = new ClockWheel(20);
  const start = wheel.now();
  const es = [60, 100, 140].map((d) => ({ d, e: entry() }));
  for (const { d, e } of es) wheel.schedule(e, start + d);
  await sleep(300);
  for (const { d, e } of es) {
    assert.equal(e.fired.length, 1, `deadline +${d} fired once`);
    const late = e.fired[0]! - (start + d);
    assert.ok(late >= 0, `+${d} fired ${-late} ms early`);
    assert.ok(late < 20 + 100, `+${d} fired ${late} ms late`);
  }
  assert.equal(wheel.size, 0);
});

test("a cancelled entry does not fire; scheduling again moves it to one bucket only", async () => {
  const wheel = new ClockWheel(10);
  const now = wheel.now();
  const cancelled = entry();
  const moved = entry();
  wheel.schedule(cancelled, now + 30);
  wheel.schedule(moved, now + 30);
  wheel.schedule(moved, now + 80);
  assert.equal(wheel.size, 2);
  wheel.cancel(cancelled);
  assert.equal(wheel.size, 1);
  await sleep(200);
  assert.deepEqual(cancelled.fired, []);
  assert.equal(moved.fired.length, 1);
  assert.ok(moved.fired[0]! >= now + 80);
});

test("an entry that reschedules itself from its callback fires again later, not in a loop", async () => {
  const wheel = new ClockWheel(10);
  let times = 0;
  const e: WheelEntry & { fired: number[] } = entry((now) => {
    if (++times < 3) wheel.schedule(e, now + 20);
  });
  wheel.schedule(e, wheel.now() + 20);
  await sleep(300);
  assert.equal(e.fired.length, 3);
  assert.ok(e.fired[1]! - e.fired[0]! >= 20 && e.fired[2]! - e.fired[1]! >= 20);
});

test("an entry whose callback throws does not strand the others of its bucket, and the wheel stays armed", async () => {
  const errors: unknown[] = [];
  const wheel = new ClockWheel(10, undefined, (e) => errors.push(e));
  const at = wheel.now() + 20;
  const thrower = entry(() => {
    throw new Error("an application's logger failed");
  });
  const others = [entry(), entry(), entry()];
  wheel.schedule(thrower, at);
  for (const e of others) wheel.schedule(e, at);
  const later = entry();
  wheel.schedule(later, at + 60);
  await sleep(300);
  assert.equal(thrower.fired.length, 1);
  for (const e of others) assert.equal(e.fired.length, 1, "served although an entry before it threw");
  assert.equal(later.fired.length, 1, "the wheel re-armed after the failure");
  assert.equal(errors.length, 1);
  assert.equal(wheel.size, 0);
});

test("the granule is a sixteenth of the shortest deadline in use, between 10 ms and a second", () => {
  assert.equal(clockGranularityMs({ idleTimeoutMs: 300_000, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 0 }), 1000);
  assert.equal(clockGranularityMs({ idleTimeoutMs: 800, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 0 }), 50);
  assert.equal(clockGranularityMs({ idleTimeoutMs: 300_000, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 100 }), 10);
  assert.equal(clockGranularityMs({ idleTimeoutMs: 0, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 0 }), 1000);
});
