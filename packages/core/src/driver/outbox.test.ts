// Tick batching: what one turn gathers is flushed once, at its end; a hold defers to its caller.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Outbox } from "./outbox.ts";

const turn = () => new Promise<void>((r) => setImmediate(r));
const bytes = (...xs: number[]) => new Uint8Array(xs);

test("outbox: messages of one turn, from sync code and microtasks, leave in one flush, in order", async () => {
  const flushed: Uint8Array[][] = [];
  const box: Outbox = new Outbox(() => flushed.push(box.take()));
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
  const box = new Outbox(() => flushes++);
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

test("outbox: a prompt schedule flushes at the end of the microtasks already queued, with what they pushed, before the turn ends", async () => {
  const flushed: Uint8Array[][] = [];
  const box: Outbox = new Outbox(() => flushed.push(box.take()));
  let immediate = false;
  setImmediate(() => (immediate = true));
  // Reactions queued before the prompt schedule (the replies of one read resolving their requests)
  // run before its flush: what they push shares the batch.
  const reactions = [1, 2, 3].map((i) => Promise.resolve(i).then((n) => {
    box.push(bytes(n));
    box.schedule(n === 1);
  }));
  box.push(bytes(0));
  await Promise.all(reactions);
  await Promise.resolve();
  assert.equal(immediate, false, "still the same turn");
  assert.deepEqual(flushed, [[bytes(0), bytes(1), bytes(2), bytes(3)]], "one flush, in order, within the turn");
  // A message pushed after the prompt flush waits for the next (here: the turn's end), not lost.
  box.push(bytes(4));
  box.schedule();
  box.schedule(true);
  await turn();
  assert.deepEqual(flushed, [[bytes(0), bytes(1), bytes(2), bytes(3)], [bytes(4)]], "one flush per schedule, however asked");
});
