// The server CLI's start-up checks, as a user meets them, on both builds: the demo user on a host
// others can reach is refused; a PostgreSQL password in the --users URL, and a store open to others, are warned about once. Runs under Bun only (it spawns both runtimes itself). Nothing here listens beyond
// loopback: 192.0.2.1 (TEST-NET-1, RFC 5737) is assigned to no interface, so a start that gets past
// the check fails to bind instead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { legacy, toHex } from "@nstp/core";
import { detectRuntime } from "@nstp/core/node";
import { SqliteUsersDb, USERS_FILE_FORMAT, userRecord } from "@nstp/server";
import { BIN, type Runtime, SERVER_CLI, collectStderr, within } from "@nstp/testkit";

const onBun = detectRuntime() === "bun";

/** Runs the server CLI until it exits (or kills it after `timeoutMs`: then code is null). */
function runServer(runtime: Runtime, args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(BIN[runtime], [SERVER_CLI[runtime], "--port", "0", "--log-level", "warn", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => (clearTimeout(timer), res({ code, stdout, stderr })));
  });
}

for (const runtime of ["bun", "node"] as const) {
  test(`${runtime} server: the demo user on a non-loopback host is refused with exit 2, before it listens`, { skip: !onBun && "spawned from the Bun run" }, async () => {
    for (const workers of ["1", "2"]) {
      const r = await runServer(runtime, ["--host", "192.0.2.1", "--workers", workers]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^server: refusing to serve the reference demo user \(alice\/userpassword\) on 192\.0\.2\.1.*--demo/m);
      assert.doesNotMatch(r.stdout, /listening/);
    }
  });

  test(`${runtime} server: the demo user behind --trusted-proxies is refused with exit 2 even on a loopback host`, { skip: !onBun && "spawned from the Bun run" }, async () => {
    // A public load balancer forwarding to 127.0.0.1 would serve alice/userpassword to anyone.
    const r = await runServer(runtime, ["--host", "127.0.0.1", "--trusted-proxies", "127.0.0.1"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^server: refusing to serve the reference demo user \(alice\/userpassword\) behind --trusted-proxies.*--demo/m);
    assert.doesNotMatch(r.stdout, /listening/);
  });

  test(`${runtime} server: --demo lets the demo user start on a non-loopback host (here it then fails to bind)`, { skip: !onBun && "spawned from the Bun run" }, async () => {
    const r = await runServer(runtime, ["--host", "192.0.2.1", "--demo"]);
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /refusing/);
    assert.match(r.stderr, /WARN +serving the reference demo user/);
    assert.match(r.stderr, /^server: .*(listen|EADDRNOTAVAIL|cannot assign)/im);
  });
}

for (const runtime of ["bun", "node"] as const) {
  test(`${runtime} server: a users file or SQLite store open to others is warned about once, by the supervisor with --workers 2, by the CLI alone without`, { skip: !onBun && "spawned from the Bun run" }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "nstp-cli-modes-"));
    try {
      const psk = new Uint8Array(32).fill(7);
      const json = join(dir, "users.json");
      writeFileSync(json, JSON.stringify({ format: USERS_FILE_FORMAT, deviceSalt: toHex(legacy.DEMO_DEVICE_SALT), users: { alice: userRecord(legacy.DEMO_DEVICE_SALT, "alice", psk) } }));
      const db = join(dir, "users.db");
      const w = await SqliteUsersDb.open(db, legacy.DEMO_DEVICE_SALT);
      await w.put({ username: "alice", psk });
      await w.close();
      for (const [users, workers] of [[json, "2"], [db, "2"], [db, "1"]] as const) {
        chmodSync(users, 0o644);
        // In a process group of its own, so that the supervisor and its workers end together.
        const child = spawn(BIN[runtime], [SERVER_CLI[runtime], "--port", "0", "--workers", workers, "--protocols", "v2", "--log-level", "warn", "--users", users], { stdio: ["ignore", "pipe", "pipe"], detached: true });
        const log = collectStderr(child);
        const closed = new Promise<void>((r) => child.once("close", () => r()));
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        try {
          // Every warning comes before the listening line (the supervisor's after its workers'); bounded.
          assert.ok(await within(20_000, () => /listening on/.test(out)), `${out}\n${log.text()}`);
        } finally {
          try {
            process.kill(-child.pid!, "SIGKILL");
          } catch {
            // the group has already gone
          }
          await closed;
        }
        const warnings = log.text().split("\n").filter((l) => /open to other local users/.test(l));
        assert.equal(warnings.length, 1, `--workers ${workers}: ${log.text()}`);
        assert.match(warnings[0]!, new RegExp(`${users.split("/").pop()!.replace(".", "\\.")} \\(0644\\)`));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("a PostgreSQL URL with a password draws a warning that names PGPASSWORD and not the password", { skip: !onBun && "spawned from the Bun run" }, async () => {
  // Port 1 on loopback: the connection is refused at once, after the warning.
  const r = await runServer("bun", ["--users", "postgres://nstp:s3cret@127.0.0.1:1/nstp"]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /WARN +the PostgreSQL URL carries a password.*PGPASSWORD/);
  assert.doesNotMatch(r.stderr, /s3cret/);
});
