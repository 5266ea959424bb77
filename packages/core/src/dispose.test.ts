// Key hygiene at the end of a connection (machine.ts dispose): every registered version's client and
// server, disposed mid-handshake and established, zero the secrets they own, leave alone the keys they
// were handed (PSK, verifier, device salt), and refuse to seal or open afterwards.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { concat, utf8 } from "./bytes.ts";
import { BACKENDS } from "./crypto/index.ts";
import { ServerDispatch } from "./dispatch.ts";
import type { Output } from "./events.ts";
import type { ClientMachine, Credential, Machine, ServerMachine } from "./machine.ts";
import { CipherState } from "./noise/cipher-state.ts";
import { PROTOCOLS, type ProtocolEntry } from "./registry.ts";
import { verifierFromPsk } from "./v3/keys.ts";

const sends = (outs: Output[]) => concat(...outs.flatMap((o) => (o.type === "send" ? [o.data] : [])));
const isZero = (b: Uint8Array) => b.every((x) => x === 0);

/** A property path into a machine's private state, read by name at run time (tests only). */
function bytesAt(root: unknown, ...path: string[]): Uint8Array {
  let o = root;
  for (const k of path) {
    o = Reflect.get(o as object, k);
    assert.ok(o !== undefined && o !== null, `nothing at ${path.join(".")}`);
  }
  assert.ok(o instanceof Uint8Array, `${path.join(".")} is not bytes`);
  return o;
}

/** Both transport keys of an established channel (v2, v3): the arrays its CipherStates encrypt with. */
const channelKeys = (channel: unknown) => [bytesAt(channel, "writer", "cipher", "state", "k"), bytesAt(channel, "reader", "cipher", "state", "k")];

/** The secrets a machine owns at this point, by version, role and state (machine.ts: ownership). */
function ownedSecrets(version: string, m: Machine): Uint8Array[] {
  const state = Reflect.get(m, "state") as { kind: string };
  if (version === "legacy") return [bytesAt(state, "key")];
  if (state.kind === "established") return channelKeys(Reflect.get(state, "channel"));
  switch (`${version} ${state.kind}`) {
    case "v2 initiationSent":
      return [bytesAt(state, "handshake", "ss", "ck"), bytesAt(state, "handshake", "ss", "cipher", "k"), bytesAt(state, "handshake", "e", "privateKey")];
    case "v2 responseSent":
      return channelKeys(Reflect.get(state, "channel"));
    case "v3 shareSent":
      return [bytesAt(state, "opts", "keys", "w0"), bytesAt(state, "opts", "keys", "w1")];
    case "v3 responseSent":
      return ["confirmP", "confirmV", "clientToServer", "serverToClient"].map((k) => bytesAt(state, "secrets", k));
  }
  throw new Error(`no secrets listed for ${version} in ${state.kind}`);
}

interface Flight {
  client: ClientMachine;
  server: ServerMachine;
  /** What was handed in from outside: never zeroed. */
  shared: Uint8Array[];
  /** Bytes in flight to each side, not yet delivered. */
  toClient: Uint8Array;
  toServer: Uint8Array;
}

/**
 * Both machines mid-handshake: the server has its credential and has answered (legacy: its session
 * nonce, with the key derived; v2, v3: message 2), the client has sent its guess (legacy: its proof)
 * and not yet read the server's answer (v2, v3) or its proof (legacy).
 */
function midHandshake(entry: ProtocolEntry, crypto = BACKENDS.native): Flight {
  const deviceSalt = utf8("device-salt-0001");
  const psk = crypto.sha256(utf8("password"));
  const verifier = verifierFromPsk(crypto, psk, deviceSalt, utf8("alice"));
  // Each version takes what it needs: legacy and v2 the PSK, v3 the verifier.
  const credential: Credential = { psk, verifier };
  const client = entry.client({ crypto, username: "alice", deviceSalt, psk });
  const server = entry.server({ crypto, deviceSalt });
  const s1 = server.receive(sends(client.start()));
  assert.ok(s1.some((o) => o.type === "need-key"));
  let toClient = concat(sends(s1), sends(server.provideCredential(credential)));
  let toServer: Uint8Array = new Uint8Array(0);
  if (entry.name === "legacy") {
    toServer = sends(client.receive(toClient));
    toClient = new Uint8Array(0);
  }
  assert.equal(client.established, false);
  return { client, server, shared: [psk, verifier.w0, verifier.L, deviceSalt], toClient, toServer };
}

/** Both machines established, key confirmation included. */
function established(entry: ProtocolEntry): Flight {
  const f = midHandshake(entry);
  let up = false;
  const toServer = (bytes: Uint8Array) => {
    for (const o of f.server.receive(bytes)) {
      if (o.type === "send") toClient(o.data);
      else if (o.type === "established") up = true;
    }
  };
  const toClient = (bytes: Uint8Array) => {
    const outs = f.client.receive(bytes);
    if (sends(outs).length) toServer(sends(outs));
  };
  if (f.toServer.length) toServer(f.toServer);
  if (f.toClient.length) toClient(f.toClient);
  if (!up && f.client.ping) toServer(f.client.ping());
  assert.ok(f.client.established && up, `${entry.name}: the pair did not establish`);
  return { ...f, toClient: new Uint8Array(0), toServer: new Uint8Array(0) };
}

