// Single-timer deadlines: re-armed only from their check, never per event (real timers, short; no
// timing asserted beyond order).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Deadline, PartialInputDeadline } from "./deadline.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("deadline: once() fires once; cancel() stops it; arm() while armed is ignored", async () => {
  const d = new Deadline();
  let fired = 0;
  d.once(5, () => fired++);
  assert.ok(d.armed);
  d.once(1, () => (fired += 100));
  await sleep(40);
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
  const p = new PartialInputDeadline(m, 10, () => expired++);
  p.watch();
  for (let i = 0; i < 4; i++) {
    await sleep(8);
    m.inputProgress++;
  }
  assert.equal(expired, 0, "a frame completed in every interval");
  await sleep(60);
  assert.equal(expired, 1, "no frame completed in an interval while input stayed partial");
  m.hasPartialInput = false;
  p.watch();
  await sleep(30);
  assert.equal(expired, 1, "nothing partial, nothing watched");
  m.hasPartialInput = true;
  p.watch();
  m.hasPartialInput = false;
  await sleep(30);
  assert.equal(expired, 1, "input completed before the deadline");
  p.watch();
  p.cancel();
});
