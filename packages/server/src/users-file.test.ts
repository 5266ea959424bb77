// Users file replacement: random exclusive temporary file, mode 0600 forced, nothing left behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { fromHex } from "@nstp/core";
import { detectRuntime } from "@nstp/core/node";
import { parseUsersFile } from "./credentials.ts";
import { withUsersFileLock, writeFileAtomic } from "./users-file.ts";
import { BIN, USERS_CLI } from "@nstp/testkit";

const mode = (p: string) => statSync(p).mode & 0o777;

test("a users file that existed as 0644 is 0600 after a write, whatever the umask", () => {
  const dir = mkdtempSync(join(tmpdir(), "nstp-users-"));
  const file = join(dir, "users.json");
  writeFileSync(file, "old\n");
  chmodSync(file, 0o644);
  const old = process.umask(0);
  try {
    writeFileAtomic(file, "new\n");
  } finally {
    process.umask(old);
  }
  assert.equal(mode(file), 0o600);
  assert.equal(readFileSync(file, "utf8"), "new\n");
  assert.deepEqual(readdirSync(dir), ["users.json"], "no temporary file left behind");
});

test("files planted beside it, at the old predictable temporary name, are neither followed nor reused", () => {
  const dir = mkdtempSync(join(tmpdir(), "nstp-users-"));
  const file = join(dir, "users.json");
  const victim = join(dir, "victim");
  writeFileSync(victim, "untouched\n");
  // The name the CLI used to write through (path.PID.tmp), as a symlink and as a readable file.
  symlinkSync(victim, `${file}.${process.pid}.tmp`);
  writeFileSync(`${file}.1.tmp`, "");
  chmodSync(`${file}.1.tmp`, 0o644);
  for (let i = 0; i < 20; i++) writeFileAtomic(file, `v${i}\n`);
  assert.equal(readFileSync(victim, "utf8"), "untouched\n");
  assert.equal(readFileSync(file, "utf8"), "v19\n");
  assert.equal(mode(file), 0o600);
  assert.ok(!statSync(file).isSymbolicLink());
  assert.deepEqual(readdirSync(dir).sort(), ["users.json", "users.json.1.tmp", `users.json.${process.pid}.tmp`, "victim"].sort());
});

test("a failed rename leaves the old file alone and removes the temporary file", () => {
  const dir = mkdtempSync(join(tmpdir(), "nstp-users-"));
  const target = join(dir, "users.json");
  mkdirSync(target); // a directory where the file should be: rename fails
  writeFileSync(join(target, "keep"), "");
  assert.throws(() => writeFileAtomic(target, "x"));
  assert.deepEqual(readdirSync(dir), ["users.json"]);
});

test("the users CLI on both runtimes replaces a 0644 file with a 0600 one holding the new user", { skip: detectRuntime() !== "bun" && "spawned from the Bun run" }, () => {
  for (const runtime of ["bun", "node"] as const) {
    const dir = mkdtempSync(join(tmpdir(), "nstp-users-"));
    const file = join(dir, "users.json");
    writeFileSync(file, JSON.stringify({ format: "nstp-users/1", users: {} }));
    chmodSync(file, 0o644);
    const r = spawnSync(BIN[runtime], [USERS_CLI[runtime], "add", "bob", "--file", file], { input: "bobs password\n", timeout: 30_000 });
    assert.equal(r.status, 0, String(r.stderr));
    assert.equal(mode(file), 0o600, runtime);
    const text = readFileSync(file, "utf8");
    assert.ok(parseUsersFile(text, fromHex(JSON.parse(text).deviceSalt)).has("bob"), "bob, under the salt the file records");
    assert.deepEqual(readdirSync(dir), ["users.json"]);
  }
});

test("a removal made while `users add` waits for its password is not undone by the add", { skip: detectRuntime() !== "bun" && "spawned from the Bun run" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "nstp-users-"));
  const file = join(dir, "users.json");
  const cli = USERS_CLI.bun;
  assert.equal(spawnSync(BIN.bun, [cli, "add", "mallory", "--file", file], { input: "old\n", timeout: 30_000 }).status, 0);
  // An operator starts adding bob and is still typing the password...
  const add = spawn(BIN.bun, [cli, "add", "bob", "--file", file], { stdio: ["pipe", "ignore", "pipe"] });
  let err = "";
  add.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((res) => add.on("exit", res));
  await new Promise((r) => setTimeout(r, 1500));
  // ...while another revokes mallory's key.
  const rm = spawnSync(BIN.bun, [cli, "remove", "mallory", "--file", file], { timeout: 30_000 });
  assert.equal(rm.status, 0, String(rm.stderr));
  add.stdin!.end("bobs password\n");
  const killer = setTimeout(() => add.kill("SIGKILL"), 30_000);
  assert.equal(await exited, 0, err);
  clearTimeout(killer);
  const text = readFileSync(file, "utf8");
  const users = parseUsersFile(text, fromHex(JSON.parse(text).deviceSalt));
  assert.ok(users.has("bob"));
  assert.ok(!users.has("mallory"), "the removal was undone by the concurrent add");
  assert.deepEqual(readdirSync(dir), ["users.json"], "no lock or temporary file left behind");
});

test("the users file lock makes a second writer wait for the first, and reports a lock nobody releases", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nstp-users-"));
  const file = join(dir, "users.json");
  writeFileSync(`${file}.lock`, "");
  let ran = false;
  const waiting = withUsersFileLock(file, () => (ran = true), 5_000);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(ran, false, "ran while another writer held the lock");
  unlinkSync(`${file}.lock`);
  await waiting;
  assert.equal(ran, true);
  assert.deepEqual(readdirSync(dir), [], "the lock is released");
  writeFileSync(`${file}.lock`, "");
  await assert.rejects(withUsersFileLock(file, () => assert.fail("ran without the lock"), 100), /held by another writer/);
});
