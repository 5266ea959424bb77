/**
 * v3 through the server's credential records: a machine takes what it needs from { psk?, verifier? };
 * what the record lacks (an unknown user, a verifier-only user on a PSK version) is stood in for by a
 * fake of the same kind and fails like a wrong password.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { type Credential, type NstpError, derivePsk, v3 } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import { connect } from "@nstp/client";
import { type KeyStore, type RunningServer, readUsersFile, startServer, userRecord, USERS_FILE_FORMAT } from "@nstp/server";

const deviceSalt = Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2]);
const derive = (username: string, password: string) => derivePsk(nativeBackend, { username, password, deviceSalt });
const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: NstpError) => e.code);

let server: RunningServer;
let alice: Uint8Array;
let vera: Uint8Array;

before(async () => {
  [alice, vera] = await Promise.all([derive("alice", "a"), derive("vera", "v")]);
  const records = new Map<string, Credential>([
    ["alice", { psk: alice, verifier: v3.verifierFromPsk(nativeBackend, alice, deviceSalt, new TextEncoder().encode("alice")) }],
    // A user whose store holds only the v3 verifier: no PSK anywhere on the server.
    ["vera", { verifier: v3.verifierFromPsk(nativeBackend, vera, deviceSalt, new TextEncoder().encode("vera")) }],
  ]);
  const keys: KeyStore = { lookup: (u) => records.get(u)?.psk, lookupCredential: (u) => records.get(u) };
  server = await startServer({ keys, port: 0, deviceSalt, limits: { handshakeTimeoutMs: 2000 } });
});
after(() => server.close({ graceMs: 0 }));

test("v3: a user's verifier serves it; a wrong password and an unknown user are ERR_AUTH", async () => {
  const s = await connect({ port: server.port, username: "alice", psk: alice, deviceSalt, protocol: "v3" });
  assert.equal(new TextDecoder().decode(await s.request("x")), "Server received: x");
  await s.close();
  assert.equal(await codeOf(connect({ port: server.port, username: "alice", psk: vera, deviceSalt, protocol: "v3" })), "ERR_AUTH");
  assert.equal(await codeOf(connect({ port: server.port, username: "nobody", psk: alice, deviceSalt, protocol: "v3" })), "ERR_AUTH");
});

test("a verifier-only user: served on v3, and on v2 and legacy fails like a wrong password (a fake PSK)", async () => {
  const s = await connect({ port: server.port, username: "vera", psk: vera, deviceSalt, protocol: "v3" });
  await s.close();
  for (const protocol of ["v2", "legacy"]) {
    assert.equal(await codeOf(connect({ port: server.port, username: "vera", psk: vera, deviceSalt, protocol })), "ERR_AUTH", protocol);
  }
});

test("users file: w0/L read when present, derived once at load when not (the same verifier)", async () => {
  const withVerifier = { ...userRecord(deviceSalt, "vera", vera), ...v3.verifierToJson(v3.verifierFromPsk(nativeBackend, vera, deviceSalt, new TextEncoder().encode("vera"))) };
  const text = JSON.stringify({ format: USERS_FILE_FORMAT, users: { alice: userRecord(deviceSalt, "alice", alice), vera: withVerifier } });
  const { keys, verifiers } = readUsersFile(text, deviceSalt);
  assert.deepEqual(keys.get("alice"), alice);
  assert.deepEqual(verifiers.get("alice"), v3.verifierFromPsk(nativeBackend, alice, deviceSalt, new TextEncoder().encode("alice")));
  assert.deepEqual(verifiers.get("vera"), v3.verifierFromJson({ w0: withVerifier.w0, L: withVerifier.L }));
  const broken = JSON.stringify({ format: USERS_FILE_FORMAT, users: { vera: { ...withVerifier, L: "04" + "00".repeat(10) } } });
  assert.throws(() => readUsersFile(broken, deviceSalt), /w0 and L are not a v3 verifier/);
});
