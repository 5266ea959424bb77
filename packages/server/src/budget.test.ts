// The guessing budget's rules, on a fake clock: reserved before judging, refunded on proof, over
// budget per address (fail like a wrong password) and per user (backoff, then fail), bounded tables.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuessBudget, type Verdict } from "./budget.ts";

function budget(now: { t: number }, maxWaitMs = 5000) {
  return new GuessBudget({
    address: { burst: 20, refillPerSecond: 1, maxSources: 4 },
    user: { burst: 20, refillPerSecond: 1, maxUsers: 4, maxWaitMs, trustSeconds: 3600 },
    now: () => now.t,
  });
}

const judged = (v: Verdict) => v.kind === "judge";

test("200 guesses at once from one address: 20 judged, the rest over the address budget", () => {
  const clock = { t: 0 };
  const b = budget(clock);
  const verdicts = Array.from({ length: 200 }, (_, i) => b.reserve("10.0.0.1", `user${i % 50}`));
  assert.equal(verdicts.filter(judged).length, 20);
  assert.ok(verdicts.filter((v) => !judged(v)).every((v) => v.kind === "over" && v.scope === "address"));
  assert.equal(b.allows("10.0.0.1"), false, "refused at accept too");
  assert.equal(b.allows("10.0.0.2"), true, "another address is not");
  clock.t += 3000;
  assert.equal(Array.from({ length: 10 }, () => b.reserve("10.0.0.1", "u")).filter(judged).length, 3, "one more per second");
});

test("a verified key refunds its guess; a failure keeps it; a cancelled (never judged) guess costs nothing", () => {
  const b = budget({ t: 0 });
  for (let i = 0; i < 100; i++) {
    const v = b.reserve("10.0.0.1", "alice");
    assert.ok(v.kind === "judge");
    b.settle(v.ticket, true);
  }
  assert.equal(b.allows("10.0.0.1"), true, "a hundred logins cost nothing");
  const tickets = Array.from({ length: 20 }, () => b.reserve("10.0.0.1", "alice"));
  assert.equal(b.reserve("10.0.0.1", "alice").kind, "over");
  for (const v of tickets.slice(0, 10)) if (v.kind === "judge") b.cancel(v.ticket);
  for (const v of tickets.slice(10)) if (v.kind === "judge") b.settle(v.ticket, false);
  for (const v of tickets) if (v.kind === "judge") b.settle(v.ticket, true); // already settled: ignored
  assert.equal(Array.from({ length: 20 }, () => b.reserve("10.0.0.1", "alice")).filter(judged).length, 10);
  assert.deepEqual({ ...b.counts }, { reserved: 130, refunded: 100, cancelled: 10, waited: 0, overAddress: 11, overUser: 0 });
});

test("guesses at one user from many addresses: backoff grows with each, then fails like a wrong password", () => {
  const clock = { t: 0 };
  const b = budget(clock, 5000);
  const v = Array.from({ length: 40 }, (_, i) => b.reserve(`10.0.${i}.1`, "alice"));
  const delays = v.map((x) => (x.kind === "judge" ? x.delayMs : -1));
  assert.deepEqual(delays.slice(0, 20), Array(20).fill(0), "the burst is judged at once");
  assert.deepEqual(delays.slice(20, 25), [1000, 2000, 3000, 4000, 5000], "then each waits a second longer");
  assert.ok(v.slice(25).every((x) => x.kind === "over" && x.scope === "user"), "past the longest wait: refused");
  assert.equal(b.reserve("10.0.0.1", "bob").kind, "judge", "another user is not slowed");
  clock.t += 10_000;
  const later = b.reserve("10.9.9.9", "alice");
  assert.ok(later.kind === "judge" && later.delayMs === 0, "the backoff fades as the user's bucket drains");
});

test("tables stay bounded however many addresses and users guess", () => {
  const b = budget({ t: 0 });
  for (let i = 0; i < 1000; i++) b.reserve(`10.${i >> 8}.${i & 255}.1`, `user${i}`);
  assert.ok(b.trackedSources <= 4 && b.trackedUsers <= 4);
});

test("an address where the user's session was established skips the user's backoff: guesses elsewhere cannot lock the device out", () => {
  const clock = { t: 0 };
  const b = budget(clock, 5000);
  const login = b.reserve("192.168.1.7", "alice");
  assert.ok(login.kind === "judge");
  b.settle(login.ticket, true);
  b.confirmed("alice", "192.168.1.7");
  for (let i = 0; i < 40; i++) b.reserve(`10.0.${i}.1`, "alice");
  const stranger = b.reserve("10.9.9.9", "alice");
  assert.ok(stranger.kind === "over" && stranger.scope === "user", "a new address waits past the limit");
  const device = b.reserve("192.168.1.7", "alice");
  assert.ok(device.kind === "judge" && device.delayMs === 0, "the device's address is judged at once");
  clock.t += 3601_000;
  for (let i = 0; i < 40; i++) b.reserve(`10.1.${i}.1`, "alice");
  assert.equal(b.reserve("192.168.1.7", "alice").kind, "over", "the exemption expires");
});

test("a session's address stays exempt while the session lives, past trustSeconds, and for trustSeconds after it ends", () => {
  const clock = { t: 0 };
  const b = budget(clock, 5000);
  b.sessionStarted("alice", "192.168.1.7");
  clock.t += 3 * 86_400_000; // a fleet's session three days old, still alive
  for (let i = 0; i < 40; i++) b.reserve(`10.0.${i}.1`, "alice");
  const device = b.reserve("192.168.1.7", "alice");
  assert.ok(device.kind === "judge" && device.delayMs === 0, "its address is judged at once: the session lives");
  b.sessionEnded("alice", "192.168.1.7");
  clock.t += 1800_000; // trustSeconds here is an hour
  for (let i = 0; i < 40; i++) b.reserve(`10.1.${i}.1`, "alice");
  assert.equal(b.reserve("192.168.1.7", "alice").kind, "judge", "trusted for trustSeconds after it ended");
  clock.t += 3600_000;
  for (let i = 0; i < 40; i++) b.reserve(`10.2.${i}.1`, "alice");
  assert.equal(b.reserve("192.168.1.7", "alice").kind, "over", "then no longer");
});

test("IPv6 sources share one address budget per /64 (one subscriber's prefix), IPv4 per address", () => {
  const b = budget({ t: 0 });
  // One attacker rotating the interface identifier within its own /64.
  const verdicts = Array.from({ length: 40 }, (_, i) => b.reserve(`2001:db8:1:2::${(i + 1).toString(16)}`, `user${i}`));
  assert.equal(verdicts.filter(judged).length, 20, "a /64 gets one address budget, however many addresses it uses");
  assert.equal(b.allows("2001:db8:1:2:ffff::9"), false, "refused at accept too");
  assert.equal(b.allows("2001:db8:1:3::1"), true, "the next /64 is another source");
  assert.equal(b.allows("10.0.0.1"), true);
});
