// The independent v3 peer (testing/v3-peer.ts, written from docs/PROTOCOL.md with plain @noble/curves
// and node:crypto) against the V3Server machine, over loopback TCP through a minimal driver, on both
// crypto backends; and its key derivation against the published KAT file.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type CryptoBackend, type Output, utf8, v3 } from "@nstp/core";
import { BACKENDS } from "@nstp/core/node";
import { dial, peerKeys, Reader, v3Handshake, V3PeerHandshake } from "@nstp/testkit";

const DEVICE_SALT = Buffer.from("00112233445566778899aabbccddeeff", "hex");
const PSK = Buffer.alloc(32, 0x5a);

/** Serves the V3Server machine on 127.0.0.1:0: looks records up, echoes each message back. */
function machineServer(crypto: CryptoBackend): Promise<{ port: number; failures: string[]; close(): void }> {
  const record = v3.verifierFromPsk(crypto, PSK, DEVICE_SALT, utf8("alice"));
  const fakes = new v3.FakeVerifiers(crypto);
  const failures: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const machine = new v3.V3Server({ crypto, deviceSalt: DEVICE_SALT });
    const apply = (outs: Output[]): void => {
      for (const o of outs) {
        if (o.type === "send") socket.write(o.data);
        else if (o.type === "need-key") apply(machine.provideVerifier(o.username === "alice" ? record : fakes.record(utf8(o.username))));
        else if (o.type === "message") socket.write(machine.seal([o.data]));
        else if (o.type === "closed") socket.end(machine.seal([], { close: true }));
      }
    };
    socket.on("data", (d) => {
      try {
        apply(machine.receive(d));
      } catch (e) {
        failures.push((e as { code?: string }).code ?? String(e));
        socket.destroy();
      }
    });
    socket.on("error", () => socket.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({ port, failures, close: () => (server.close(), sockets.forEach((s) => s.destroy())) });
    });
  });
}

for (const crypto of Object.values(BACKENDS)) {
  describe(`independent v3 peer against the V3Server machine (${crypto.name} backend)`, () => {
    test("handshake and a pipelined echo, message 3 in the same write as the first frames", async () => {
      const srv = await machineServer(crypto);
      try {
        const s = await v3Handshake(srv.port, { username: "alice", deviceSalt: DEVICE_SALT, psk: PSK, holdConfirmation: true });
        const msgs = Array.from({ length: 20 }, (_, i) => Buffer.from(`message ${i}`));
        s.reader.socket.write(Buffer.concat([s.confirmation!, s.encode(msgs)]));
        for (const m of msgs) assert.deepEqual(await s.receive(), m);
        s.send([Buffer.alloc(100_000, 7)]);
        assert.deepEqual(await s.receive(), Buffer.alloc(100_000, 7));
        s.close();
        await assert.rejects(s.receive(2000), /server closed the session/);
        assert.equal(s.closedByServer, true, "the server answered the close chunk with its own");
        assert.equal((await s.reader.closedWithin(2000)).closed, true);
        s.destroy();
        assert.deepEqual(srv.failures, []);
      } finally {
        srv.close();
      }
    });

    test("a wrong password and an unknown user fail at confirmV on the peer, and the server stays silent", async () => {
      const srv = await machineServer(crypto);
      try {
        for (const opts of [{ username: "alice", psk: Buffer.alloc(32, 1) }, { username: "mallory", psk: PSK }]) {
          await assert.rejects(v3Handshake(srv.port, { ...opts, deviceSalt: DEVICE_SALT }), /confirmV did not verify/);
        }
        // A peer that sends a confirmP anyway is closed with nothing sent.
        const socket = await dial(srv.port);
        const reader = new Reader(socket);
        const hs = new V3PeerHandshake({ username: "alice", deviceSalt: DEVICE_SALT, psk: Buffer.alloc(32, 1) });
        socket.write(hs.hello());
        await reader.read(99);
        socket.write(Buffer.concat([Buffer.from([0, 32]), Buffer.alloc(32)]));
        assert.deepEqual(await reader.closedWithin(2000), { closed: true, extra: 0 });
        socket.destroy();
        assert.ok(srv.failures.includes("ERR_AUTH"));
      } finally {
        srv.close();
      }
    });
  });
}

describe("independent v3 peer key derivation", () => {
  test("reproduces w0 and w1 of docs/vectors/nstp-v3-kat.json", () => {
    const kat = JSON.parse(readFileSync(fileURLToPath(new URL("../../../docs/vectors/nstp-v3-kat.json", import.meta.url)), "utf8"));
    const { w0, w1 } = peerKeys(Buffer.from(kat.keys.psk, "hex"), Buffer.from(kat.inputs.deviceSalt, "hex"), kat.inputs.username);
    assert.equal(w0.toString(16).padStart(64, "0"), kat.keys.w0);
    assert.equal(w1.toString(16).padStart(64, "0"), kat.keys.w1);
  });
});
