// A server keyed by a password lookup (PasswordKeyStore), probed end to end as an attacker would: a
// repeat probe of an unknown name must look, in the bytes the server sends and the error the client
// reports, exactly like a repeat probe of a known name with a wrong password, for every version. (A
// seen unknown name once answered the credential lookup with a TypeError: the handshake failed before
// any reply, 0 bytes where a known name got 8 (legacy) or 99 (v3), and legacy reported ERR_BUSY.)
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { NstpError } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import { connect } from "@nstp/client";
import { PasswordKeyStore, type RunningServer, startServer } from "@nstp/server";

let server: RunningServer;
let relay: net.Server;
let relayPort = 0;
/** Bytes the server sent on the relayed connection of the current probe. */
let fromServer = 0;

before(async () => {
  const keys = new PasswordKeyStore({
    deviceSalt: new Uint8Array(16),
    crypto: nativeBackend,
    lookup: async (name) => (name === "alice" ? "the right password" : undefined),
    unknownDelayMs: 0,
  });
  server = await startServer({ keys, port: 0, failureLimit: { burst: 1000 } });
  relay = net.createServer((c) => {
    const s = net.connect(server.port, "127.0.0.1");
    c.pipe(s);
    s.on("data", (d: Buffer) => (fromServer += d.length));
    s.pipe(c);
    c.on("error", () => s.destroy());
    s.on("error", () => c.destroy());
    c.on("close", () => s.destroy());
    s.on("close", () => c.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
  relayPort = (relay.address() as net.AddressInfo).port;
});
after(async () => {
  relay.close();
  await server.close();
});

/** One failed probe: the client's error code and what the server sent. */
async function probe(protocol: "legacy" | "v2" | "v3", username: string): Promise<{ code: string; bytes: number }> {
  fromServer = 0;
  const code = await connect({ port: relayPort, username, psk: new Uint8Array(32).fill(7), protocol, deviceSalt: new Uint8Array(16), connectTimeoutMs: 5000, limits: { handshakeTimeoutMs: 5000 } }).then(
    (s) => (void s.close(), "ERR_NONE"),
    (e: unknown) => (e instanceof NstpError ? e.code : String(e)),
  );
  // The relay's last bytes and close: bounded wait.
  await new Promise((r) => setTimeout(r, 50));
  return { code, bytes: fromServer };
}

for (const protocol of ["legacy", "v2", "v3"] as const) {
  test(`password lookup, ${protocol}: repeat probes of an unknown name and of a known name with a wrong password look the same`, async () => {
    const ghost = `ghost-${protocol}`;
    for (let round = 1; round <= 2; round++) {
      const known = await probe(protocol, "alice");
      const unknown = await probe(protocol, ghost);
      assert.equal(known.code, "ERR_AUTH", `round ${round}: a wrong password`);
      assert.deepEqual(unknown, known, `round ${round}: the unknown name looks like the known one`);
    }
  });
}
