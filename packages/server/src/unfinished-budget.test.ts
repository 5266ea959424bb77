// The server-wide bound on what unfinished messages hold: the sum is kept, and going over ends the
// slowest holders first (bytes ÷ time since the message was first seen), each told once, until the
// sum is under the limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { totalmem } from "node:os";
import { UnfinishedBudget, defaultMaxUnfinishedBytes, usableMemory } from "./unfinished-budget.ts";

function holder(budget: UnfinishedBudget, name: string, ended: string[]) {
  // As a session does: told to end, it reports 0 from its end.
  const h = { overBudget: () => (ended.push(name), budget.set(h, 0)) };
  return h;
}

/** A budget on a clock the test moves. */
function clocked(limit: number) {
  const clock = { ms: 0 };
  return { budget: new UnfinishedBudget(limit, () => clock.ms), clock };
}

test("over the limit, the slowest holders end first until the sum is under it; completed messages give their bytes back", () => {
  const { budget, clock } = clocked(1000);
  const ended: string[] = [];
  const [a, b, c] = ["a", "b", "c"].map((n) => holder(budget, n, ended)) as [ReturnType<typeof holder>, ReturnType<typeof holder>, ReturnType<typeof holder>];
  budget.set(a, 600);
  budget.set(b, 300);
  assert.equal(budget.bytes, 900);
  assert.deepEqual(ended, []);
  clock.ms = 1000;
  budget.set(b, 0); // b's message completed
  assert.equal(budget.bytes, 600);
  budget.set(b, 350); // b's next message, first seen now: 350 in 1 ms
  clock.ms = 1100;
  budget.set(c, 100); // 1050: a (600 in 1,100 ms) is the slowest and goes
  assert.deepEqual(ended, ["a"]);
  assert.equal(budget.bytes, 450);
  assert.equal(budget.evictions, 1);
  clock.ms = 1200;
  budget.set(c, 2000); // c alone is over; b (350 in 200 ms) goes first, then c still over
  assert.deepEqual(ended, ["a", "b", "c"]);
  assert.equal(budget.bytes, 0);
  budget.set(a, 0); // an ended holder's own report changes nothing
  assert.equal(budget.bytes, 0);
});

test("an honest fast upload larger than every other holder survives a budget full of slow holders", () => {
  // The attack (review round 2): many sessions each hold a message just under honest sizes, grown
  // slowly (a drip just fast enough for the message deadline); an honest upload bigger than any of
  // them arrives quickly and takes the sum over. Ending the largest ended the honest upload.
  const MIB = 1 << 20;
  const { budget, clock } = clocked(8 * MIB);
  const ended: string[] = [];
  const slow = Array.from({ length: 8 }, (_, i) => holder(budget, `slow${i}`, ended));
  for (let s = 0; s <= 250; s += 10) {
    clock.ms = s * 1000;
    for (const h of slow) budget.set(h, Math.min(MIB - 1024, Math.max(1, Math.floor((MIB * s) / 250))));
  }
  assert.equal(ended.length, 0, "slow holders alone stay under the limit");
  const honest = holder(budget, "honest", ended);
  for (let i = 1; i <= 4; i++) {
    clock.ms += 50; // 64 KiB every 50 ms: 1.3 MB/s
    budget.set(honest, i * 64 * 1024 * 8); // 512 KiB a step, 2 MiB at the end: the largest
  }
  assert.ok(ended.length > 0, "the sum went over");
  assert.ok(!ended.includes("honest"), `the honest upload survived (ended: ${ended.join(", ")})`);
  assert.ok(budget.bytes <= budget.limit);
});

test("among equally slow holders, a drip-feeder that started earlier goes before one just begun", () => {
  const { budget, clock } = clocked(1000);
  const ended: string[] = [];
  const old = holder(budget, "old", ended);
  budget.set(old, 500);
  clock.ms = 10_000;
  const fresh = holder(budget, "fresh", ended);
  budget.set(fresh, 501); // the largest, but 501 in 1 ms against 500 in 10 s
  assert.deepEqual(ended, ["old"]);
});

test("the memory a process may use: a container's limit below the host's memory, else the host's", () => {
  const host = 64 * 2 ** 30;
  assert.equal(usableMemory(host, 2 * 2 ** 30), 2 * 2 ** 30, "a cgroup limit");
  // Unconstrained, as each runtime says it: Node 24 2^64 - 1, Bun the host's memory, older 0 or absent.
  for (const none of [2 ** 64 - 1, host, 0, undefined, Number.NaN, -1]) assert.equal(usableMemory(host, none), host, String(none));
  // A container with 2 GiB on a 64 GiB host: the default is a quarter of the container's.
  assert.equal(defaultMaxUnfinishedBytes(17 << 20, usableMemory(host, 2 * 2 ** 30)), 512 << 20);
  // What this runtime says here: never more than the host's memory, never 0.
  const here = usableMemory(totalmem(), process.constrainedMemory?.());
  assert.ok(here > 0 && here <= totalmem(), String(here));
});

test("the default: a quarter of the host's memory, at most 1 GiB, at least one message", () => {
  assert.equal(defaultMaxUnfinishedBytes(17 << 20, 64 * 2 ** 30), 1 << 30);
  assert.equal(defaultMaxUnfinishedBytes(17 << 20, 2 * 2 ** 30), 512 << 20);
  assert.equal(defaultMaxUnfinishedBytes(17 << 20, 32 << 20), 17 << 20);
});
