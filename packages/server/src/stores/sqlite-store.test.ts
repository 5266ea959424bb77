// The SQLite credential store on the runtime running the test (bun:sqlite under Bun, node:sqlite
// under Node): schema and WAL, the server reading only, changes and removals seen within a second
// without SIGHUP, JSON import and export, and a server serving from it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NstpError, legacy, toHex } from "@nstp/core";
import { SqliteCredentialStore, SqliteUsersDb } from "./sqlite-store.ts";
import { openSqlite } from "./sqlite-driver.ts";
import { recordsFromUsersFile, recordsToUsersFile } from "./users-db.ts";
import { storeKind } from "./schema.ts";
import { within } from "@nstp/testkit";

const deviceSalt = legacy.DEMO_DEVICE_SALT;
const key = (n: number) => new Uint8Array(32).fill(n);
const L = Uint8Array.from({ length: 65 }, (_, i) => (i === 0 ? 4 : i));

function tempDb(): { path: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), "nstp-sqlite-"));
  return { path: join(dir, "users.db"), done: () => rmSync(dir, { recursive: true, force: true }) };
}

test("--users values name their store by prefix or extension", () => {
  assert.deepEqual(storeKind("users.db"), { kind: "sqlite", location: "users.db" });
  assert.deepEqual(storeKind("sqlite:/var/lib/nstp/creds"), { kind: "sqlite", location: "/var/lib/nstp/creds" });
  assert.deepEqual(storeKind("postgres://nstp@127.0.0.1/nstp"), { kind: "postgres", location: "postgres://nstp@127.0.0.1/nstp" });
  assert.equal(storeKind("users.json").kind, "json");
});

test("a new database is in WAL mode with the documented tables; the server's connection cannot write", async () => {
  const t = tempDb();
  try {
    const w = await SqliteUsersDb.open(t.path, deviceSalt);
    await w.put({ username: "alice", psk: key(1), w0: key(2), L });
    await w.close();
    const db = await openSqlite(t.path, { create: false });
    assert.equal(db.get("PRAGMA journal_mode")?.journal_mode, "wal");
    const cols = db.all("SELECT name FROM pragma_table_info('nstp_users')").map((r) => r.name);
    assert.deepEqual(cols, ["username", "psk", "w0", "l", "disabled", "version", "updated_at"]);
    db.close();
    const store = await SqliteCredentialStore.open({ path: t.path, deviceSalt });
    try {
      const r = store.lookupRecord("alice");
      assert.deepEqual([r?.psk, r?.w0, r?.L, r?.disabled], [key(1), key(2), L, false]);
      assert.deepEqual(store.lookup("alice"), key(1));
      assert.equal(store.lookup("nobody"), undefined);
      assert.throws(() => (store as unknown as { db: { exec(s: string): void } }).db.exec("DELETE FROM nstp_users"), /readonly|query_only|read-only/i);
    } finally {
      await store.close();
    }
  } finally {
    t.done();
  }
});

test("records are checked before they are written; a store with another device salt is refused", async () => {
  const t = tempDb();
  try {
    const w = await SqliteUsersDb.open(t.path, deviceSalt);
    for (const bad of [{ psk: key(1).subarray(1) }, {}, { w0: key(1) }, { w0: key(1), L: L.subarray(1) }, { psk: key(1), w0: key(1), L: key(1) }]) {
      await assert.rejects(w.put({ username: "x", ...bad }), NstpError, JSON.stringify(Object.keys(bad)));
    }
    await assert.rejects(w.put({ username: "", psk: key(1) }), RangeError);
    assert.deepEqual(await w.list(), []);
    await w.close();
    await assert.rejects(SqliteCredentialStore.open({ path: t.path, deviceSalt: Uint8Array.of(9) }), /another device salt/);
    await assert.rejects(SqliteUsersDb.open(t.path, Uint8Array.of(9)), /another device salt/);
    await assert.rejects(SqliteCredentialStore.open({ path: join(t.path, "..", "missing.db"), deviceSalt }));
    const other = await openSqlite(join(t.path, "..", "other.db"), { create: true });
    other.exec("CREATE TABLE t (x)");
    other.close();
    await assert.rejects(SqliteCredentialStore.open({ path: join(t.path, "..", "other.db"), deviceSalt }), /not an nstp credential store/);
  } finally {
    t.done();
  }
});

test("changes by another connection are seen within a second without SIGHUP; removals, disabling and new keys are announced", async () => {
  const t = tempDb();
  const w = await SqliteUsersDb.open(t.path, deviceSalt);
  await w.put({ username: "alice", psk: key(1) });
  const store = await SqliteCredentialStore.open({ path: t.path, deviceSalt, pollMs: 100 });
  const removed: string[] = [];
  const off = store.onUserRemoved((u) => removed.push(u));
  try {
    assert.deepEqual(store.lookup("alice"), key(1)); // now cached
    assert.equal(store.lookup("bob"), undefined); // a miss, remembered
    await w.put({ username: "bob", psk: key(2) });
    await w.put({ username: "alice", psk: key(3) });
    assert.ok(await within(1000, () => store.lookup("bob") !== undefined), "bob seen");
    assert.ok(await within(1000, () => store.lookup("alice")?.[0] === 3), "the cached record was replaced");
    assert.deepEqual([...removed], ["alice"], "a new key revokes alice's sessions; a new user has none");
    await w.setDisabled("bob", true);
    assert.ok(await within(1000, () => removed.includes("bob")), "disabling announced");
    assert.equal(store.lookup("bob"), undefined, "a disabled user has no key");
    assert.equal(store.lookupRecord("bob")?.disabled, true);
    await w.setDisabled("bob", false);
    assert.ok(await within(1000, () => store.lookup("bob") !== undefined), "enabled again");
    assert.equal(await w.remove("alice"), true);
    assert.equal(await w.remove("alice"), false);
    assert.ok(await within(1000, () => removed.length === 3), "removal announced");
    assert.equal(store.lookup("alice"), undefined);
    await w.put({ username: "alice", psk: key(4) });
    assert.ok(await within(1000, () => store.lookup("alice") !== undefined), "re-added");
    assert.deepEqual(removed, ["alice", "bob", "alice"], "re-keyed, disabled, removed; enabling and re-adding end nothing");
    assert.equal(store.health().ok, true);
    off();
  } finally {
    await store.close();
    await w.close();
    t.done();
  }
});

test("JSON users files import into a database and export back, keys checked against the device salt", async () => {
  const t = tempDb();
  try {
    const doc = recordsToUsersFile(
      [
        { username: "alice", psk: key(1), disabled: false },
        { username: "bob", psk: key(2), w0: key(3), L, disabled: true },
        { username: "carol", w0: key(4), L, disabled: false },
      ],
      deviceSalt,
    );
    assert.equal(doc.users.alice?.salt, toHex(legacy.pskSalt(deviceSalt, new TextEncoder().encode("alice"))));
    const w = await SqliteUsersDb.open(t.path, deviceSalt);
    await w.putMany(recordsFromUsersFile(JSON.stringify(doc), deviceSalt));
    const back = recordsToUsersFile(await w.list(), deviceSalt);
    assert.deepEqual(back, doc);
    assert.throws(() => recordsFromUsersFile(JSON.stringify(doc), Uint8Array.of(9)), /written for device salt/);
    const { deviceSalt: _, ...older } = doc; // a file from before the recorded salt: each record is checked
    assert.throws(() => recordsFromUsersFile(JSON.stringify(older), Uint8Array.of(9)), /salt does not match/);
    await w.close();
  } finally {
    t.done();
  }
});

