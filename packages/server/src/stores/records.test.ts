// The stores' record cache: records and misses in one bounded LRU.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type CredentialRecord, RecordCache } from "./records.ts";

const record = (username: string): CredentialRecord => ({ username, psk: new Uint8Array(32), disabled: false, version: 1, updatedAt: 0 });

test("RecordCache: a flood of random misses evicts records and misses alike (existence not told apart by what stays cached)", () => {
  const cache = new RecordCache(4);
  cache.set(record("alice"));
  cache.setMissing("ghost");
  assert.equal(cache.get("alice")?.username, "alice");
  assert.equal(cache.get("ghost"), null);
  for (let i = 0; i < 4; i++) cache.setMissing(`random-${i}`);
  assert.equal(cache.get("alice"), undefined, "the record went to the store again");
  assert.equal(cache.get("ghost"), undefined, "and so did the miss");
  assert.equal(cache.size, 4);
});

test("RecordCache: a record replaces a miss for the same name, and delete drops either", () => {
  const cache = new RecordCache(4);
  cache.setMissing("bob");
  cache.set(record("bob"));
  assert.equal(cache.get("bob")?.username, "bob");
  cache.delete("bob");
  assert.equal(cache.get("bob"), undefined);
  cache.setMissing("carol");
  cache.delete("carol");
  assert.equal(cache.get("carol"), undefined);
});
