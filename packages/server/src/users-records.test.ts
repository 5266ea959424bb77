// v3 users records: `bun run users` writes the verifier beside the PSK, `migrate --v3-only` drops the
// PSK, a new store gets a random 16-byte device salt recorded where the server checks it, and the
// server's demo-salt warning says why it matters for v3.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { legacy, toHex, utf8, v3 } from "@nstp/core";
import { detectRuntime } from "@nstp/core/node";
import { nativeBackend } from "@nstp/core/crypto/native";
import { USERS_FILE_FORMAT, parseUsersFile, userRecord } from "./credentials.ts";
import { demoSaltWarning } from "./salt-advice.ts";
import { openSqlite } from "./stores/sqlite-driver.ts";
import { chooseDeviceSalt, recordsFromUsersFile, recordsToUsersFile } from "./stores/users-db.ts";
import { endsSessions } from "./stores/records.ts";
import { runUsersCli } from "@nstp/testkit";
import { DEVICE_SALT_SIZE, migrateRecord, recordFromPsk, usersFileDeviceSalt } from "./users-records.ts";

const salt = Uint8Array.of(7, 7, 7, 7, 7, 7, 7, 7);
const psk = nativeBackend.randomBytes(32);

test("a record holds the PSK and the verifier derived from it; v3-only holds the verifier alone", () => {
  const expected = v3.verifierFromPsk(nativeBackend, psk, salt, utf8("bob"));
  const both = recordFromPsk("bob", psk, salt);
  assert.deepEqual([both.psk, both.w0, both.L], [psk, expected.w0, expected.L]);
  const only = recordFromPsk("bob", psk, salt, { v3Only: true });
  assert.deepEqual([only.psk, only.w0, only.L], [undefined, expected.w0, expected.L]);
  // Another salt or username gives another verifier (the HKDF info binds both).
  assert.notDeepEqual(recordFromPsk("bob", psk, Uint8Array.of(7)).w0, expected.w0);
  assert.notDeepEqual(recordFromPsk("bobby", psk, salt).w0, expected.w0);
});

test("migrate: PSK records gain their verifier (a stale one is replaced); --v3-only drops the PSK; the disabled flag stays", () => {
  const expected = v3.verifierFromPsk(nativeBackend, psk, salt, utf8("bob"));
  const stale = { username: "bob", psk, w0: new Uint8Array(32).fill(1), L: expected.L, disabled: true };
  assert.deepEqual(migrateRecord(stale, salt), { username: "bob", psk, w0: expected.w0, L: expected.L, disabled: true });
  assert.deepEqual(migrateRecord(stale, salt, { v3Only: true }), { username: "bob", w0: expected.w0, L: expected.L, disabled: true });
  const verifierOnly = { username: "carol", w0: expected.w0, L: expected.L };
  assert.equal(migrateRecord(verifierOnly, salt, { v3Only: true }), verifierOnly);
});

test("sessions: migrate adding a verifier to a PSK record ends none; --v3-only (the PSK gone) and a new verifier end them", () => {
  const rec = { username: "bob", psk, disabled: false, version: 1, updatedAt: 0 };
  const withVerifier = migrateRecord(rec, salt);
  const after = (r: { psk?: Uint8Array; w0?: Uint8Array; L?: Uint8Array }) => ({ removed: false, disabled: false, ...r });
  assert.equal(endsSessions(rec, after(withVerifier)), false, "migrate: the same password, v3 added");
  const migrated = { ...rec, ...withVerifier };
  assert.equal(endsSessions(migrated, after(migrateRecord(migrated, salt, { v3Only: true }))), true, "migrate --v3-only: the PSK is revoked");
  assert.equal(endsSessions(migrated, after({ ...withVerifier, w0: new Uint8Array(32).fill(3) })), true, "another verifier: re-keyed");
  const verifierOnly = { username: "bob", w0: withVerifier.w0, L: withVerifier.L, disabled: false, version: 1, updatedAt: 0 };
  assert.equal(endsSessions(verifierOnly, after({ ...withVerifier, w0: new Uint8Array(32).fill(3) })), true, "a v3-only user re-keyed");
  assert.equal(endsSessions(rec, after({ psk: new Uint8Array(32) })), true, "a new PSK");
});

test("users file: a verifier-only record loads with no PSK (legacy and v2 then fail as for a wrong password); the file's device salt is checked", () => {
  const doc = recordsToUsersFile([recordFromPsk("alice", psk, salt), recordFromPsk("bob", psk, salt, { v3Only: true })], salt);
  assert.equal(doc.deviceSalt, toHex(salt));
  assert.equal(doc.users.bob!.key, undefined);
  assert.equal(doc.users.bob!.salt, toHex(legacy.pskSalt(salt, utf8("bob"))), "a verifier-only record says what it was derived with");
  const text = JSON.stringify(doc);
  assert.deepEqual([...parseUsersFile(text, salt).keys()], ["alice"]);
  assert.throws(() => parseUsersFile(text, legacy.DEMO_DEVICE_SALT), new RegExp(`--device-salt ${toHex(salt)}`));
  // Round trip through the records every store shares.
  assert.deepEqual(recordsToUsersFile(recordsFromUsersFile(text, salt), salt), doc);
  const bad = (rec: object) => JSON.stringify({ format: USERS_FILE_FORMAT, users: { bob: { ...userRecord(salt, "bob", psk), ...rec } } });
  const notVerifier = (why: RegExp) => (e: unknown) => /w0 and L are not a v3 verifier/.test((e as Error).message) && why.test(String(((e as Error).cause as Error)?.message));
  assert.throws(() => parseUsersFile(bad({ w0: "00", L: doc.users.bob!.L }), salt), notVerifier(/w0 must be 32 bytes/));
  assert.throws(() => parseUsersFile(bad({ w0: "ff".repeat(32), L: doc.users.bob!.L }), salt), notVerifier(/below the group order/));
  assert.throws(() => parseUsersFile(bad({ key: undefined }), salt), /needs a key or a v3 verifier/);
});

