// The server-wide bound on what unfinished messages hold: the sum is kept, and going over ends the
// largest holders first, each told once, until the sum is under the limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { totalmem } from "node:os";
import { UnfinishedBudget, defaultMaxUnfinishedBytes, usableMemory } from "./unfinished-budget.ts";

function holder(budget: UnfinishedBudget, name: string, ended: string[]) {
  // As a session does: told to end, it reports 0 from its end.
  const h = { overBudget: () => (ended.push(name), budget.set(h, 0)) };
  return h;
}

test("over the limit, the largest holders end first until the sum is under it; completed messages give their bytes back", () => {
  const budget = new UnfinishedBudget(1000);
  const ended: string[] = [];
  const [a, b, c] = ["a", "b", "c"].map((n) => holder(budget, n, ended)) as [ReturnType<typeof holder>, ReturnType<typeof holder>, ReturnType<typeof holder>];
  budget.set(a, 600);
  budget.set(b, 300);
  assert.equal(budget.bytes, 900);
  assert.deepEqual(ended, []);
  budget.set(b, 0); // b's message completed
  assert.equal(budget.bytes, 600);
  budget.set(b, 350);
  budget.set(c, 100); // 1050: a (600) goes
  assert.deepEqual(ended, ["a"]);
  assert.equal(budget.bytes, 450);
  assert.equal(budget.evictions, 1);
  budget.set(c, 2000); // c alone is over: it is the largest, and it goes
  assert.deepEqual(ended, ["a", "c"]);
  assert.equal(budget.bytes, 350);
  budget.set(a, 0); // an ended holder's own report changes nothing
  assert.equal(budget.bytes, 350);
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
