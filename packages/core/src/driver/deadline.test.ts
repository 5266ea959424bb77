// Single-timer deadlines: re-armed only from their check, never per event (real timers, short; no
// timing asserted beyond order).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect } from "node:net";
import { Deadline, PartialInputDeadline } from "./deadline.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("deadline: once() fires once; cancel() stops it; arm() while armed is ignored", async () => {
  const d = new Deadline();
  let fired = 0;
  d.once(5, () => fired++);
  assert.ok(d.armed);
  d.once(1, () => (fired += 100));
  await sleep(40);
  // The check runs after the turn's reads (setImmediate), so give it that turn.
  await new Promise((r) => setImmediate(r));
  assert.equal(fired, 1);
  assert.ok(!d.armed);
  d.once(5, () => fired++);
  d.cancel();
  await sleep(30);
  assert.equal(fired, 1);
});

test("deadline: the check re-arms for the time it returns, and stops on undefined", async () => {
  const d = new Deadline();
  const looks: number[] = [];
  d.arm(2, () => {
    looks.push(looks.length);
    return looks.length < 3 ? 2 : undefined;
  });
  for (let i = 0; i < 100 && d.armed; i++) await sleep(5);
  assert.deepEqual(looks, [0, 1, 2]);
  assert.ok(!d.armed);
});

test("partial-input deadline: progress keeps it alive, a stall expires it, complete input stops it", async () => {
  const m = { hasPartialInput: true, inputProgress: 0 };
  let expired = 0;
  const owner = { partialInputExpired: () => void expired++, partialMessageExpired: () => assert.fail("no message is partial") };
  // A deadline far above the steps between frames: a loaded host's late timer (tens of ms) must not
  // look like a stall, nor a bare sleep stand for "it has expired by now" (session 8's flake audit).
  const p = new PartialInputDeadline(m, 300, owner);
  assert.deepEqual(Object.values(p).filter((v) => typeof v === "function"), [], "it holds its owner, not a closure of its own");
  p.watch();
  for (let i = 0; i < 10; i++) {
    await sleep(50);
    m.inputProgress++;
  }
  assert.equal(expired, 0, "a frame completed in every interval (500 ms of them: the deadline looked and saw progress)");
  for (let i = 0; i < 400 && expired === 0; i++) await sleep(5);
  assert.equal(expired, 1, "no frame completed in an interval while input stayed partial");
  m.hasPartialInput = false;
  p.watch();
  await sleep(400);
  assert.equal(expired, 1, "nothing partial, nothing watched");
  m.hasPartialInput = true;
  p.watch();
  m.hasPartialInput = false;
  await sleep(400);
  assert.equal(expired, 1, "input completed before the deadline");
  p.watch();
  p.cancel();
});

