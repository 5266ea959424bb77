// Handshakes strangers cannot exhaust: busy refusal the client reports as ERR_BUSY, eviction at the
// cap on connections in the handshake, the per-source guessing budget, derivations in the pool for
// many users at once, and SIGHUP reload of the users file (a removed user's sessions end).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NstpError, legacy } from "@nstp/core";
import { type Transport, type Wire, defaultTransport, detectRuntime, transportByName } from "@nstp/core/node";
import { CryptoPool } from "@nstp/core/pool";
import { nativeBackend } from "@nstp/core/crypto/native";
import { connect } from "@nstp/client";
import { PasswordKeyStore, StaticKeyStore, USERS_FILE_FORMAT, startServer, userRecord } from "@nstp/server";
import { dial, referencePsk, startServerProcess } from "@nstp/testkit";

const deviceSalt = legacy.DEMO_DEVICE_SALT;
const alicePsk = new Uint8Array(referencePsk("userpassword", Buffer.from(deviceSalt), "alice"));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof NstpError, String(e));
    return e.code;
  }
  return "no error";
}

test("16 users whose keys the server derives, at once: all served, one derivation each, in the pool", async () => {
  const pool = new CryptoPool({ threads: 2 });
  const keys = new PasswordKeyStore({ deviceSalt, crypto: nativeBackend, pool, lookup: (u) => `pw-${u}` });
  const server = await startServer({ keys, port: 0 });
  try {
    const users = Array.from({ length: 16 }, (_, i) => `user${i}`);
    const psks = await Promise.all(users.map((u) => legacy.derivePsk(nativeBackend, { username: u, password: `pw-${u}`, deviceSalt })));
    const before = pool.completed;
    const replies = await Promise.all(users.map(async (u, i) => {
      const s = await connect({ port: server.port, username: u, psk: psks[i]! });
      const r = new TextDecoder().decode(await s.request("hi"));
      await s.close();
      return r;
    }));
    assert.ok(replies.every((r) => r === "Server received: hi"));
    assert.equal(keys.derivations, 16);
    assert.equal(pool.completed - before, 16, "every derivation ran in the pool");
  } finally {
    await server.close();
    await pool.destroy();
  }
});

test("a full derivation queue refuses the handshake before the nonce: the client reports ERR_BUSY", async () => {
  const pool = new CryptoPool({ threads: 1, maxQueue: 1 });
  await pool.pbkdf2(new Uint8Array(1), new Uint8Array(1), 1, 32);
  const keys = new PasswordKeyStore({ deviceSalt, crypto: nativeBackend, pool, lookup: (u) => `pw-${u}` });
  const server = await startServer({ keys, port: 0 });
  try {
    // Fill the thread and the queue with two slow derivations.
    const psk = await legacy.derivePsk(nativeBackend, { username: "newcomer", password: "pw-newcomer", deviceSalt });
    const hog = [pool.pbkdf2(new Uint8Array(1), new Uint8Array(1), 3_000_000, 32)];
    await new Promise((r) => setTimeout(r, 20));
    hog.push(pool.pbkdf2(new Uint8Array(1), new Uint8Array(1), 10, 32));
    assert.ok(pool.saturated);
    assert.equal(await codeOf(connect({ port: server.port, username: "newcomer", psk })), "ERR_BUSY");
    await Promise.all(hog);
    const s = await connect({ port: server.port, username: "newcomer", psk });
    await s.close();
  } finally {
    await server.close();
    await pool.destroy();
  }
});

