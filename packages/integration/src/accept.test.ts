/**
 * The open transport interface: a byte stream that is not a socket (here an in-memory pair, as a
 * WebSocket or serial adapter would be) reaches the server through accept(wire) and the client
 * through connectWire(), with no core edit, for every version in the registry.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PROTOCOL_NAMES, type Wire, type WireEvents, legacy } from "@nstp/core";
import { connectWire } from "@nstp/client";
import { StaticKeyStore, startServer } from "@nstp/server";
import { referencePsk } from "@nstp/testkit";

const deviceSalt = legacy.DEMO_DEVICE_SALT;
const psk = referencePsk("userpassword", Buffer.from(deviceSalt), "alice");

/** One end of an in-memory stream: bytes written arrive at the other end's events on a later tick. */
class MemoryWire implements Wire {
  peer: WireEvents | undefined;
  ended = false;
  readonly bufferedAmount = 0;
  bytesSent = 0;
  readonly remoteAddress = "memory";
  write(data: Uint8Array): void {
    if (this.ended) return;
    this.bytesSent += data.length;
    const copy = data.slice();
    setImmediate(() => this.peer?.data(copy));
  }
  end(): void {
    if (this.ended) return;
    this.ended = true;
    setImmediate(() => this.peer?.close());
  }
  destroy(): void {
    this.end();
  }
  pause(): void {}
  resume(): void {}
}

test("accept(wire) and connectWire(): every registry version over an in-memory stream", async () => {
  const server = await startServer({ keys: new StaticKeyStore(new Map([["alice", new Uint8Array(psk)]])), port: 0, deviceSalt });
  try {
    for (const protocol of PROTOCOL_NAMES) {
      const toServer = new MemoryWire();
      const toClient = new MemoryWire();
      const session = await connectWire((events) => {
        toServer.peer = server.accept(toClient);
        toClient.peer = events;
        return toServer;
      }, { username: "alice", psk: new Uint8Array(psk), deviceSalt, protocol });
      assert.equal(session.protocol, protocol);
      assert.equal(new TextDecoder().decode(await session.request("hi")), "Server received: hi", protocol);
      await session.close();
    }
  } finally {
    await server.close({ graceMs: 0 });
  }
});
