// The client library against a server that behaves like the Dart reference (one read = one message)
// and against misbehaving servers, on the runtime running the test.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { type CryptoBackend, NstpError, legacy } from "@nstp/core";
import { CryptoPool } from "@nstp/core/pool";
import { nativeBackend } from "@nstp/core/crypto/native";
import { referenceServer } from "@nstp/testkit";
import { clearKeyCache, connect } from "./index.ts";

const deviceSalt = Buffer.from(legacy.DEMO_DEVICE_SALT);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof NstpError, `expected NstpError, got ${e}`);
    return e.code;
  }
  return "no error";
}

/** A server that answers the hello with `reply` bytes and then closes or stalls. */
function scriptedServer(script: (socket: net.Socket) => void): Promise<{ port: number; close(): void }> {
  const server = net.createServer((s) => s.once("data", () => script(s)));
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as net.AddressInfo).port, close: () => server.close() })));
}

describe("client against a reference-style server", () => {
  let ref: { port: number; close(): void };
  before(async () => (ref = await referenceServer({ deviceSalt, users: { alice: "userpassword" } })));
  after(() => ref.close());

  test("five messages in lockstep", async () => {
    const session = await connect({ protocol: "legacy", port: ref.port, username: "alice", password: "userpassword", deviceSalt });
    const replies = await Promise.all(Array.from({ length: 5 }, (_, i) => session.request(`Hello server! Message #${i}`)));
    assert.deepEqual(replies.map((r) => new TextDecoder().decode(r)), Array.from({ length: 5 }, (_, i) => `Server received: Hello server! Message #${i}`));
    await session.close();
    assert.equal(session.closed, true);
    assert.equal(await codeOf(session.request("late")), "ERR_CLOSED");
  });

  test("wrong password is ERR_AUTH; unknown user too", async () => {
    assert.equal(await codeOf(connect({ protocol: "legacy", port: ref.port, username: "alice", password: "nope", deviceSalt })), "ERR_AUTH");
    assert.equal(await codeOf(connect({ protocol: "legacy", port: ref.port, username: "mallory", password: "x", deviceSalt })), "ERR_AUTH");
  });

  test("the derived key is cached per (user, salt, password): a reconnect runs no PBKDF2", async () => {
    clearKeyCache();
    let derivations = 0;
    const counting: CryptoBackend = { ...nativeBackend, pbkdf2Sha256: (...a) => (derivations++, nativeBackend.pbkdf2Sha256(...a)) };
    for (let i = 0; i < 3; i++) {
      const s = await connect({ protocol: "legacy", port: ref.port, username: "alice", password: "userpassword", deviceSalt, crypto: counting });
      await s.request("x");
      await s.close();
    }
    assert.equal(derivations, 1);
  });

  test("given a pool, the client's PBKDF2 runs in it, not on the event loop", async () => {
    clearKeyCache();
    const pool = new CryptoPool({ threads: 1 });
    try {
      const s = await connect({ protocol: "legacy", port: ref.port, username: "alice", password: "userpassword", deviceSalt, pool });
      assert.equal(new TextDecoder().decode(await s.request("x")), "Server received: x");
      await s.close();
      assert.equal(pool.completed, 1);
    } finally {
      await pool.destroy();
      clearKeyCache();
    }
  });
});

describe("client against misbehaving servers", () => {
  const opts = { protocol: "legacy" as const, username: "alice", password: "userpassword", deviceSalt, limits: { handshakeTimeoutMs: 500 } };

  test("speaking v2 to a reference-only server fails with a hint to use the reference protocol", async () => {
    // A Dart reference server answers any hello with its 8-byte session nonce, then waits for a proof.
    const dart = await scriptedServer((s) => s.write(Buffer.from("0102030405060708", "hex")));
    try {
      await assert.rejects(
        connect({ port: dart.port, username: "alice", password: "userpassword", deviceSalt, protocol: "v2" }),
        (e: NstpError) => e.code === "ERR_PROTOCOL" && /--legacy/.test(e.message),
      );
    } finally {
      dart.close();
    }
  });

  test("connection refused is ERR_CONNECT", async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    assert.equal(await codeOf(connect({ ...opts, port })), "ERR_CONNECT");
  });

  test("a server that closes before the session nonce is ERR_BUSY; one that stalls is ERR_TIMEOUT", async () => {
    const closer = await scriptedServer((s) => s.destroy());
    assert.equal(await codeOf(connect({ ...opts, port: closer.port })), "ERR_BUSY");
    closer.close();
    const staller = await scriptedServer(() => {});
    assert.equal(await codeOf(connect({ ...opts, port: staller.port })), "ERR_TIMEOUT");
    staller.close();
  });

  test("a server that sends a bad proof is ERR_AUTH", async () => {
    const liar = await scriptedServer((s) => {
      s.write(Buffer.alloc(8, 1));
      s.once("data", () => s.write(Buffer.alloc(32, 2)));
    });
    assert.equal(await codeOf(connect({ ...opts, port: liar.port })), "ERR_AUTH");
    liar.close();
  });
});
