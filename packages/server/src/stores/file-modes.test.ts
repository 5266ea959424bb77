// Credential stores at rest: their records are password-equivalent, so a SQLite store `bun run users`
// creates (with its -wal and -shm) and an export to a file are 0600 whatever the umask, a symbolic
// link at the store's path is refused, and a server or `bun run users` opening a store that group or
// others can read says so once, without a secret in the line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Logger, legacy, toHex } from "@nstp/core";
import { SqliteCredentialStore, SqliteUsersDb } from "./sqlite-store.ts";
import { runDbCommand } from "./users-db-cli.ts";
import { warnIfOpenToOthers } from "../users-file.ts";

const deviceSalt = legacy.DEMO_DEVICE_SALT;
const psk = new Uint8Array(32).fill(0xa5);
const mode = (p: string) => statSync(p).mode & 0o777;

function tempDir(): { dir: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), "nstp-modes-"));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `fn` under umask 022, the common default under which new files are 0644. */
async function underUmask022<T>(fn: () => Promise<T>): Promise<T> {
  const old = process.umask(0o022);
  try {
    return await fn();
  } finally {
    process.umask(old);
  }
}

function capturingLog(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const none = () => {};
  return { warnings, log: { debug: none, info: none, error: none, warn: (msg, fields) => warnings.push(`${msg} ${JSON.stringify(fields ?? {})}`) } };
}

test("a SQLite store bun run users creates is 0600, and so are its -wal and -shm files, under umask 022", async () => {
  const t = tempDir();
  try {
    const path = join(t.dir, "users.db");
    await underUmask022(async () => {
      const w = await SqliteUsersDb.open(path, deviceSalt);
      await w.put({ username: "alice", psk });
      // While the writer is open the WAL and its index exist (WAL mode, sqlite-store.ts).
      for (const f of [path, `${path}-wal`, `${path}-shm`]) assert.equal(mode(f).toString(8), "600", f);
      await w.close();
    });
    assert.equal(mode(path).toString(8), "600");
  } finally {
    t.done();
  }
});

test("the server warns once when a SQLite store is readable by others, naming files and modes only; not when 0600", async () => {
  const t = tempDir();
  try {
    const path = join(t.dir, "users.db");
    const w = await SqliteUsersDb.open(path, deviceSalt);
    await w.put({ username: "alice", psk });
    await w.close();
    for (const [m, expected] of [[0o600, 0], [0o644, 1]] as const) {
      chmodSync(path, m);
      const { log, warnings } = capturingLog();
      const store = await SqliteCredentialStore.open({ path, deviceSalt, log });
      await store.close();
      assert.equal(warnings.length, expected, warnings.join("\n"));
      if (expected) {
        assert.match(warnings[0]!, /open to other local users/);
        assert.match(warnings[0]!, /users\.db \(0644\)/);
        assert.doesNotMatch(warnings[0]!, new RegExp(toHex(psk), "i"));
      }
    }
  } finally {
    t.done();
  }
});

test("bun run users on an existing SQLite store open to others says so (paths and modes only); a 0600 one says nothing", async () => {
  const t = tempDir();
  const said: string[] = [];
  const error = console.error;
  try {
    const path = join(t.dir, "users.db");
    const w = await SqliteUsersDb.open(path, deviceSalt);
    await w.put({ username: "alice", psk });
    await w.close();
    console.error = (...args: unknown[]) => void said.push(args.join(" "));
    await runDbCommand(path, "list", undefined, undefined);
    assert.deepEqual(said.filter((l) => /open to other/.test(l)), [], "0600: no warning");
    chmodSync(path, 0o644);
    await runDbCommand(path, "list", undefined, undefined);
    const warned = said.filter((l) => /open to other/.test(l));
    assert.equal(warned.length, 1, said.join("\n"));
    assert.match(warned[0]!, /^warning: .*users\.db \(0644\)/);
    assert.doesNotMatch(warned[0]!, new RegExp(toHex(psk), "i"));
  } finally {
    console.error = error;
    t.done();
  }
});

test("a symbolic link at the store's path is refused, not followed: a dangling one's target is never created", async () => {
  const t = tempDir();
  try {
    const path = join(t.dir, "users.db");
    const target = join(t.dir, "elsewhere.db");
    symlinkSync(target, path);
    await underUmask022(async () => {
      await assert.rejects(SqliteUsersDb.open(path, deviceSalt), /users\.db is a symbolic link/);
      await assert.rejects(runDbCommand(path, "list", undefined, undefined), /symbolic link/);
    });
    assert.equal(existsSync(target), false, "SQLite never created the link's target (it would be 0644)");
    // A link to an existing file is refused too: the records would go wherever it points.
    writeFileSync(target, "");
    await assert.rejects(SqliteUsersDb.open(path, deviceSalt), /symbolic link/);
    assert.equal(statSync(target).size, 0);
  } finally {
    t.done();
  }
});

test("a JSON users file open to group or others is reported; a 0600 one and a missing one are not", () => {
  const t = tempDir();
  try {
    const file = join(t.dir, "users.json");
    writeFileSync(file, "{}\n", { mode: 0o600 });
    chmodSync(file, 0o600);
    const { log, warnings } = capturingLog();
    assert.equal(warnIfOpenToOthers([file, join(t.dir, "absent.json")], log), false);
    chmodSync(file, 0o640);
    assert.equal(warnIfOpenToOthers([file], log), true);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /users\.json \(0640\)/);
  } finally {
    t.done();
  }
});

test("users export FILE writes the keys with mode 0600 under umask 022", async () => {
  const t = tempDir();
  try {
    const path = join(t.dir, "users.db");
    const out = join(t.dir, "export.json");
    const w = await SqliteUsersDb.open(path, deviceSalt);
    await w.put({ username: "alice", psk });
    await w.close();
    await underUmask022(() => runDbCommand(path, "export", out, undefined));
    assert.equal(mode(out).toString(8), "600");
    assert.equal(JSON.parse(readFileSync(out, "utf8")).users.alice.key, toHex(psk));
  } finally {
    t.done();
  }
});