test("at the cap on connections in the handshake a newcomer is served and the oldest stalled one closed; a guessing source is limited", async () => {
  const server = await startServer({
    keys: new StaticKeyStore(new Map([["alice", alicePsk]])),
    port: 0,
    maxHandshaking: 3,
    admission: { stallMs: 200 },
    failureLimit: { burst: 2, refillPerSecond: 0.001 },
    limits: { handshakeTimeoutMs: 5000 },
  });
  try {
    const idle = [];
    for (let i = 0; i < 3; i++) {
      idle.push(await dial(server.port));
      await new Promise((r) => setTimeout(r, 20));
    }
    // What each is sent before its close: an evicted one, whose version is not even known, the busy signal.
    const received = idle.map(() => [] as Buffer[]);
    idle.forEach((s, i) => s.on("data", (d: Buffer) => received[i]!.push(d)));
    const closed = idle.map((s) => new Promise<boolean>((r) => {
      s.on("close", () => r(true));
      setTimeout(() => r(false), 3000);
    }));
    // Past the stall threshold: the silent ones are stalled, and may be closed for a newcomer.
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(server.stats.handshaking, 3);
    const session = await connect({ port: server.port, username: "alice", psk: alicePsk });
    assert.equal(new TextDecoder().decode(await session.request("hi")), "Server received: hi");
    await session.close();
    assert.equal(await closed[0], true, "the oldest stalled handshake was closed to make room");
    assert.deepEqual(Buffer.concat(received[0]!), Buffer.from([0, 0]), "with the busy signal");
    idle.forEach((s) => s.destroy());
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 2; i++) assert.equal(await codeOf(connect({ port: server.port, username: "alice", psk: new Uint8Array(32) })), "ERR_AUTH");
    // 127.0.0.1 has used its burst of guesses: even the right key is refused until tokens come back.
    assert.equal(await codeOf(connect({ port: server.port, username: "alice", psk: alicePsk })), "ERR_BUSY");
    assert.ok(server.stats.refused >= 1);
  } finally {
    await server.close();
  }
});

test("SIGHUP reloads the users file: kept users' sessions survive, removed users' sessions end", { skip: detectRuntime() !== "bun" && "spawned from the Bun run" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "nstp-users-"));
  const file = join(dir, "users.json");
  const bob = await legacy.derivePsk(nativeBackend, { username: "bob", password: "b", deviceSalt });
  const carol = await legacy.derivePsk(nativeBackend, { username: "carol", password: "c", deviceSalt });
  const write = (users: Record<string, Uint8Array>) => writeFileSync(file, JSON.stringify({
    format: USERS_FILE_FORMAT,
    users: Object.fromEntries(Object.entries(users).map(([n, k]) => [n, userRecord(deviceSalt, n, k)])),
  }), { mode: 0o600 });
  write({ bob });
  for (const runtime of ["bun", "node"] as const) {
    const { child, port } = await startServerProcess(runtime, ["--port", "0", "--users", file, "--log-level", "warn"]);
    try {
      assert.equal(await codeOf(connect({ port, username: "alice", psk: alicePsk })), "ERR_AUTH", "no demo user when a file is given");
      const session = await connect({ port, username: "bob", psk: bob });
      assert.equal(await codeOf(connect({ port, username: "carol", psk: carol })), "ERR_AUTH");
      write({ bob, carol });
      child.kill("SIGHUP");
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        await new Promise((r) => setTimeout(r, 50));
        ok = (await codeOf(connect({ port, username: "carol", psk: carol }).then((s) => s.close()))) === "no error";
      }
      assert.ok(ok, `${runtime}: carol admitted after SIGHUP`);
      assert.equal(new TextDecoder().decode(await session.request("still here")), "Server received: still here", "bob's session survived");
      write({ carol });
      child.kill("SIGHUP");
      let ended = false;
      for (let i = 0; i < 50 && !ended; i++) {
        await new Promise((r) => setTimeout(r, 50));
        ended = session.closed;
      }
      assert.ok(ended, `${runtime}: bob's session ended when bob was removed`);
      assert.equal(await codeOf(session.request("gone")), "ERR_CLOSED");
    } finally {
      child.kill("SIGTERM");
      write({ bob });
    }
  }
});

