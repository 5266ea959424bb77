// The server CLI's start-up checks, as a user meets them, on both builds: the demo user on a host
// others can reach is refused; a PostgreSQL password in the --users URL is warned about. Runs under Bun only (it spawns both runtimes itself). Nothing here listens beyond
// loopback: 192.0.2.1 (TEST-NET-1, RFC 5737) is assigned to no interface, so a start that gets past
// the check fails to bind instead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { detectRuntime } from "@nstp/core/node";
import { BIN, type Runtime, SERVER_CLI } from "@nstp/testkit";

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

test("a PostgreSQL URL with a password draws a warning that names PGPASSWORD and not the password", { skip: !onBun && "spawned from the Bun run" }, async () => {
  // Port 1 on loopback: the connection is refused at once, after the warning.
  const r = await runServer("bun", ["--users", "postgres://nstp:s3cret@127.0.0.1:1/nstp"]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /WARN +the PostgreSQL URL carries a password.*PGPASSWORD/);
  assert.doesNotMatch(r.stderr, /s3cret/);
});
