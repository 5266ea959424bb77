// Protocol v2 through the server library, on every transport of the runtime running the test: an
// independent peer, the client library both ways, busy refusal, --legacy off, and backpressure.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Transport, legacy } from "@nstp/core";
import { detectRuntime, nodeTransport, transportByName } from "@nstp/core/node";
import { CryptoPool } from "@nstp/core/pool";
import { nobleBackend } from "@nstp/core/crypto/noble";
import { connect } from "@nstp/client";
import { type MessageHandler, type RunningServer, StaticKeyStore, referenceHandler, startServer } from "@nstp/server";
import { referenceHandshake, referencePsk, v2Handshake } from "@nstp/testkit";

const deviceSalt = legacy.DEMO_DEVICE_SALT;
const psk = referencePsk("userpassword", Buffer.from(deviceSalt), "alice");
const keys = () => new StaticKeyStore(new Map([["alice", new Uint8Array(psk)]]));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

const transports: Transport[] = [nodeTransport];
if (detectRuntime() === "bun") transports.unshift(await transportByName("bun"));

/** Replies like the reference; "push N [SIZE]" also sends N unasked messages; "quiet" gets no reply. */
const handler: MessageHandler = async (message, session) => {
  const m = text(message);
  if (m.startsWith("push ")) {
    const [n, size] = m.slice(5).split(" ").map(Number) as [number, number | undefined];
    for (let i = 0; i < n; i++) await session.send(`pushed ${i}`.padEnd(size ?? 0, "."));
    return `pushed ${n}`;
  }
  if (m === "quiet") return undefined;
  return referenceHandler(message, session);
};

for (const transport of transports) {
  describe(`v2 server over ${transport.name} transport (${detectRuntime()})`, () => {
    let server: RunningServer;
    before(async () => (server = await startServer({ keys: keys(), port: 0, transport, handler, limits: { handshakeTimeoutMs: 1000 } })));
    after(() => server.close());

    test("an independent peer: pipelined echo, 200 KiB included, then a clean close", async () => {
      const peer = await v2Handshake(server.port, { username: "alice", psk });
      const big = Buffer.alloc(200 * 1024, 0x5a);
      const sent = [Buffer.from("a"), big, Buffer.from("c")];
      peer.send(sent);
      for (const m of sent) assert.deepEqual(await peer.receive(), Buffer.concat([Buffer.from("Server received: "), m]));
      peer.close();
      await assert.rejects(peer.receive(), /server closed the session/);
    });

    test("a wrong password and an unknown user both see a close and nothing else", async () => {
      for (const [username, key] of [["alice", Buffer.alloc(32, 1)], ["mallory", psk]] as const) {
        await assert.rejects(v2Handshake(server.port, { username, psk: key }), /connection closed after 0\/2 bytes/, username);
      }
    });

    for (const protocol of ["v2", "v3"]) test(`the client library over ${protocol}: requests, pushes the client did not ask for, and no-reply messages`, async () => {
      const session = await connect({ port: server.port, username: "alice", password: "userpassword", deviceSalt, transport, protocol });
      assert.equal(session.protocol, protocol);
      const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => session.request(`m${i}`)));
      assert.deepEqual(replies.map(text), Array.from({ length: 100 }, (_, i) => `Server received: m${i}`));
      await session.send("quiet");
      // "push 3": the three pushes arrive before the reply, so the reply answers the request and the
      // pushes go to messages().
      const it = session.messages();
      void session.send("push 3");
      const got: string[] = [];
      for (let i = 0; i < 4; i++) got.push(text((await it.next()).value!));
      assert.deepEqual(got, ["pushed 0", "pushed 1", "pushed 2", "pushed 3"]);
      await session.close();
      assert.equal((await it.next()).done, true);
    });

    test("a reference-protocol client is served on the same port", async () => {
      const s = await referenceHandshake(server.port, { username: "alice", psk });
      s.socket.write(s.record(0, Buffer.from("hello")));
      assert.equal((await s.readReply()).toString(), "Server received: hello");
      s.socket.destroy();
    });

    test("a slow reader slows the pushing server instead of growing its memory", async () => {
      const session = await connect({
        port: server.port,
        username: "alice",
        password: "userpassword",
        deviceSalt,
        transport,
        limits: { maxBuffered: 16 },
      });
      const total = 10_000;
      // 40 MB of pushes: with nothing read, the kernel's buffers and our bounded queues fill, and the
      // server's send() stops resolving long before all of them are out.
      await session.send(`push ${total} 4096`);
      const it = session.messages();
      await new Promise((r) => setTimeout(r, 300));
      const pushedBeforeReading = server.stats.messagesOut;
      for (let n = 0; n < total; n++) assert.equal(text((await it.next()).value!), `pushed ${n}`.padEnd(4096, "."));
      assert.equal(text((await it.next()).value!), `pushed ${total}`);
      assert.ok(pushedBeforeReading < total, `server pushed ${pushedBeforeReading} of ${total} with nobody reading`);
      await session.close();
    });
  });
}