test("busy is busy: at maxConnections a newcomer gets the busy signal (ERR_BUSY), not a bare close read as a wrong password", async () => {
  const transports = detectRuntime() === "bun" ? (["bun", "node"] as const) : (["node"] as const);
  for (const name of transports) {
    const transport = await transportByName(name);
    const server = await startServer({ keys: new StaticKeyStore(new Map([["alice", alicePsk]])), port: 0, transport, maxConnections: 1 });
    try {
      const first = await connect({ port: server.port, username: "alice", psk: alicePsk, transport });
      assert.equal(await codeOf(connect({ port: server.port, username: "alice", psk: alicePsk, transport })), "ERR_BUSY", `${name}: v2`);
      assert.equal(await codeOf(connect({ port: server.port, username: "alice", psk: alicePsk, transport, protocol: "legacy" })), "ERR_BUSY", `${name}: legacy`);
      await first.close();
      await new Promise((r) => setTimeout(r, 50));
      const again = await connect({ port: server.port, username: "alice", psk: alicePsk, transport });
      await again.close();
    } finally {
      await server.close();
    }
  }
});

test("at the cap with only progressing handshakes, a newcomer is refused busy (ERR_BUSY) and none of them is closed", async () => {
  // The stall threshold is longer than the test: the three held handshakes, each of which took a step
  // (a reference hello, answered with the session nonce), count as progressing.
  const server = await startServer({ keys: new StaticKeyStore(new Map([["alice", alicePsk]])), port: 0, maxHandshaking: 3, admission: { stallMs: 60_000 } });
  try {
    const held = await Promise.all(Array.from({ length: 3 }, () => dial(server.port)));
    for (const s of held) s.write(legacy.encodeClientHello(new TextEncoder().encode("alice"), new Uint8Array(16)));
    let closes = 0;
    held.forEach((s) => s.on("close", () => void closes++));
    for (let i = 0; i < 50 && server.stats.handshaking < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.stats.handshaking, 3);
    // Past the nursery's two turns, the held ones can be judged: they are young, so the newcomer waits.
    await new Promise((r) => setTimeout(r, 50));
    const refusedBefore = server.stats.refused;
    for (const protocol of ["v2", "v3", "legacy"] as const) {
      assert.equal(await codeOf(connect({ port: server.port, username: "alice", psk: alicePsk, protocol })), "ERR_BUSY", protocol);
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closes, 0, "no handshake in progress was closed for the newcomers");
    assert.equal(server.stats.handshaking, 3);
    assert.equal(server.stats.refused - refusedBefore, 3);
    held.forEach((s) => s.destroy());
  } finally {
    await server.close();
  }
});

test("a handshake the server has not answered by its deadline gets the busy signal (ERR_BUSY, retried), v2 and v3 alike", async () => {
  // The key lookup never answers (a store stalled under a reconnect storm): the deadline passes
  // before message 2. The client's guess was not judged, so a bare close (read as a wrong password,
  // ERR_AUTH, never retried) would leave the device out for good. (The reference protocol has sent
  // its session nonce by then and has no busy signal: its close stays silent.)
  const keys = { lookup: () => new Promise<undefined>(() => {}) };
  const server = await startServer({ keys, port: 0, limits: { handshakeTimeoutMs: 300 } });
  try {
    for (const protocol of ["v2", "v3"] as const) {
      assert.equal(await codeOf(connect({ port: server.port, username: "alice", psk: alicePsk, protocol })), "ERR_BUSY", protocol);
    }
  } finally {
    await server.close();
  }
});

/**
 * A transport whose first flight never leaves: a device on a loaded host whose connect completed in
 * the kernel (so the server accepted it) while its own event loop had not yet sent a byte.
 */
async function silentTransport(): Promise<Transport> {
  const base = await defaultTransport();
  return {
    name: `${base.name}-silent`,
    async dial(opts, attach) {
      const wire = await base.dial(opts, attach);
      const held: Wire = {
        write() {},
        end: () => wire.end(),
        destroy: () => wire.destroy(),
        pause: () => wire.pause(),
        resume: () => wire.resume(),
        get bufferedAmount() {
          return wire.bufferedAmount;
        },
        get bytesSent() {
          return wire.bytesSent;
        },
        remoteAddress: wire.remoteAddress,
      };
      return held;
    },
    listen: (opts, accept) => base.listen(opts, accept),
  };
}