test("deadline: after a stall longer than the deadline, bytes that arrived meanwhile are read before the check", async () => {
  // A loopback socket pair; the peer writes while this loop is blocked past the deadline. The check
  // must see those bytes (the event loop runs expired timers before it polls the sockets).
  let received = 0;
  const server = createServer((s) => s.on("data", (d) => (received += d.length)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const client = connect(port, "127.0.0.1");
  await new Promise((r) => client.once("connect", r));
  await sleep(20);
  try {
    const d = new Deadline();
    let seenAtCheck = -1;
    // From the check phase, so that the next turn starts with the timers (as after any stall).
    setImmediate(() => {
      d.once(10, () => (seenAtCheck = received));
      client.write(Buffer.alloc(100, 1));
      const until = Date.now() + 60;
      while (Date.now() < until); // the stall: the deadline passes while the bytes wait unread
    });
    for (let i = 0; i < 100 && seenAtCheck < 0; i++) await sleep(5);
    assert.equal(seenAtCheck, 100, "the check ran after the waiting bytes were read");
  } finally {
    client.destroy();
    await new Promise((r) => server.close(r));
  }
});

test("partial-input deadline: a message begun in pieces must complete within its own limit, frames notwithstanding; the next is timed afresh", async () => {
  const m = { hasPartialInput: true, inputProgress: 0, hasPartialMessage: true, messagesStarted: 1 };
  let inputExpired = 0;
  let messageExpired = 0;
  const owner = { partialInputExpired: () => void inputExpired++, partialMessageExpired: () => void messageExpired++ };
  // Record deadline 300 ms, message deadline 600 ms: a frame every 50 ms keeps the record deadline
  // satisfied, so only the message deadline can end it.
  const p = new PartialInputDeadline(m, 300, owner, 600);
  const begun = performance.now();
  p.watch();
  for (let i = 0; i < 200 && messageExpired === 0; i++) {
    await sleep(50);
    m.inputProgress++;
    p.watch();
  }
  assert.equal(messageExpired, 1, "the message did not complete in time");
  assert.ok(performance.now() - begun >= 600, "not before its limit");
  assert.equal(inputExpired, 0, "frames kept completing");

  // A message that completes in time, then another: the second gets its whole limit from its own start.
  const q = new PartialInputDeadline(m, 300, owner, 600);
  messageExpired = 0;
  m.messagesStarted = 2;
  q.watch();
  for (let i = 0; i < 8; i++) {
    await sleep(50);
    m.inputProgress++;
    q.watch();
  }
  m.messagesStarted = 3; // the first completed and a new one began, 400 ms into the first's 600
  const second = performance.now();
  for (let i = 0; i < 200 && messageExpired === 0; i++) {
    await sleep(50);
    m.inputProgress++;
    q.watch();
  }
  assert.equal(messageExpired, 1);
  assert.ok(performance.now() - second >= 600, "the second message was timed from its own start");
  q.cancel();
});

test("partial-input deadline: with no message limit, a partial message is bounded by the record deadline only", async () => {
  const m = { hasPartialInput: true, inputProgress: 0, hasPartialMessage: true, messagesStarted: 1 };
  let expired = 0;
  const p = new PartialInputDeadline(m, 200, { partialInputExpired: () => void expired++, partialMessageExpired: () => assert.fail("no message limit") });
  p.watch();
  for (let i = 0; i < 20; i++) {
    await sleep(30);
    m.inputProgress++;
    p.watch();
  }
  assert.equal(expired, 0);
  for (let i = 0; i < 200 && expired === 0; i++) await sleep(5);
  assert.equal(expired, 1, "no frame in a record deadline");
});

test("partial-input deadline: a read that leaves nothing partial reads hasPartialInput only", () => {
  const reads: string[] = [];
  const m = {
    get hasPartialInput() {
      return reads.push("hasPartialInput"), false;
    },
    get inputProgress() {
      return reads.push("inputProgress"), 0;
    },
    get hasPartialMessage() {
      return reads.push("hasPartialMessage"), false;
    },
    get messagesStarted() {
      return reads.push("messagesStarted"), 0;
    },
  };
  const owner = { partialInputExpired: () => assert.fail("nothing partial"), partialMessageExpired: () => assert.fail("nothing partial") };
  const p = new PartialInputDeadline(m, 300, owner, 1000);
  for (let i = 0; i < 3; i++) p.watch();
  assert.deepEqual(reads, ["hasPartialInput", "hasPartialInput", "hasPartialInput"]);
  assert.ok(!p.armed);
});

test("partial-input deadline: time the server paused reading is not the peer's, for the record and the message deadline", async () => {
  const m = { hasPartialInput: true, inputProgress: 0, hasPartialMessage: true, messagesStarted: 1 };
  const expired: string[] = [];
  const owner = { partialInputExpired: () => void expired.push("record"), partialMessageExpired: () => void expired.push("message") };
  // Limits far above the host's timer lateness; the pause is half of each, so the cap (the limit
  // again) is not reached unless a sleep runs 700 ms late.
  for (const [recordMs, messageMs, which] of [
    [400, 0, "record"],
    [4000, 400, "message"],
  ] as const) {
    expired.length = 0;
    const p = new PartialInputDeadline(m, recordMs, owner, messageMs);
    p.watch();
    const started = performance.now();
    await sleep(50);
    p.readingPaused(true);
    p.readingPaused(true); // told again (every flow update): changes nothing
    await sleep(200);
    assert.deepEqual(expired, [], `${which}: nothing fires while reading is paused`);
    p.readingPaused(false);
    const resumed = performance.now();
    const paused = resumed - started - 50;
    for (let i = 0; i < 400 && expired.length === 0; i++) await sleep(5);
    assert.deepEqual(expired, [which], `${which}: it fires once reading resumed and the rest of its time passed`);
    const left = (messageMs || recordMs) - 50;
    assert.ok(performance.now() - resumed >= left - 5, `${which}: the time before the pause counted, the pause (${paused} ms) did not`);
    p.cancel();
  }
});

test("partial-input deadline: the record deadline excuses every pause; the message deadline at most its own length, so a pause stretches it to twice that at most", async () => {
  const m = { hasPartialInput: true, inputProgress: 0, hasPartialMessage: true, messagesStarted: 1 };
  const expired: string[] = [];
  const owner = { partialInputExpired: () => void expired.push("record"), partialMessageExpired: () => void expired.push("message") };
  // The message deadline, paused for good: it fires while still paused, at twice its length.
  {
    const p = new PartialInputDeadline(m, 10_000, owner, 150);
    p.watch();
    const started = performance.now();
    p.readingPaused(true);
    for (let i = 0; i < 600 && expired.length === 0; i++) await sleep(5);
    assert.deepEqual(expired, ["message"], "it fired while reading was still paused");
    const at = performance.now() - started;
    assert.ok(at >= 2 * 150 - 5, `not before twice its length (${at} ms)`);
    p.cancel();
  }
  // The record deadline, paused four times its length: nothing fires until reading resumes (a peer
  // that does not read is the write-stall deadline's), then it has its whole length again.
  {
    expired.length = 0;
    const p = new PartialInputDeadline(m, 150, owner);
    p.watch();
    p.readingPaused(true);
    await sleep(600);
    assert.deepEqual(expired, [], "not while reading is paused");
    p.readingPaused(false);
    const resumed = performance.now();
    for (let i = 0; i < 600 && expired.length === 0; i++) await sleep(5);
    assert.deepEqual(expired, ["record"], "after the resume");
    assert.ok(performance.now() - resumed >= 150 - 5, "a whole record deadline after the resume");
    p.cancel();
  }
  // Pauses that add up past the message deadline's cap, with reading between them: excused together
  // up to its length, so it fires during the second pause (at about 400 ms), long before the 600 ms of
  // pauses end; excused in full it could not fire before 800 ms.
  expired.length = 0;
  const p = new PartialInputDeadline(m, 10_000, owner, 200);
  p.watch();
  const started = performance.now();
  for (let i = 0; i < 3; i++) {
    p.readingPaused(true);
    await sleep(200);
    p.readingPaused(false);
  }
  assert.deepEqual(expired, ["message"], "it fired before the pauses were over");
  const paused = performance.now() - started;
  assert.ok(paused >= 600, `${paused} ms`);
  p.cancel();
});

