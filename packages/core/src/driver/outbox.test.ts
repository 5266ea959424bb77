// Tick batching: what one turn gathers is flushed once, at its end; a hold defers to its caller.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Outbox } from "./outbox.ts";

const turn = () => new Promise<void>((r) => setImmediate(r));
const bytes = (...xs: number[]) => new Uint8Array(xs);

test("outbox: messages of one turn, from sync code and microtasks, leave in one flush, in order", async () => {
  const flushed: Uint8Array[][] = [];
  const box: Outbox = new Outbox({ flushOutbox: () => void flushed.push(box.take()) });
  box.push(bytes(1));
  box.schedule();
  await Promise.resolve();
  box.push(bytes(2, 3));
  box.schedule();
  assert.equal(box.bytes, 3);
  assert.deepEqual(flushed, [], "nothing leaves before the turn ends");
  await turn();
  assert.deepEqual(flushed, [[bytes(1), bytes(2, 3)]]);
  assert.ok(box.empty);
  assert.equal(box.bytes, 0);
  box.push(bytes(4));
  box.schedule();
  await turn();
  assert.deepEqual(flushed.length, 2, "a later turn flushes again");
});

test("outbox: schedule() inside hold() does nothing (the holder flushes); clear() drops the batch", async () => {
  let flushes = 0;
  const box = new Outbox({ flushOutbox: () => void flushes++ });
  const r = box.hold(() => {
    box.push(bytes(1));
    box.schedule();
    return 7;
  });
  assert.equal(r, 7);
  await turn();
  assert.equal(flushes, 0);
  assert.deepEqual(box.take(), [bytes(1)]);
  assert.throws(() => box.hold(() => { throw new Error("x"); }), /x/);
  box.schedule();
  await turn();
  assert.equal(flushes, 1, "a hold that threw is released");
  box.push(bytes(2));
  box.clear();
  assert.ok(box.empty);
  assert.deepEqual(box.take(), []);
});

test("outbox: it holds its owner, not a function of its own (a closure and its scope per idle session)", () => {
  const owner = { flushOutbox: () => {} };
  const box = new Outbox(owner);
  assert.deepEqual(Object.values(box).filter((v) => typeof v === "function"), []);
  assert.ok(Object.values(box).includes(owner));
});