test("device salt: the store's own wins, a different one given is refused, a new store gets the one given or 16 random bytes", () => {
  assert.deepEqual(chooseDeviceSalt(salt, undefined, "s"), { deviceSalt: salt, created: false });
  assert.deepEqual(chooseDeviceSalt(salt, salt, "s"), { deviceSalt: salt, created: false });
  assert.throws(() => chooseDeviceSalt(salt, Uint8Array.of(1), "s"), /another device salt/);
  assert.deepEqual(chooseDeviceSalt(undefined, salt, "s"), { deviceSalt: salt, created: true });
  const a = chooseDeviceSalt(undefined, undefined, "s"), b = chooseDeviceSalt(undefined, undefined, "s");
  assert.equal(a.deviceSalt.length, DEVICE_SALT_SIZE);
  assert.equal(a.created, true);
  assert.notDeepEqual(a.deviceSalt, b.deviceSalt);
  // A users file records it; one written before that field gives it by its records' salts.
  assert.deepEqual(usersFileDeviceSalt({ format: USERS_FILE_FORMAT, deviceSalt: "0a0b", users: {} }), Uint8Array.of(10, 11));
  assert.deepEqual(usersFileDeviceSalt({ format: USERS_FILE_FORMAT, users: { "é": userRecord(salt, "é", psk) } }), salt);
  assert.equal(usersFileDeviceSalt({ format: USERS_FILE_FORMAT, users: {} }), undefined);
});

test("the demo-salt warning says why it matters when v3 is served from a users store", () => {
  assert.equal(demoSaltWarning(salt, { usersStore: true, v3: true }), undefined);
  assert.match(demoSaltWarning(legacy.DEMO_DEVICE_SALT, { usersStore: true, v3: true })!, /same verifier \(w0, L\)[\s\S]*random 16-byte/);
  assert.doesNotMatch(demoSaltWarning(legacy.DEMO_DEVICE_SALT, { usersStore: false, v3: true })!, /verifier/);
  assert.doesNotMatch(demoSaltWarning(legacy.DEMO_DEVICE_SALT, { usersStore: true, v3: false })!, /verifier/);
});

const onBun = detectRuntime() === "bun";

test("users CLI on both runtimes, SQLite: a random salt in nstp_meta, psk, w0 and l columns written, migrate --v3-only empties psk", { skip: !onBun && "spawned from the Bun run", timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "nstp-v3users-"));
  const path = join(dir, "users.db");
  try {
    await runUsersCli("node", ["add", "bob", "--file", path], "bobs password\n");
    await runUsersCli("bun", ["add", "carol", "--file", path], "carols password\n");
    const read = async () => {
      const db = await openSqlite(path, { create: false });
      try {
        const deviceSalt = new Uint8Array(db.get("SELECT value FROM nstp_meta WHERE key = 'device_salt'")!.value as Uint8Array);
        const rows = db.all("SELECT username, psk, w0, l FROM nstp_users ORDER BY username");
        return { deviceSalt, rows };
      } finally {
        db.close();
      }
    };
    const before = await read();
    assert.equal(before.deviceSalt.length, DEVICE_SALT_SIZE);
    const bobPsk = await legacy.derivePsk(nativeBackend, { username: "bob", password: "bobs password", deviceSalt: before.deviceSalt });
    const v = v3.verifierFromPsk(nativeBackend, bobPsk, before.deviceSalt, utf8("bob"));
    const bob = before.rows[0]!;
    assert.deepEqual([bob.psk, bob.w0, bob.l].map((b) => new Uint8Array(b as Uint8Array)), [bobPsk, v.w0, v.L]);
    assert.ok(before.rows[1]!.psk && before.rows[1]!.w0 && before.rows[1]!.l, "carol has all three");
    await runUsersCli("bun", ["migrate", "--v3-only", "--file", path]);
    const after = await read();
    assert.deepEqual(after.deviceSalt, before.deviceSalt);
    for (const [i, row] of after.rows.entries()) {
      assert.equal(row.psk, null, `${row.username}: no PSK`);
      assert.deepEqual([row.w0, row.l].map((b) => new Uint8Array(b as Uint8Array)), [before.rows[i]!.w0, before.rows[i]!.l].map((b) => new Uint8Array(b as Uint8Array)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
