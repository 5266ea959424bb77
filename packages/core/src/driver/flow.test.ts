// Flow control: only transitions reach the wire; writers wait for the mark and end with the session.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Flow } from "./flow.ts";

function fakeWire() {
  const w = { calls: [] as string[], bufferedAmount: 0, pause: () => void w.calls.push("pause"), resume: () => void w.calls.push("resume") };
  return w;
}

test("flow: pause and resume only on transitions", () => {
  const wire = fakeWire();
  const flow = new Flow(wire, 100);
  flow.set(false);
  flow.set(true);
  flow.set(true);
  assert.ok(flow.paused);
  flow.set(false);
  flow.set(false);
  assert.deepEqual(wire.calls, ["pause", "resume"]);
});

test("flow: writable() waits while the queue (and what is about to join it) is at the mark", async () => {
  const wire = fakeWire();
  const flow = new Flow(wire, 100);
  await flow.writable(99);
  let woke = false;
  const waiting = flow.writable(100).then(() => (woke = true));
  wire.bufferedAmount = 150;
  flow.set(false);
  await Promise.resolve();
  assert.ok(!woke, "still above the mark");
  wire.bufferedAmount = 10;
  flow.set(false);
  await waiting;
  assert.ok(woke);
  assert.ok(flow.writeCongested(90));
  assert.ok(!flow.writeCongested(89));
});

test("flow: release() resolves the waiters, or rejects them with the session's error", async () => {
  const wire = fakeWire();
  wire.bufferedAmount = 500;
  const flow = new Flow(wire, 100);
  const a = flow.writable();
  flow.release();
  await a;
  const b = flow.writable();
  flow.release(new Error("gone"));
  await assert.rejects(b, /gone/);
});
