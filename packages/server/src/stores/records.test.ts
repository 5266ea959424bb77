// The stores' record cache: every name on probation, records and misses alike; records proven by a
// login kept apart, where a flood of misses cannot reach them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type CredentialRecord, RecordCache } from "./records.ts";

const record = (username: string): CredentialRecord => ({ username, psk: new Uint8Array(32), disabled: false, version: 1, updatedAt: 0 });

test("RecordCache: a flood of random misses evicts unproven records and misses alike (existence not told apart by what stays cached)", () => {
  const cache = new RecordCache(8); // 2 on probation, 6 proven
  cache.set(record("alice"));
  cache.setMissing("ghost");
  assert.equal(cache.get("alice")?.username, "alice");
  assert.equal(cache.get("ghost"), null);
  for (let i = 0; i < 2; i++) cache.setMissing(`random-${i}`);
  assert.equal(cache.get("alice"), undefined, "the record a stranger probed went to the store again");
  assert.equal(cache.get("ghost"), undefined, "and so did the miss");
  assert.equal(cache.size, 2);
});

test("RecordCache: misses never evict a record proven by a login, and a miss is never proven", () => {
  const cache = new RecordCache(8); // 2 on probation, 6 proven
  for (const name of ["alice", "bob"]) {
    cache.set(record(name));
    cache.proven(name);
  }
  cache.setMissing("ghost");
  cache.proven("ghost");
  cache.proven("nobody"); // not cached: nothing to keep
  cache.set({ ...record("dave"), disabled: true });
  cache.proven("dave"); // a disabled user fails as an unknown one: not kept either
  for (let i = 0; i < 1000; i++) cache.setMissing(`random-${i}`);
  assert.equal(cache.get("alice")?.username, "alice", "a flood of misses leaves the proven records");
  assert.equal(cache.get("bob")?.username, "bob");
  assert.equal(cache.get("ghost"), undefined, "the miss stayed on probation and went with the flood");
  assert.equal(cache.get("dave"), undefined);
  assert.equal(cache.size, 4, "two proven, two on probation");
  // A change drops a proven name too; cached again, it is on probation until the next login.
  cache.delete("alice");
  assert.equal(cache.get("alice"), undefined);
  cache.set(record("alice"));
  for (let i = 0; i < 2; i++) cache.setMissing(`later-${i}`);
  assert.equal(cache.get("alice"), undefined);
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
