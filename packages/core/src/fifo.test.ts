import { test } from "node:test";
import assert from "node:assert/strict";
import { Fifo } from "./fifo.ts";

test("Fifo keeps order across compactions and drains", () => {
  const q = new Fifo<number>();
  let next = 0;
  let expect = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 300; i++) q.push(next++);
    for (let i = 0; i < 250; i++) assert.equal(q.shift(), expect++);
  }
  assert.equal(q.length, next - expect);
  assert.equal(q.peek(), expect);
  assert.deepEqual(q.drain(), Array.from({ length: next - expect }, (_, i) => expect + i));
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
});
