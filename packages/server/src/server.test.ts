// The server library against a peer written from the reference's byte layout, on every transport of
// the runtime running the test (Bun: Bun.listen and node:net; Node: node:net).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Transport, legacy } from "@nstp/core";
import { detectRuntime, nodeTransport, transportByName } from "@nstp/core/node";
import { type RunningServer, StaticKeyStore, startServer } from "./index.ts";
import { byteByByte, dial, Reader, referenceHandshake, referencePsk } from "@nstp/testkit";

const deviceSalt = Buffer.from(legacy.DEMO_DEVICE_SALT);
const psk = referencePsk("userpassword", deviceSalt, "alice");
const FIVE = Array.from({ length: 5 }, (_, i) => `Hello server! Message #${i}`);

const transports: Transport[] = [nodeTransport];
if (detectRuntime() === "bun") transports.unshift(await transportByName("bun"));

for (const transport of transports) {
  describe(`server over ${transport.name} transport (${detectRuntime()})`, () => {
    let server: RunningServer;
    before(async () => {
      server = await startServer({
        keys: new StaticKeyStore(new Map([["alice", new Uint8Array(psk)]])),
        port: 0,
        transport,
        limits: { handshakeTimeoutMs: 400, recordTimeoutMs: 400 },
      });
    });
    after(() => server.close());

    async function fiveReplies(mode: "spaced" | "one write" | "byte by byte"): Promise<string[]> {
      const write = mode === "byte by byte" ? byteByByte : undefined;
      const s = await referenceHandshake(server.port, { username: "alice", psk, write });
      const records = FIVE.map((m, i) => s.record(i, Buffer.from(m)));
      const got: string[] = [];
      if (mode === "one write") {
        s.socket.write(Buffer.concat(records));
        for (let i = 0; i < 5; i++) got.push((await s.readReply()).toString());
      } else {
        for (const r of records) {
          await (write ?? (async (sock, b) => void sock.write(b)))(s.socket, r);
          got.push((await s.readReply()).toString());
        }
      }
      s.socket.destroy();
      return got;
    }

    for (const mode of ["spaced", "one write", "byte by byte"] as const) {
      test(`a reference peer gets its five replies (${mode})`, async () => {
        assert.deepEqual(await fiveReplies(mode), FIVE.map((m) => "Server received: " + m));
      });
    }

    /** Asserts the server closed the connection without sending anything more, then that it still serves. */
    async function closedSilently(reader: Reader, code: string, kind: "handshake" | "session"): Promise<void> {
      const before = { ...(kind === "handshake" ? server.stats.handshakesFailed : server.stats.sessionsFailed) };
      const { closed, extra } = await reader.closedWithin(3000);
      assert.equal(closed, true, "server closed the connection");
      assert.equal(extra, 0, "server sent nothing before closing");
      const now = kind === "handshake" ? server.stats.handshakesFailed : server.stats.sessionsFailed;
      // The close is seen by the peer right after the server records the failure.
      assert.ok((now[code] ?? 0) >= (before[code] ?? 0), `counted ${code}`);
      assert.ok((now[code] ?? 0) > 0, `counted ${code}`);
      assert.deepEqual(await fiveReplies("spaced"), FIVE.map((m) => "Server received: " + m), "a good client is still served");
    }

    async function afterNonce(username: string, proof: Buffer): Promise<{ reader: Reader; nonce: Buffer }> {
      const socket = await dial(server.port);
      const reader = new Reader(socket);
      const u = Buffer.from(username);
      socket.write(Buffer.concat([Buffer.of(u.length), u, Buffer.alloc(16, 7)]));
      const nonce = await reader.read(8);
      socket.write(proof);
      return { reader, nonce };
    }

    test("wrong password and unknown user: the same bytes (a nonce), then the same silent close", async () => {
      const wrong = await afterNonce("alice", Buffer.alloc(32, 1));
      await closedSilently(wrong.reader, "ERR_AUTH", "handshake");
      const unknown = await afterNonce("mallory", Buffer.alloc(32, 1));
      assert.equal(unknown.nonce.length, 8);
      await closedSilently(unknown.reader, "ERR_AUTH", "handshake");
    });

    test("tampered record", async () => {
      const s = await referenceHandshake(server.port, { username: "alice", psk });
      const r = s.record(0, Buffer.from("hello"));
      r[r.length - 1]! ^= 1;
      s.socket.write(Buffer.concat([r, s.record(1, Buffer.from("next"))]));
      await closedSilently(s.reader, "ERR_DECRYPT", "session");
    });

    test("replayed record", async () => {
      const s = await referenceHandshake(server.port, { username: "alice", psk });
      const r = s.record(0, Buffer.from("hello"));
      s.socket.write(r);
      assert.equal((await s.readReply()).toString(), "Server received: hello");
      s.socket.write(r);
      await closedSilently(s.reader, "ERR_DECRYPT", "session");
    });

    test("a reply reflected back to the server", async () => {
      const s = await referenceHandshake(server.port, { username: "alice", psk });
      s.socket.write(s.record(0, Buffer.from("hello")));
      const len = (await s.reader.read(2)).readUInt16BE(0);
      const body = await s.reader.read(len);
      const head = Buffer.alloc(2);
      head.writeUInt16BE(len);
      s.socket.write(Buffer.concat([head, body]));
      await closedSilently(s.reader, "ERR_DECRYPT", "session");
    });

    test("truncated record: closed at the record deadline", async () => {
      const s = await referenceHandshake(server.port, { username: "alice", psk });
      s.socket.write(s.record(0, Buffer.from("hello")).subarray(0, 20));
      await closedSilently(s.reader, "ERR_TIMEOUT", "session");
    });

    test("silent client and truncated handshake: closed at the handshake deadline", async () => {
      const silent = new Reader(await dial(server.port));
      await closedSilently(silent, "ERR_TIMEOUT", "handshake");
      const half = await dial(server.port);
      half.write(Buffer.from([5, 0x61, 0x6c]));
      await closedSilently(new Reader(half), "ERR_TIMEOUT", "handshake");
    });

    test("zero-length username and invalid UTF-8", async () => {
      const zero = await dial(server.port);
      zero.write(Buffer.alloc(17));
      await closedSilently(new Reader(zero), "ERR_PROTOCOL", "handshake");
      const bad = await dial(server.port);
      bad.write(Buffer.concat([Buffer.of(2, 0xc3, 0x28), Buffer.alloc(16)]));
      await closedSilently(new Reader(bad), "ERR_PROTOCOL", "handshake");
    });

    test("a message over the maximum", async () => {
      const s = await referenceHandshake(server.port, { username: "alice", psk });
      s.socket.write(s.record(0, Buffer.alloc(legacy.DEFAULT_MAX_MESSAGE_SIZE + 1)));
      await closedSilently(s.reader, "ERR_TOO_LARGE", "session");
    });
  });
}

test("close() ends live sessions and returns (node:net waits for connections)", async () => {
  const server = await startServer({ keys: new StaticKeyStore(new Map([["alice", new Uint8Array(psk)]])), port: 0, transport: nodeTransport });
  const s = await referenceHandshake(server.port, { username: "alice", psk });
  await server.close();
  assert.equal((await s.reader.closedWithin(3000)).closed, true);
});
