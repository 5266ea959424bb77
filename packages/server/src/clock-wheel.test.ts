// The sessions' timer wheel: never early, at most a granule late, one bucket per entry, and an entry
// rescheduled from its own callback lands in a later bucket. Real timers, short granules, bounded waits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer } from "node:net";
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
  for (const { d, e } of es) {
    wheel.schedule(e, start + d);
    // At most a granule late by the wheel's own choice of bucket; the host's timer lateness on top of
    // that is the machine's load, not the wheel's (a stall of 100 ms failed a bound on it).
    const bucketLate = e.wheelTick! * 20 - (start + d);
    assert.ok(bucketLate >= 0 && bucketLate < 20, `+${d} bucketed ${bucketLate} ms late`);
  }
  for (let i = 0; i < 500 && es.some(({ e }) => e.fired.length === 0); i++) await sleep(10);
  await sleep(50); // a second firing would come within a granule or two
  for (const { d, e } of es) {
    assert.equal(e.fired.length, 1, `deadline +${d} fired once`);
    const late = e.fired[0]! - (start + d);
    assert.ok(late >= 0, `+${d} fired ${-late} ms early`);
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
  for (let i = 0; i < 500 && moved.fired.length === 0; i++) await sleep(10);
  await sleep(50);
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
  for (let i = 0; i < 500 && e.fired.length < 3; i++) await sleep(10);
  await sleep(50);
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
  for (let i = 0; i < 500 && later.fired.length === 0; i++) await sleep(10);
  assert.equal(thrower.fired.length, 1);
  for (const e of others) assert.equal(e.fired.length, 1, "served although an entry before it threw");
  assert.equal(later.fired.length, 1, "the wheel re-armed after the failure");
  assert.equal(errors.length, 1);
  assert.equal(wheel.size, 0);
});

test("the granule is a sixteenth of the shortest deadline (or write-stall look) in use, between 10 ms and a second", () => {
  assert.equal(clockGranularityMs({ idleTimeoutMs: 300_000, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 0, writeStallTimeoutMs: 0 }), 1000);
  // The defaults: the write stall's look every 15 s is the shortest.
  assert.equal(clockGranularityMs({ idleTimeoutMs: 300_000, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 0, writeStallTimeoutMs: 60_000 }), 937);
  assert.equal(clockGranularityMs({ idleTimeoutMs: 800, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 0, writeStallTimeoutMs: 0 }), 50);
  assert.equal(clockGranularityMs({ idleTimeoutMs: 300_000, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 100, writeStallTimeoutMs: 60_000 }), 10);
  assert.equal(clockGranularityMs({ idleTimeoutMs: 0, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 0, writeStallTimeoutMs: 0 }), 1000);
  // The write stall is looked at every quarter of its limit: 3.2 s / 4 / 16.
  assert.equal(clockGranularityMs({ idleTimeoutMs: 300_000, legacyIdleTimeoutMs: 0, maxSessionLifetimeMs: 0, writeStallTimeoutMs: 3200 }), 50);
});

test("after a stall longer than a deadline, input that arrived meanwhile is read before the entry is judged", async () => {
  // A live session's pings wait in the kernel while the loop is blocked past its idle deadline; the
  // wheel must judge it after they are read (the event loop runs expired timers before it polls the
  // sockets), or a loaded server ends live sessions as idle (session 8's flake audit).
  let received = 0;
  const server = createServer((s) => s.on("data", (d) => (received += d.length)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const client = connect(port, "127.0.0.1");
  await new Promise((r) => client.once("connect", r));
  await sleep(20);
  try {
    const wheel = new ClockWheel(10);
    let seenAtDue = -1;
    // From the check phase, so that the next turn starts with the timers (as after any stall).
    setImmediate(() => {
      wheel.schedule(entry(() => (seenAtDue = received)), wheel.now() + 10);
      client.write(Buffer.alloc(100, 1));
      const until = Date.now() + 60;
      while (Date.now() < until); // the stall: the deadline passes while the bytes wait unread
    });
    for (let i = 0; i < 100 && seenAtDue < 0; i++) await sleep(5);
    assert.equal(seenAtDue, 100, "the entry was judged after the waiting bytes were read");
  } finally {
    client.destroy();
    await new Promise((r) => server.close(r));
  }
});