test("a handshake evicted before the server read a byte of it gets the busy signal (ERR_BUSY, retried), not a bare close read as a wrong password", async () => {
  // The reconnect storm's devices that gave up: at the cap, a connection with nothing read 25 ms
  // after its accept (silentMs) is stalled and evicted for a newcomer. Before a version is chosen the
  // dispatcher offered no busy signal, so the eviction was a bare close, which a client that had sent
  // its first flight (late, from its loaded host) reads as a wrong password (ERR_AUTH, never retried).
  const server = await startServer({ keys: new StaticKeyStore(new Map([["alice", alicePsk]])), port: 0, maxHandshaking: 1 });
  const newcomers: import("node:net").Socket[] = [];
  try {
    const transport = await silentTransport();
    for (const protocol of ["v2", "v3", "legacy"] as const) {
      const late = codeOf(connect({ port: server.port, username: "alice", psk: alicePsk, protocol, transport }));
      for (let i = 0; i < 100 && server.stats.handshaking < 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(server.stats.handshaking, 1, "the silent device is in the handshake");
      // Out of the nursery and silent past silentMs: the next arrival evicts it.
      await new Promise((r) => setTimeout(r, 100));
      const evictionsBefore = server.stats.defence!.admission.evictions;
      const newcomer = await dial(server.port);
      newcomer.on("error", () => {});
      newcomers.push(newcomer);
      assert.equal(await late, "ERR_BUSY", protocol);
      assert.equal(server.stats.defence!.admission.evictions - evictionsBefore, 1, `${protocol}: evicted, not refused`);
      newcomer.destroy();
      for (let i = 0; i < 100 && server.stats.handshaking > 0; i++) await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    for (const s of newcomers) s.destroy();
    await server.close();
  }
});

test("CLI: --handshake-silent-ms sets how long a silent connection holds its slot; an out-of-range value is refused", { skip: detectRuntime() !== "bun" && "spawned from the Bun run" }, async () => {
  for (const runtime of ["bun", "node"] as const) {
    // A minute of silence allowed: a connection that sends nothing holds the one slot, and a newcomer
    // is refused busy (with the default, 25 ms, it would be evicted for the newcomer).
    const { child, port } = await startServerProcess(runtime, ["--port", "0", "--max-handshaking", "1", "--handshake-silent-ms", "60000", "--log-level", "warn", "--summary-interval", "0"]);
    const silent = await dial(port);
    silent.on("error", () => {});
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await codeOf(connect({ port, username: "alice", psk: alicePsk })), "ERR_BUSY", `${runtime}: the silent one kept its slot`);
      silent.destroy();
      let served = false;
      for (let i = 0; i < 50 && !served; i++) {
        await new Promise((r) => setTimeout(r, 50));
        served = (await codeOf(connect({ port, username: "alice", psk: alicePsk }).then((s) => s.close()))) === "no error";
      }
      assert.ok(served, `${runtime}: served once the slot is free`);
    } finally {
      silent.destroy();
      child.kill("SIGTERM");
    }
    await assert.rejects(startServerProcess(runtime, ["--port", "0", "--handshake-silent-ms", "-1"]), /exited with 1/, `${runtime}: --handshake-silent-ms -1 refused`);
  }
});

test("CLI: --curve-steps-per-source, --curve-steps-unproven, --lookups-per-source and --lookups-unproven are taken (a v3 server serves with them at 1); an out-of-range value is refused", { skip: detectRuntime() !== "bun" && "spawned from the Bun run" }, async () => {
  for (const runtime of ["bun", "node"] as const) {
    const caps = ["--curve-steps-per-source", "1", "--curve-steps-unproven", "1", "--lookups-per-source", "1", "--lookups-unproven", "1"];
    const { child, port } = await startServerProcess(runtime, ["--port", "0", "--protocols", "v2,v3", ...caps, "--log-level", "warn", "--summary-interval", "0"]);
    try {
      const s = await connect({ port, username: "alice", psk: alicePsk, protocol: "v3", deviceSalt });
      await s.close();
    } finally {
      child.kill("SIGTERM");
    }
    for (const flag of ["--curve-steps-per-source", "--curve-steps-unproven", "--lookups-per-source", "--lookups-unproven"]) {
      await assert.rejects(startServerProcess(runtime, ["--port", "0", flag, "0"]), /exited with 1/, `${runtime}: ${flag} 0 refused`);
    }
  }
});
