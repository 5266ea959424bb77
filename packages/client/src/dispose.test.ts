// The client session disposes its machine exactly once on every end (machine.ts dispose): a server
// that reads the first flight and goes silent until the handshake deadline, one that closes after
// it, an established session closed by the application, and a dial that fails. A spy on the
// version's machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { type ClientMachine, PROTOCOLS, legacy } from "@nstp/core";
import { codeOf, referencePsk, referenceServer, spyOnDispose } from "@nstp/testkit";
import { connect } from "./index.ts";

const get = (o: unknown, ...path: string[]): unknown => path.reduce((v, k) => (v === null || typeof v !== "object" ? undefined : Reflect.get(v, k)), o);

/** What each version's client owns in the states a connection ends in here (machine.ts: ownership). */
function clientSecrets(machine: ClientMachine): Uint8Array[] {
  const state = get(machine, "state") as { kind: string };
  const found =
    state.kind === "shareSent" || (state.kind === "start" && get(state, "opts", "keys")) ? [get(state, "opts", "keys", "w0"), get(state, "opts", "keys", "w1")]
    : state.kind === "initiationSent" ? [get(state, "handshake", "ss", "ck"), get(state, "handshake", "ss", "cipher", "k"), get(state, "handshake", "e", "privateKey")]
    : state.kind === "established" ? [get(state, "key")]
    : [];
  for (const b of found) assert.ok(b instanceof Uint8Array, `a ${state.kind} secret is bytes`);
  return found as Uint8Array[];
}

/** A version's client factory, spied on: every machine it makes records its dispose() calls. */
const spyOnClients = (name: string) => spyOnDispose<ClientMachine>(PROTOCOLS.find((e) => e.name === name)!, "client", clientSecrets);

/** A server that reads the client's first flight, then stays silent or closes. */
function firstFlightServer(then: "silent" | "close"): Promise<{ port: number; close(): void }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.once("data", () => {
      if (then === "close") s.end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

const isZero = (b: Uint8Array) => b.every((x) => x === 0);
const deviceSalt = Buffer.from(legacy.DEMO_DEVICE_SALT);

for (const [protocol, then, code] of [["v3", "silent", "ERR_TIMEOUT"], ["v2", "close", "ERR_AUTH"]] as const) {
  test(`client, ${protocol}: a server that ${then === "silent" ? "goes silent" : "closes"} after our first flight; the machine is disposed once, its own secrets zeroed, our PSK left`, async () => {
    const spy = spyOnClients(protocol);
    const server = await firstFlightServer(then);
    try {
      const psk = new Uint8Array(32).fill(0x42);
      const got = await codeOf(connect({ protocol, port: server.port, username: "alice", psk, deviceSalt, limits: { handshakeTimeoutMs: 300 } }));
      assert.equal(got, code);
      assert.equal(spy.made.length, 1);
      const [m] = spy.made;
      assert.equal(m!.disposals, 1, "disposed once");
      assert.ok(m!.secrets.length >= 2, "found mid-handshake");
      assert.ok(m!.secrets.every(isZero), "its own secrets zeroed");
      assert.ok(psk.every((b) => b === 0x42), "the PSK it was given is left alone");
      assert.throws(() => m!.machine.seal([new Uint8Array(1)]));
    } finally {
      spy.restore();
      server.close();
    }
  });
}

test("client, legacy: an established session closed by the application disposes its machine once, the session key zeroed", async () => {
  const spy = spyOnClients("legacy");
  const ref = await referenceServer({ deviceSalt, users: { alice: "userpassword" } });
  try {
    const psk = new Uint8Array(referencePsk("userpassword", deviceSalt, "alice"));
    const pskBefore = psk.slice();
    const session = await connect({ protocol: "legacy", port: ref.port, username: "alice", psk, deviceSalt });
    assert.equal(new TextDecoder().decode(await session.request("hi")), "Server received: hi");
    assert.equal(spy.made[0]!.disposals, 0, "not while the session is open");
    await session.close();
    assert.equal(spy.made[0]!.disposals, 1);
    assert.equal(spy.made[0]!.secrets.length, 1);
    assert.ok(isZero(spy.made[0]!.secrets[0]!), "the session key zeroed");
    assert.deepEqual(psk, pskBefore, "the PSK left alone");
  } finally {
    spy.restore();
    ref.close();
  }
});

test("client, v3: a dial that fails disposes the machine it made, its own keys zeroed", async () => {
  const spy = spyOnClients("v3");
  // A port nothing listens on: one that was just given up.
  const closed = net.createServer();
  const port = await new Promise<number>((resolve) => closed.listen(0, "127.0.0.1", () => resolve((closed.address() as net.AddressInfo).port)));
  await new Promise((r) => closed.close(r));
  try {
    assert.notEqual(await codeOf(connect({ protocol: "v3", port, username: "alice", psk: new Uint8Array(32).fill(1), deviceSalt })), "ok");
    assert.equal(spy.made.length, 1);
    assert.equal(spy.made[0]!.disposals, 1);
    assert.equal(spy.made[0]!.secrets.length, 2, "w0 and w1, found in the start state");
    assert.ok(spy.made[0]!.secrets.every(isZero), "zeroed");
    assert.equal((get(spy.made[0]!.machine, "state") as { kind: string }).kind, "failed");
  } finally {
    spy.restore();
  }
});
