// The client's straight-line handshake against every registered version's server machine, in memory;
// and the reader that turns the wire's pushes into its reads.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { concat, utf8 } from "../bytes.ts";
import { nativeBackend as crypto } from "../crypto/native.ts";
import type { Output } from "../events.ts";
import { PROTOCOLS } from "../registry.ts";
import { verifierFromPsk } from "../v3/keys.ts";
import { HandshakeReader, clientHandshake } from "./handshake.ts";

const deviceSalt = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
const psk = crypto.sha256(utf8("psk"));
const sends = (outs: Output[]) => concat(...outs.flatMap((o) => (o.type === "send" ? [o.data] : [])));

describe("clientHandshake", () => {
  for (const entry of PROTOCOLS) {
    test(`${entry.name}: runs to established over a byte stream split at every byte`, async () => {
      const client = entry.client({ crypto, username: "alice", deviceSalt, psk });
      const server = entry.server({ crypto, deviceSalt });
      const credential = { psk, verifier: verifierFromPsk(crypto, psk, deviceSalt, utf8("alice")) };
      // The server's answers, handed to the client one byte per read.
      const toClient: number[] = [];
      const reads = { n: 0 };
      const rest = await clientHandshake(client, {
        write: (bytes) => {
          for (const o of server.receive(bytes)) {
            if (o.type === "send") toClient.push(...o.data);
            else if (o.type === "need-key") toClient.push(...sends(server.provideCredential(credential)));
          }
        },
        read: async () => {
          if (++reads.n > 10_000 || !toClient.length) throw new Error("read with nothing sent");
          return new Uint8Array(toClient.splice(0, 1));
        },
      });
      assert.ok(client.established);
      assert.deepEqual(rest, []);
      assert.equal(toClient.length, 0, "every byte the server sent was read");
    });
  }

  test("a machine that throws ends it; so does a read that rejects", async () => {
    const entry = PROTOCOLS[0]!;
    const client = entry.client({ crypto, username: "alice", deviceSalt, psk });
    await assert.rejects(clientHandshake(client, { write: () => {}, read: async () => new Uint8Array(64) }), (e: Error & { code?: string }) => typeof e.code === "string");
    const other = entry.client({ crypto, username: "alice", deviceSalt, psk });
    await assert.rejects(clientHandshake(other, { write: () => {}, read: () => Promise.reject(new Error("closed")) }), /closed/);
  });
});

test("HandshakeReader: holds what arrives unread with reading paused, hands it over in order, fails waiting reads", async () => {
  const pauses: boolean[] = [];
  const r = new HandshakeReader((p) => pauses.push(p));
  const first = r.read();
  r.push(utf8("a"));
  assert.deepEqual(await first, utf8("a"));
  assert.deepEqual(pauses, [], "a waiting read takes it directly");
  r.push(utf8("b"));
  r.push(utf8("c"));
  assert.deepEqual(pauses, [true, true]);
  assert.deepEqual(await r.read(), utf8("b"));
  assert.deepEqual(r.takeRest(), [utf8("c")]);
  const waiting = r.read();
  r.fail(new Error("deadline"));
  await assert.rejects(waiting, /deadline/);
  await assert.rejects(r.read(), /deadline/);
});