describe("v2 on the noble backend, AES-GCM in the worker pool", () => {
  test("both ends seal and open in the pool, as the measured placement says; replies intact and in order", async () => {
    const pool = new CryptoPool({ backend: nobleBackend, threads: 2 });
    const server = await startServer({ keys: keys(), port: 0, crypto: nobleBackend, pool });
    try {
      const session = await connect({ port: server.port, username: "alice", psk: new Uint8Array(psk), crypto: nobleBackend, pool });
      // The first frame is the key confirmation, which the server opens inline (docs/PROTOCOL.md §v2).
      await session.request("confirm");
      const before = pool.completed;
      const sent = Array.from({ length: 40 }, (_, i) => Buffer.alloc(3000 + i, i));
      const replies = await Promise.all(sent.map((m) => session.request(m)));
      for (const [i, m] of sent.entries()) assert.deepEqual(Buffer.from(replies[i]!), Buffer.concat([Buffer.from("Server received: "), m]), `reply ${i}`);
      assert.ok(pool.completed - before >= 4, `AEAD tasks in the pool: ${pool.completed - before}`);
      await session.close();
    } finally {
      await server.close();
      await pool.destroy();
    }
  });
});

describe("v2 partial-frame deadline", () => {
  test("a stalled frame is cut off; frames dribbled in halves for longer than the deadline are not", async () => {
    const server = await startServer({ keys: keys(), port: 0, limits: { recordTimeoutMs: 300 } });
    try {
      const steady = await v2Handshake(server.port, { username: "alice", psk });
      const frames = Array.from({ length: 8 }, (_, i) => steady.encode([Buffer.alloc(1000, i)]));
      // Every read ends mid-frame for 1.6 s, but a frame completes every 200 ms.
      for (const f of frames) {
        steady.reader.socket.write(f.subarray(0, 500));
        await new Promise((r) => setTimeout(r, 100));
        steady.reader.socket.write(f.subarray(500));
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let i = 0; i < 8; i++) assert.equal((await steady.receive()).length, "Server received: ".length + 1000);

      const stalled = await v2Handshake(server.port, { username: "alice", psk });
      stalled.reader.socket.write(stalled.encode([Buffer.alloc(1000)]).subarray(0, 500));
      const t = Date.now();
      assert.equal((await stalled.reader.closedWithin(3000)).closed, true);
      assert.ok(Date.now() - t < 2500);
      steady.destroy();
    } finally {
      await server.close();
    }
  });
});

describe("v2 admission", () => {
  test("a server at its handshake cap refuses v2 and reference clients as busy", async () => {
    const server = await startServer({ keys: keys(), port: 0, maxHandshaking: 0 });
    try {
      for (const protocol of ["v2", "legacy"] as const) {
        await assert.rejects(connect({ port: server.port, username: "alice", password: "userpassword", deviceSalt, protocol }), { code: "ERR_BUSY" }, protocol);
      }
    } finally {
      await server.close();
    }
  });

  test("legacy: false refuses the reference protocol and serves v2", async () => {
    const server = await startServer({ keys: keys(), port: 0, legacy: false });
    try {
      await assert.rejects(connect({ port: server.port, username: "alice", password: "userpassword", deviceSalt, protocol: "legacy" }), (e: Error & { code?: string }) => e.code !== undefined);
      const s = await connect({ port: server.port, username: "alice", password: "userpassword", deviceSalt });
      assert.equal(text(await s.request("x")), "Server received: x");
      await s.close();
    } finally {
      await server.close();
    }
  });
});