/** dispose() zeroes `m`'s own secrets, leaves the shared ones, and leaves `m` unable to seal or open. */
function assertDisposes(version: string, m: Machine, shared: Uint8Array[]): void {
  const secrets = ownedSecrets(version, m);
  assert.ok(secrets.length > 0);
  for (const [i, s] of secrets.entries()) assert.equal(isZero(s), false, `secret ${i} is set before dispose`);
  const sharedBefore = shared.map((b) => b.slice());
  m.dispose();
  for (const [i, s] of secrets.entries()) assert.ok(isZero(s), `secret ${i} zeroed`);
  assert.deepEqual(shared, sharedBefore, "what was handed in is left alone");
  assert.throws(() => m.seal([utf8("after the end")]), "seal after dispose");
  assert.throws(() => m.seal([], { close: true }), "a close after dispose");
  assert.throws(() => m.receive(utf8("more bytes from the peer")), "receive after dispose");
  assert.equal(m.deferred, undefined, "no deferred AEAD after dispose");
  const ping = Reflect.get(m, "ping") as (() => Uint8Array) | undefined;
  if (ping) assert.throws(() => ping.call(m), "ping after dispose");
  m.dispose();
  for (const s of secrets) assert.ok(isZero(s), "still zero after a second dispose");
}

for (const entry of PROTOCOLS) {
  describe(`dispose, ${entry.name}`, () => {
    for (const [phase, flight] of [["mid-handshake", midHandshake], ["established", established]] as const) {
      for (const role of ["client", "server"] as const) {
        test(`${role} ${phase}: its own secrets zeroed, the PSK or verifier it was given left, nothing sealed or opened after`, () => {
          const f = flight(entry);
          assertDisposes(entry.name, f[role], f.shared);
        });
      }
    }

    test("a machine that failed and is then disposed holds no live key; disposal before start is harmless", () => {
      const f = established(entry);
      const secrets = ownedSecrets(entry.name, f.server);
      // A forged frame (v2, v3: length 62, then bytes whose tag fails; legacy: not this session's nonce).
      assert.throws(() => f.server.receive(concat(Uint8Array.of(0, 62), new Uint8Array(62).fill(0xee))), "a forged frame fails the session");
      f.server.dispose();
      for (const s of secrets) assert.ok(isZero(s));
      const fresh = entry.client({ crypto: BACKENDS.native, username: "alice", deviceSalt: new Uint8Array(8), psk: new Uint8Array(32).fill(7) });
      fresh.dispose();
      assert.throws(() => fresh.seal([utf8("x")]));
    });
  });
}

test("dispose, v2 and v3 clients: the handshake's own secrets are zeroed as soon as it completes", () => {
  // v2: the ephemeral private key and the final chaining key (the handshake object outlives its
  // state only in this test); v3: w0 and w1, derived for this connection by the registry's factory.
  for (const entry of PROTOCOLS.filter((e) => e.name !== "legacy")) {
    const f = midHandshake(entry);
    const state = Reflect.get(f.client, "state") as object;
    const handshake = Reflect.get(state, "handshake") as object | undefined;
    const secrets = handshake ? [bytesAt(handshake, "e", "privateKey")] : ownedSecrets(entry.name, f.client);
    f.client.receive(f.toClient);
    assert.equal(f.client.established, true);
    if (handshake) secrets.push(bytesAt(handshake, "ss", "ck"));
    for (const s of secrets) assert.ok(isZero(s), `${entry.name}: handshake secret zeroed once established`);
    assert.ok(f.shared.every((b) => !isZero(b)));
  }
});

test("dispose, the dispatcher: before a version is chosen it refuses later bytes; after, the version's machine is disposed", () => {
  const crypto = BACKENDS.native;
  const early = new ServerDispatch({ crypto });
  assert.deepEqual(early.receive(Uint8Array.of(0)), [], "a marker's first byte: undecided");
  early.dispose();
  assert.throws(() => early.receive(utf8("NSTP")), { code: "ERR_PROTOCOL" });

  const deviceSalt = utf8("device-salt-0001");
  const psk = crypto.sha256(utf8("password"));
  const verifier = verifierFromPsk(crypto, psk, deviceSalt, utf8("alice"));
  const client = PROTOCOLS.find((e) => e.name === "v3")!.client({ crypto, username: "alice", deviceSalt, psk });
  const dispatch = new ServerDispatch({ crypto, deviceSalt });
  dispatch.receive(sends(client.start()));
  assert.equal(dispatch.protocol, "v3");
  dispatch.provideCredential({ verifier });
  const inner = Reflect.get(dispatch, "machine") as Machine;
  const secrets = ownedSecrets("v3", inner);
  dispatch.dispose();
  for (const s of secrets) assert.ok(isZero(s));
  assert.ok(!isZero(verifier.w0) && !isZero(verifier.L), "the verifier is the store's");
  assert.throws(() => dispatch.receive(utf8("late")));
});

test("a wiped CipherState throws ERR_CLOSED: it never passes plaintext through as a keyless one does", () => {
  const crypto = BACKENDS.native;
  const key = crypto.randomBytes(32);
  const c = new CipherState(crypto, key);
  c.wipe();
  assert.ok(isZero(key));
  assert.equal(c.hasKey(), false);
  assert.throws(() => c.encryptWithAd(new Uint8Array(0), utf8("secret")), { code: "ERR_CLOSED" });
  assert.throws(() => c.decryptWithAd(new Uint8Array(0), new Uint8Array(32)), { code: "ERR_CLOSED" });
  assert.throws(() => c.next(new Uint8Array(12)), { code: "ERR_CLOSED" });
});
