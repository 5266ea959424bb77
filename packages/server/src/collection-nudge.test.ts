// The collection nudge: one young collection per interval while connections arrive, none without;
// the runtime's collection found without leaving a `gc` global behind for the host application.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runInNewContext } from "node:vm";
import { CollectionNudge, youngCollection } from "./collection-nudge.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("youngCollection: found on this runtime, callable, and no gc global left in later vm contexts", () => {
  const collect = youngCollection();
  assert.equal(typeof collect, "function");
  collect!();
  // Bun's vm contexts never had one; on Node the --expose-gc flag is turned off again after use.
  const exposedAtStart = process.execArgv.includes("--expose-gc");
  if (!exposedAtStart) assert.equal(runInNewContext("typeof gc"), "undefined");
});

test("CollectionNudge: one collection for a burst of connections, none while none arrive", async () => {
  let collections = 0;
  const nudge = new CollectionNudge(20, () => collections++);
  try {
    await sleep(60);
    assert.equal(collections, 0, "no connections, no collection");
    for (let i = 0; i < 100; i++) nudge.noteConnection();
    for (let i = 0; i < 50 && collections === 0; i++) await sleep(10);
    assert.equal(collections, 1, "one for the whole burst");
    await sleep(60);
    assert.equal(collections, 1, "none after the burst");
    nudge.noteConnection();
    nudge.stop();
    await sleep(60);
    assert.equal(collections, 1, "stop() cancels the pending one");
  } finally {
    nudge.stop();
  }
});
