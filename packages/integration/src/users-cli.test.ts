// The users CLI, the server and the client together: `bun run users` writes the v3 verifier beside
// the PSK and a random device salt; the server serves bob v2 and v3; after `migrate --v3-only`, v3 only.
// (The records themselves are tested beside their code, packages/server/src/users-records.test.ts.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type NstpError, fromHex, legacy, toHex, utf8, v3 } from "@nstp/core";
import { detectRuntime } from "@nstp/core/node";
import { nativeBackend } from "@nstp/core/crypto/native";
import { connect } from "@nstp/client";
import { DEVICE_SALT_SIZE } from "@nstp/server";
import { type ServerProcess, runUsersCli, startServerProcess } from "@nstp/testkit";

const onBun = detectRuntime() === "bun";

test("users CLI on both runtimes, JSON file: a random salt recorded, PSK and verifier written, migrate --v3-only, and the server then serves bob v3 only", { skip: !onBun && "spawned from the Bun run", timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "nstp-v3users-"));
  const file = join(dir, "users.json");
  let server: ServerProcess | undefined;
  try {
    await runUsersCli("bun", ["add", "bob", "--file", file], "bobs password\n");
    await runUsersCli("node", ["add", "carol", "--file", file], "carols password\n");
    const doc = JSON.parse(readFileSync(file, "utf8"));
    const deviceSalt = fromHex(doc.deviceSalt);
    assert.equal(deviceSalt.length, DEVICE_SALT_SIZE, "a random salt of the recorded size");
    assert.notEqual(doc.deviceSalt, toHex(legacy.DEMO_DEVICE_SALT));
    const bobPsk = await legacy.derivePsk(nativeBackend, { username: "bob", password: "bobs password", deviceSalt });
    const carolPsk = await legacy.derivePsk(nativeBackend, { username: "carol", password: "carols password", deviceSalt });
    for (const [name, k] of [["bob", bobPsk], ["carol", carolPsk]] as const) {
      const v = v3.verifierToJson(v3.verifierFromPsk(nativeBackend, k, deviceSalt, utf8(name)));
      assert.deepEqual([doc.users[name].key, doc.users[name].w0, doc.users[name].L], [toHex(k), v.w0, v.L], name);
    }
    await assert.rejects(runUsersCli("node", ["add", "dave", "--file", file, "--device-salt", "0102"], "x\n"), /another device salt/);

    server = await startServerProcess("bun", ["--port", "0", "--users", file, "--device-salt", doc.deviceSalt, "--log-level", "warn", "--summary-interval", "0", "--shutdown-grace", "1"]);
    const login = (psk: Uint8Array, protocol: "v2" | "v3" = "v2") => connect({ port: server!.port, username: "bob", psk, deviceSalt, protocol }).then(async (s) => (await s.close(), "ok"), (e: NstpError) => e.code);
    assert.equal(await login(bobPsk), "ok", "v2 with the PSK record");
    assert.equal(await login(bobPsk, "v3"), "ok", "v3 with the verifier beside it");

    await runUsersCli("node", ["migrate", "--v3-only", "--file", file]);
    const migrated = JSON.parse(readFileSync(file, "utf8"));
    assert.equal(migrated.deviceSalt, doc.deviceSalt);
    for (const name of ["bob", "carol"]) {
      assert.equal(migrated.users[name].key, undefined, `${name}'s PSK is gone`);
      assert.deepEqual([migrated.users[name].w0, migrated.users[name].L], [doc.users[name].w0, doc.users[name].L], `${name}'s verifier is kept`);
    }
    server.child.kill("SIGHUP");
    const wrong = await legacy.derivePsk(nativeBackend, { username: "bob", password: "not bobs", deviceSalt });
    let code = "";
    for (let i = 0; i < 50 && code !== "ERR_AUTH"; i++) {
      code = await login(bobPsk);
      if (code !== "ERR_AUTH") await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(code, "ERR_AUTH", "after migrate --v3-only, v2 with the right password fails...");
    assert.equal(await login(wrong), "ERR_AUTH", "...exactly as a wrong password does");
    assert.equal(await login(bobPsk, "v3"), "ok", "v3 with the verifier-only record");
    assert.equal(await login(wrong, "v3"), "ERR_AUTH", "and a wrong password on v3 fails");
  } finally {
    server?.child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
});
