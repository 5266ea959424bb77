// Nudged collections: the counted one (the pool threads', whose event loop does not turn between
// tasks) collects every `every` ticks and never between; the timed one (the server's) once per
// interval for all notes meanwhile. The runtime's collections exist on both runtimes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CollectionNudge, CountedCollection, runtimeCollection } from "./collection.ts";

test("a counted collection runs every `every` ticks, before the tick's work", () => {
  let n = 0;
  const c = new CountedCollection(3, () => n++);
  const seen: number[] = [];
  for (let i = 0; i < 7; i++) {
    c.tick();
    seen.push(n);
  }
  assert.deepEqual(seen, [0, 0, 1, 1, 1, 2, 2]);
  assert.equal(c.collections, 2);
});

test("a timed nudge collects once per interval for every note meanwhile", async () => {
  let n = 0;
  const nudge = new CollectionNudge(10, () => n++);
  for (let i = 0; i < 5; i++) nudge.note();
  assert.equal(n, 0, "not synchronously");
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(n, 1);
  assert.equal(nudge.collections, 1);
  nudge.stop();
});

test("both runtimes have a minor and a major collection to call", () => {
  for (const kind of ["minor", "major"] as const) {
    const collect = runtimeCollection(kind);
    assert.equal(typeof collect, "function", kind);
    collect!();
  }
});

test("taking V8's collection leaves no gc global in vm contexts the application makes later", async () => {
  // Bun's vm contexts never had one; on Node the --expose-gc flag is turned off again right after use.
  const { runInNewContext } = await import("node:vm");
  runtimeCollection("minor");
  if (!process.execArgv.includes("--expose-gc")) assert.equal(runInNewContext("typeof gc"), "undefined");
});
