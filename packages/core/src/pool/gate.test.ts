// The pool's queue in front of piscina (gate.ts), with a stand-in for the threads: tasks start in
// the order they came, never more at once than threads, the queue is bounded, and a caller that goes
// away is answered at once while its running task is left to end.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NstpError } from "../errors.ts";
import { ThreadGate } from "./gate.ts";

/** Threads whose tasks end when the test says so. */
function threads() {
  const started: number[] = [];
  const finish = new Map<number, () => void>();
  const exec = (task: number) => {
    started.push(task);
    return new Promise<unknown>((resolve) => finish.set(task, () => resolve(task * 10)));
  };
  const end = async (task: number) => {
    finish.get(task)!();
    for (let i = 0; i < 5; i++) await Promise.resolve(); // the gate's hand-over runs in microtasks
  };
  return { started, end, exec };
}

const code = (c: string) => (e: unknown) => e instanceof NstpError && e.code === c;

test("a burst starts in the order it came, two at a time on two threads, skipping the cancelled", async () => {
  const t = threads();
  const gate = new ThreadGate(t.exec, 2, 100);
  const cancel = new AbortController();
  const results = Array.from({ length: 8 }, (_, i) => gate.run(i, i === 3 ? cancel.signal : new AbortController().signal));
  assert.deepEqual(t.started, [0, 1]);
  assert.equal(gate.queued, 6);
  cancel.abort();
  await assert.rejects(results[3]!, code("ERR_CLOSED"));
  assert.equal(gate.queued, 5);
  for (const i of [1, 0, 2, 4, 5, 6]) await t.end(i);
  assert.deepEqual(t.started, [0, 1, 2, 4, 5, 6, 7]);
  await t.end(7);
  assert.deepEqual(await Promise.all(results.filter((_, i) => i !== 3)), [0, 10, 20, 40, 50, 60, 70]);
  assert.equal(gate.queued, 0);
});

test("a caller gone while its task runs is answered at once; the thread stays taken until the task ends", async () => {
  const t = threads();
  const gate = new ThreadGate(t.exec, 1, 100);
  const cancel = new AbortController();
  const running = gate.run(0, cancel.signal);
  const next = gate.run(1);
  cancel.abort();
  await assert.rejects(running, code("ERR_CLOSED"));
  assert.deepEqual(t.started, [0], "the next task waits for the thread");
  await t.end(0);
  assert.deepEqual(t.started, [0, 1]);
  await t.end(1);
  assert.equal(await next, 10);
});

test("the queue is bounded; a cancelled waiter frees its place; close refuses the waiting and later tasks", async () => {
  const t = threads();
  const gate = new ThreadGate(t.exec, 1, 2);
  const running = gate.run(0);
  const cancel = new AbortController();
  const waiting = [gate.run(1, cancel.signal), gate.run(2)];
  assert.equal(gate.saturated, true);
  await assert.rejects(gate.run(3), code("ERR_BUSY"));
  cancel.abort();
  await assert.rejects(waiting[0]!, code("ERR_CLOSED"));
  assert.equal(gate.saturated, false);
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(gate.run(4, aborted.signal), code("ERR_CLOSED"));
  gate.close();
  await assert.rejects(waiting[1]!, code("ERR_BUSY"));
  await assert.rejects(gate.run(5), code("ERR_BUSY"));
  await t.end(0);
  assert.equal(await running, 0);
  assert.deepEqual(t.started, [0]);
});

test("a waiter that goes away leaves the queue at once: submit-then-cancel, many times over, holds nothing", async () => {
  const t = threads();
  const gate = new ThreadGate<number | Uint8Array>((task) => t.exec(task as number), 1, 4);
  const running = gate.run(0); // the thread is busy
  const honest = gate.run(1); // one waiter ahead
  for (let i = 0; i < 10_000; i++) {
    const caller = new AbortController();
    gate.run(new Uint8Array(16), caller.signal).catch(() => {});
    caller.abort();
  }
  assert.equal(gate.queued, 1);
  assert.equal(gate.held, 1, "the queue really holds only the live waiter");
  // One cancelled from the middle of the queue: its neighbours stay linked, in order.
  const middle = new AbortController();
  const waiters = [gate.run(2), gate.run(3, middle.signal), gate.run(4)];
  assert.equal(gate.saturated, true);
  middle.abort();
  await assert.rejects(waiters[1]!, code("ERR_CLOSED"));
  assert.equal(gate.held, 3);
  for (const i of [0, 1, 2, 4]) await t.end(i);
  assert.deepEqual(t.started, [0, 1, 2, 4], "no cancelled task reached a thread");
  assert.deepEqual([await running, await honest, await waiters[0], await waiters[2]], [0, 10, 20, 40]);
  assert.equal(gate.held, 0);
});
