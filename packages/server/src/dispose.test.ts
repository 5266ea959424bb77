// The server connection disposes its machine exactly once on every end (machine.ts dispose): a v3
// client that sends its share, reads message 2 and goes silent until the handshake deadline; one
// that goes away mid-handshake; an established session the client ends. A spy on the version's machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PROTOCOLS, type ServerMachine } from "@nstp/core";
import { dial, Reader, V3PeerHandshake, spyOnDispose, v3Handshake, within } from "@nstp/testkit";
import { StaticKeyStore, startServer } from "./index.ts";
import { ALICE, DEVICE_SALT, PSK } from "./testing/v3-pool-server.ts";

const keyOf = (channel: unknown, side: "writer" | "reader") =>
  Reflect.get(Reflect.get(Reflect.get(Reflect.get(channel as object, side), "cipher"), "state"), "k") as Uint8Array;

/** The v3 server's secrets in the states a connection can end in here. */
function v3Secrets(machine: ServerMachine): Uint8Array[] {
  const state = Reflect.get(machine, "state") as { kind: string; secrets?: Record<string, Uint8Array>; channel?: unknown };
  if (state.secrets) return Object.values(state.secrets);
  if (state.channel) return [keyOf(state.channel, "writer"), keyOf(state.channel, "reader")];
  return [];
}

/** The v3 server factory, spied on: every machine it makes records its dispose() calls. */
const spyOnV3Servers = () => spyOnDispose<ServerMachine>(PROTOCOLS.find((e) => e.name === "v3")!, "server", v3Secrets);

const isZero = (b: Uint8Array) => b.every((x) => x === 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("server: the machine is disposed once on every end, its secrets zeroed, the store's PSK left", async () => {
  const spy = spyOnV3Servers();
  const psk = new Uint8Array(PSK);
  const server = await startServer({
    keys: new StaticKeyStore(new Map([["alice", psk]])),
    port: 0,
    deviceSalt: DEVICE_SALT,
    handler: (m) => m,
    limits: { handshakeTimeoutMs: 500 },
  });
  try {
    // Message 2 read, then silence: closed at the handshake deadline.
    const silent = await dial(server.port);
    const reader = new Reader(silent);
    silent.write(new V3PeerHandshake(ALICE).hello());
    assert.equal((await reader.read(99)).readUInt16BE(0), 97, "message 2");
    assert.deepEqual(await reader.closedWithin(5000), { closed: true, extra: 0 });
    silent.destroy();
    assert.ok(await within(2000, () => spy.made[0]?.disposals === 1), "disposed at the deadline");
    const [first] = spy.made;
    assert.equal(first!.secrets.length, 4, "found in responseSent: confirmP, confirmV and both transport keys");
    assert.ok(first!.secrets.every(isZero), "message 2's secrets zeroed");

    // The client goes away after message 2.
    const gone = await dial(server.port);
    const goneReader = new Reader(gone);
    gone.write(new V3PeerHandshake(ALICE).hello());
    await goneReader.read(99);
    gone.destroy();
    assert.ok(await within(2000, () => spy.made[1]?.disposals === 1), "disposed when the client went away");
    assert.ok(spy.made[1]!.secrets.every(isZero));

    // Established, then the client goes away.
    const session = await v3Handshake(server.port, ALICE);
    session.send([Buffer.from("hello")]);
    assert.deepEqual(await session.receive(), Buffer.from("hello"));
    session.destroy();
    assert.ok(await within(2000, () => spy.made[2]?.disposals === 1), "disposed when the session ended");
    assert.equal(spy.made[2]!.secrets.length, 2, "the channel's two keys");
    assert.ok(spy.made[2]!.secrets.every(isZero), "transport keys zeroed");

    await sleep(50);
    assert.deepEqual(spy.made.map((m) => m.disposals), [1, 1, 1], "exactly once each");
    assert.ok(psk.every((b) => b === 0x5a), "the key store's PSK is never zeroed");
  } finally {
    spy.restore();
    await server.close({ graceMs: 0 });
  }
});
