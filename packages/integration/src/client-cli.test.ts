// The CLIs as a user runs them, across runtimes: Bun and Node servers, Bun and Node clients, and the
// reference-layout peers on both sides. Runs under Bun only (it spawns both runtimes itself).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { legacy } from "@nstp/core";
import { detectRuntime } from "@nstp/core/node";
import { BIN, byteByByte, CLIENT_CLI, referenceHandshake, referencePsk, referenceServer, type Runtime, startServerProcess as spawnServer, v2Handshake, v3Handshake } from "@nstp/testkit";

const FIVE = Array.from({ length: 5 }, (_, i) => `Server received: Hello server! Message #${i}`);
const onBun = detectRuntime() === "bun";

function run(runtime: Runtime, args: string[], timeoutMs = 20_000, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(BIN[runtime], [CLIENT_CLI[runtime], ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => (clearTimeout(timer), res({ code, stdout, stderr })));
  });
}

const startServerProcess = (runtime: Runtime, extra: string[] = []) => spawnServer(runtime, ["--port", "0", "--log-level", "warn", ...extra]);

for (const serverRuntime of ["bun", "node"] as const) {
  describe(`${serverRuntime} server process`, { skip: !onBun && "spawned from the Bun run" }, () => {
    let srv: { port: number; child: ChildProcess };
    before(async () => (srv = await startServerProcess(serverRuntime)));
    after(() => srv.child.kill("SIGTERM"));

    for (const clientRuntime of ["bun", "node"] as const) {
      test(`${clientRuntime} client CLI --legacy prints the five replies`, async () => {
        const r = await run(clientRuntime, ["--port", String(srv.port), "--legacy"]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout.trim().split("\n"), FIVE);
      });
      test(`${clientRuntime} client CLI (v3, the default) prints the five replies`, async () => {
        const r = await run(clientRuntime, ["--port", String(srv.port)]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout.trim().split("\n"), FIVE);
      });
      test(`${clientRuntime} client CLI --protocol v2 prints the five replies`, async () => {
        const r = await run(clientRuntime, ["--port", String(srv.port), "--protocol", "v2"]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout.trim().split("\n"), FIVE);
      });
    }

    for (const splitPreamble of [false, true]) {
      test(`an independent v2 peer: handshake${splitPreamble ? " (preamble in its own write)" : ""} and a pipelined echo with a 200 KiB message`, async () => {
        const psk = referencePsk(legacy.DEMO_PASSWORD, Buffer.from(legacy.DEMO_DEVICE_SALT), legacy.DEMO_USERNAME);
        const peer = await v2Handshake(srv.port, { username: "alice", psk, splitPreamble });
        const big = Buffer.alloc(200 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
        const sent = [Buffer.from("one"), Buffer.from("two"), big, Buffer.alloc(0), Buffer.from("five")];
        peer.send(sent);
        for (const m of sent) assert.deepEqual(await peer.receive(), Buffer.concat([Buffer.from("Server received: "), m]));
        peer.close();
        // The server answers a close with its own close chunk, then ends the connection.
        await assert.rejects(peer.receive(), /server closed the session/);
        assert.equal(peer.closedByServer, true);
        assert.equal((await peer.reader.closedWithin(2000)).closed, true);
      });
    }

    test("an independent v3 peer (SPAKE2+ from docs/PROTOCOL.md): handshake, pipelined echo with 200 KiB, clean close", async () => {
      const peer = await v3Handshake(srv.port, { username: "alice", password: legacy.DEMO_PASSWORD, deviceSalt: Buffer.from(legacy.DEMO_DEVICE_SALT) });
      const sent = [Buffer.from("one"), Buffer.alloc(200 * 1024, 0x33), Buffer.alloc(0), Buffer.from("four")];
      peer.send(sent);
      for (const m of sent) assert.deepEqual(await peer.receive(), Buffer.concat([Buffer.from("Server received: "), m]));
      peer.close();
      await assert.rejects(peer.receive(), /server closed the session/);
      assert.equal(peer.closedByServer, true);
    });

    test("an independent v3 peer with a wrong password or an unknown user fails at confirmV; the server stays silent", async () => {
      for (const username of ["alice", "mallory"]) {
        const opts = { username, password: username === "alice" ? "wrong" : legacy.DEMO_PASSWORD, deviceSalt: Buffer.from(legacy.DEMO_DEVICE_SALT) };
        await assert.rejects(v3Handshake(srv.port, opts), /confirmV did not verify/, username);
      }
    });

    test("client CLI --protocol v3: wrong password exits 3 with one line", async () => {
      const r = await run("bun", ["--port", String(srv.port), "--protocol", "v3", "--user", "alice", "--password", "wrong"]);
      assert.equal(r.code, 3);
      assert.match(r.stderr.trim().split("\n").at(-1)!, /^client: ERR_AUTH: /);
    });

    test("client CLI: wrong password exits 3 with one line", async () => {
      const r = await run("bun", ["--port", String(srv.port), "--user", "alice", "--password", "wrong"]);
      assert.equal(r.code, 3);
      assert.match(r.stderr.trim().split("\n").at(-1)!, /^client: ERR_AUTH: /);
    });

    test("client CLI password sources: --password-file (first line), NSTP_PASSWORD, and --password with a warning", async () => {
      const dir = mkdtempSync(join(tmpdir(), "nstp-pw-"));
      try {
        const file = join(dir, "password");
        writeFileSync(file, `${legacy.DEMO_PASSWORD}\nsecond line ignored\n`, { mode: 0o600 });
        const warning = /--password is visible to other local users/;
        for (const clientRuntime of ["bun", "node"] as const) {
          const viaFile = await run(clientRuntime, ["--port", String(srv.port), "--user", "alice", "--password-file", file]);
          assert.equal(viaFile.code, 0, viaFile.stderr);
          assert.deepEqual(viaFile.stdout.trim().split("\n"), FIVE);
          assert.doesNotMatch(viaFile.stderr, warning);
          const viaEnv = await run(clientRuntime, ["--port", String(srv.port), "--user", "alice"], 20_000, { NSTP_PASSWORD: legacy.DEMO_PASSWORD });
          assert.equal(viaEnv.code, 0, viaEnv.stderr);
          assert.doesNotMatch(viaEnv.stderr, warning);
          const viaFlag = await run(clientRuntime, ["--port", String(srv.port), "--user", "alice", "--password", legacy.DEMO_PASSWORD]);
          assert.equal(viaFlag.code, 0, viaFlag.stderr);
          assert.equal(viaFlag.stderr.split("\n").filter((l) => warning.test(l)).length, 1, viaFlag.stderr);
        }
        writeFileSync(file, "\n");
        const empty = await run("bun", ["--port", String(srv.port), "--user", "alice", "--password-file", file]);
        assert.equal(empty.code, 1);
        assert.match(empty.stderr.trim().split("\n").at(-1)!, /^client: ERR_INVALID_ARG: --password-file .*empty/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    for (const mode of ["spaced", "one write", "byte by byte"] as const) {
      test(`a reference-layout peer gets five replies (${mode})`, async () => {
        const psk = referencePsk(legacy.DEMO_PASSWORD, Buffer.from(legacy.DEMO_DEVICE_SALT), legacy.DEMO_USERNAME);
        const s = await referenceHandshake(srv.port, { username: "alice", psk, write: mode === "byte by byte" ? byteByByte : undefined });
        const records = Array.from({ length: 5 }, (_, i) => s.record(i, Buffer.from(`Hello server! Message #${i}`)));
        const got: string[] = [];
        if (mode === "one write") s.socket.write(Buffer.concat(records));
        for (const r of records) {
          if (mode === "spaced") s.socket.write(r);
          if (mode === "byte by byte") await byteByByte(s.socket, r);
          got.push((await s.readReply()).toString());
        }
        s.socket.destroy();
        assert.deepEqual(got, FIVE);
      });
    }
  });
}

describe("server process with --legacy off", { skip: !onBun && "spawned from the Bun run" }, () => {
  let srv: { port: number; child: ChildProcess };
  before(async () => (srv = await startServerProcess("bun", ["--legacy", "off"])));
  after(() => srv.child.kill("SIGTERM"));
  test("refuses the reference protocol and still serves v2", async () => {
    const refused = await run("bun", ["--port", String(srv.port), "--legacy"]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr.trim().split("\n").at(-1)!, /^client: ERR_/);
    const ok = await run("bun", ["--port", String(srv.port), "--protocol", "v2"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(ok.stdout.trim().split("\n"), FIVE);
  });
});

describe("server process with --protocols legacy,v2", { skip: !onBun && "spawned from the Bun run" }, () => {
  let srv: { port: number; child: ChildProcess };
  before(async () => (srv = await startServerProcess("node", ["--protocols", "legacy,v2"])));
  after(() => srv.child.kill("SIGTERM"));
  test("refuses v3 (a close after the client's share reads as ERR_AUTH) and serves the versions listed", async () => {
    const refused = await run("bun", ["--port", String(srv.port), "--protocol", "v3"]);
    assert.equal(refused.code, 3, refused.stderr);
    for (const protocol of ["v2", "legacy"]) {
      const ok = await run("bun", ["--port", String(srv.port), "--protocol", protocol]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(ok.stdout.trim().split("\n"), FIVE);
    }
  });
});

describe("client CLIs against a reference-style server", { skip: !onBun && "spawned from the Bun run" }, () => {
  let ref: { port: number; close(): void };
  before(async () => (ref = await referenceServer({ deviceSalt: Buffer.from(legacy.DEMO_DEVICE_SALT), users: { alice: "userpassword" } })));
  after(() => ref.close());
  for (const clientRuntime of ["bun", "node"] as const) {
    test(`${clientRuntime} client CLI --legacy completes`, async () => {
      const r = await run(clientRuntime, ["--port", String(ref.port), "--legacy"]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split("\n"), FIVE);
    });
  }
  test("connection refused exits 1 with one line", async () => {
    const r = await run("node", ["--port", "1", "--legacy"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim().split("\n").at(-1)!, /^client: ERR_CONNECT: /);
  });
});
