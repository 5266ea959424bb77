// Protocol v3 machines in memory: the SPAKE2+ handshake, v2's transport after it, every segmentation,
// and every way a peer can get it wrong. The KAT file and the RFC vectors have their own tests.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { p256 } from "@noble/curves/nist.js";
import { BACKENDS, type CryptoBackend } from "../crypto/index.ts";
import { concat, readU16BE, utf8 } from "../bytes.ts";
import type { Output } from "../events.ts";
import { V3Client } from "./client.ts";
import { V3Server, type V3ServerOptions } from "./server.ts";
import { reachable } from "../testing/reachable.ts";
import { handshakeSecrets } from "./handshake.ts";
import { FakeVerifiers, type ProverKeys, type Verifier, proverKeysFromPsk, verifierFromProverKeys } from "./keys.ts";
import { proverFinish, scalarFromBytes, verifierShares } from "./spake2plus.ts";
import { BUSY_SIGNAL, MESSAGE1_SIZE, MESSAGE2_SIZE, MESSAGE3_SIZE, encodeMessage3 } from "./wire.ts";

const messages = (outs: Output[]) => outs.flatMap((o) => (o.type === "message" ? [o.data] : []));
const sends = (outs: Output[]) => concat(...outs.flatMap((o) => (o.type === "send" ? [o.data] : [])));
const DEVICE_SALT = utf8("device-salt-0001");

function credentials(crypto: CryptoBackend, password = "psk", username = "alice"): { keys: ProverKeys; verifier: Verifier } {
  const keys = proverKeysFromPsk(crypto, crypto.sha256(utf8(password)), DEVICE_SALT, utf8(username));
  return { keys, verifier: verifierFromProverKeys(keys) };
}

interface Flight {
  client: V3Client;
  server: V3Server;
  hello: Uint8Array;
  message2: Uint8Array;
  message3: Uint8Array;
}

/** One handshake, step by step; `serverRecord` replaces the user's record (wrong password, fake). */
function handshake(crypto: CryptoBackend, opts: { serverRecord?: Verifier; rekeyInterval?: number } = {}): Flight {
  const { keys, verifier } = credentials(crypto);
  const client = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys, rekeyInterval: opts.rekeyInterval });
  const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT, rekeyInterval: opts.rekeyInterval });
  const hello = sends(client.start());
  const s1 = server.receive(hello);
  assert.deepEqual(s1, [{ type: "need-key", username: "alice" }]);
  const s2 = server.provideVerifier(opts.serverRecord ?? verifier);
  assert.deepEqual(s2.map((o) => o.type), ["send"]);
  const message2 = sends(s2);
  const c = client.receive(message2);
  assert.deepEqual(c.map((o) => o.type), ["send", "established"]);
  return { client, server, hello, message2, message3: sends(c) };
}

function established(crypto: CryptoBackend, rekeyInterval?: number): Flight {
  const f = handshake(crypto, { rekeyInterval });
  assert.deepEqual(f.server.receive(f.message3), [{ type: "established", username: "alice" }]);
  return f;
}

for (const crypto of Object.values(BACKENDS)) {
  describe(`v3 on the ${crypto.name} backend`, () => {
    test("handshake, then messages both ways; both sides share the handshake hash", () => {
      const { client, server } = established(crypto);
      assert.equal(server.stateName, "established");
      assert.deepEqual(client.handshakeHash, server.handshakeHash);
      const got = messages(server.receive(client.seal([utf8("hi"), new Uint8Array(0), utf8("there")])));
      assert.deepEqual(got, [utf8("hi"), new Uint8Array(0), utf8("there")]);
      assert.deepEqual(messages(client.receive(server.seal([utf8("pushed")]))), [utf8("pushed")]);
    });

    test("the transport is v2's: rekeying and the close chunk work across it", () => {
      const { client, server } = established(crypto, 3);
      for (let i = 0; i < 10; i++) assert.deepEqual(messages(server.receive(client.seal([utf8(`m${i}`)]))), [utf8(`m${i}`)]);
      assert.deepEqual(server.receive(client.seal([], { close: true })), [{ type: "closed" }]);
    });
  });
}

describe("v3 handshake", () => {
  const crypto = BACKENDS.native;

  test("once established each role holds the session only: no options, device salt, password keys, inbox or confirmation MACs", () => {
    const { keys, verifier } = credentials(crypto);
    const clientOpts = { crypto, username: "alice", deviceSalt: DEVICE_SALT, keys };
    const client = new V3Client(clientOpts);
    // A salt of its own, so that reaching it can only be through these options.
    const opts: V3ServerOptions = { crypto, deviceSalt: DEVICE_SALT.slice(), fakes: { psk: () => crypto.randomBytes(32), verifier: () => verifier } };
    const server = new V3Server(opts);
    server.receive(sends(client.start()));
    const message3 = sends(client.receive(sends(server.provideVerifier(verifier))));
    const pending = Reflect.get(server, "state") as { kind: string; secrets: { confirmP: Uint8Array; confirmV: Uint8Array }; inbox: object };
    assert.equal(pending.kind, "responseSent");
    assert.deepEqual(server.receive(message3), [{ type: "established", username: "alice" }]);
    assert.deepEqual(Object.keys(Reflect.get(server, "state") as object).sort(), ["channel", "kind", "username"]);
    const held = reachable(server);
    for (const [what, o] of Object.entries({ opts, deviceSalt: opts.deviceSalt, fakes: opts.fakes!, secrets: pending.secrets, inbox: pending.inbox, w0: verifier.w0 })) {
      assert.equal(held.has(o), false, `${what} is still retained`);
    }
    assert.ok(pending.secrets.confirmP.every((b) => b === 0) && pending.secrets.confirmV.every((b) => b === 0), "the confirmation MACs are wiped");
    assert.deepEqual(Object.keys(Reflect.get(client, "state") as object).sort(), ["channel", "kind"]);
    const clientHeld = reachable(client);
    for (const [what, o] of Object.entries({ clientOpts, keys, w0: keys.w0, w1: keys.w1, deviceSalt: DEVICE_SALT })) {
      assert.equal(clientHeld.has(o), false, `the client still retains ${what}`);
    }
    // The session still works, channel binding included.
    assert.deepEqual(server.handshakeHash, client.handshakeHash);
    assert.deepEqual(messages(server.receive(client.seal([utf8("after")]))), [utf8("after")]);
  });

  test("wire: preamble 00 'NSTP' 03, message 1 of 65, message 2 of 97, message 3 of 32", () => {
    const { hello, message2, message3 } = handshake(crypto);
    assert.deepEqual([...hello.subarray(0, 12)], [0, 0x4e, 0x53, 0x54, 0x50, 3, 5, ...utf8("alice")]);
    assert.equal(readU16BE(hello, 12), 65);
    assert.equal(hello[14], 0x04);
    assert.equal(hello.length, 12 + MESSAGE1_SIZE);
    assert.equal(readU16BE(message2, 0), 97);
    assert.equal(message2[2], 0x04);
    assert.equal(message2.length, MESSAGE2_SIZE);
    assert.equal(readU16BE(message3, 0), 32);
    assert.equal(message3.length, MESSAGE3_SIZE);
  });

  test("every segmentation of message 2, and of message 3 with the first frames in its write, gives the same session", { timeout: 120_000 }, () => {
    const { keys, verifier } = credentials(crypto);
    const run = (cut1: number, cut2: number, cut3: number, recordFirst: boolean) => {
      const client = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys });
      const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
      const hello = sends(client.start());
      const sOut: Output[] = [];
      const feed = (b: Uint8Array) => {
        for (const o of server.receive(b)) {
          if (o.type === "need-key" && recordFirst) sOut.push(...server.provideVerifier(verifier));
          else sOut.push(o);
        }
      };
      feed(hello.subarray(0, cut1));
      feed(hello.subarray(cut1));
      if (!recordFirst) sOut.push(...server.provideVerifier(verifier));
      const message2 = sends(sOut);
      const cOut = [...client.receive(message2.subarray(0, cut2)), ...client.receive(message2.subarray(cut2))];
      assert.equal(client.stateName, "established");
      const flight = concat(sends(cOut), client.seal([utf8("first"), utf8("second")]));
      const got = [...server.receive(flight.subarray(0, cut3)), ...server.receive(flight.subarray(cut3))];
      assert.deepEqual(got.map((o) => o.type), ["established", "message", "message"], `${cut1}/${cut2}/${cut3}`);
      assert.deepEqual(messages(client.receive(server.seal([utf8("reply")]))), [utf8("reply")]);
    };
    for (let cut = 0; cut <= MESSAGE2_SIZE; cut++) run(12, cut, 20, cut % 2 === 0);
    // Through message 3, into the first frame's length and ciphertext.
    for (let cut = 0; cut <= MESSAGE3_SIZE + 4; cut++) run(12, 50, cut, false);
  });

  test("every segmentation of the client's first flight yields the same curve job, the record before or after it", () => {
    const { keys, verifier } = credentials(crypto);
    const hello = sends(new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys }).start());
    for (let cut = 0; cut <= hello.length; cut++) {
      for (const recordFirst of [true, false]) {
        const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT, deferCurve: true });
        const outs: Output[] = [];
        for (const part of [hello.subarray(0, cut), hello.subarray(cut)]) {
          for (const o of server.receive(part)) outs.push(...(o.type === "need-key" && recordFirst ? server.provideVerifier(verifier) : [o]));
        }
        if (!recordFirst) outs.push(...server.provideVerifier(verifier));
        const job = outs.find((o) => o.type === "need-curve");
        assert.ok(job?.type === "need-curve", `cut ${cut}`);
        assert.deepEqual(job.job.shareP, hello.subarray(12 + 2));
        assert.equal(server.username, "alice");
      }
    }
  });

  test("one byte at a time in every direction", () => {
    const { keys, verifier } = credentials(crypto);
    const client = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys });
    const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
    const toClient: Uint8Array[] = [];
    for (const b of sends(client.start())) {
      for (const o of server.receive(Uint8Array.of(b))) {
        if (o.type === "need-key") toClient.push(sends(server.provideVerifier(verifier)));
        if (o.type === "send") toClient.push(o.data);
      }
    }
    const cOut: Output[] = [];
    for (const b of concat(...toClient)) cOut.push(...client.receive(Uint8Array.of(b)));
    const sOut: Output[] = [];
    for (const b of concat(sends(cOut), client.seal([utf8("x")]))) sOut.push(...server.receive(Uint8Array.of(b)));
    assert.deepEqual(sOut.map((o) => o.type), ["established", "message"]);
  });

  test("a PSK record (provideKey) is the same verifier as the stored one", () => {
    const { keys } = credentials(crypto);
    const client = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys });
    const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
    server.receive(sends(client.start()));
    const reply = client.receive(sends(server.provideKey(crypto.sha256(utf8("psk")))));
    assert.equal(server.receive(sends(reply)).at(-1)?.type, "established");
  });

  test("deferCurve: need-curve carries the job; its result (or error) completes the handshake", () => {
    const { keys, verifier } = credentials(crypto);
    const client = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys });
    const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT, deferCurve: true });
    server.receive(sends(client.start()));
    const [need] = server.provideVerifier(verifier);
    assert.equal(need?.type, "need-curve");
    assert.equal(server.stateName, "curvePending");
    assert.throws(() => server.receive(Uint8Array.of(0)), { code: "ERR_PROTOCOL" }, "early byte while the curve work runs");
    const again = new V3Server({ crypto, deviceSalt: DEVICE_SALT, deferCurve: true });
    again.receive(sends(new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys }).start()));
    const [job] = again.provideVerifier(verifier);
    assert.ok(job?.type === "need-curve");
    const reply = sends(again.provideCurve(verifierShares(job.job)));
    assert.equal(reply.length, MESSAGE2_SIZE);
    const failing = new V3Server({ crypto, deviceSalt: DEVICE_SALT, deferCurve: true });
    failing.receive(sends(new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys }).start()));
    failing.provideVerifier(verifier);
    assert.throws(() => failing.provideCurve(new Error("worker died")), { code: "ERR_AUTH" });
  });

  test("the server sends nothing after message 2 until confirmP verifies", () => {
    const { server, message3 } = handshake(crypto);
    assert.equal(server.stateName, "responseSent");
    assert.throws(() => server.seal([utf8("early push")]), { code: "ERR_PROTOCOL" });
    const f = handshake(crypto);
    assert.throws(() => f.server.seal([], { close: true }), { code: "ERR_PROTOCOL" });
    assert.equal(f.server.receive(message3.subarray(0, 10)).length, 0, "a partial message 3 yields nothing");
  });
});

describe("v3 authentication failures", () => {
  const crypto = BACKENDS.native;

  /** What an attacker's client sends as message 3 whatever confirmV said: its own confirmP. */
  function attackerConfirmP(keys: ProverKeys, hello: Uint8Array, message2: Uint8Array, x: bigint): Uint8Array {
    const shareV = message2.slice(2, 67);
    const curve = proverFinish(scalarFromBytes(keys.w0), scalarFromBytes(keys.w1), x, shareV);
    const secrets = handshakeSecrets(crypto, { preamble: hello.subarray(0, 12), deviceSalt: DEVICE_SALT, shareP: hello.slice(14), shareV, Z: curve.Z, V: curve.V, w0: keys.w0 });
    return encodeMessage3(secrets.confirmP);
  }

  function guessAgainst(record: Verifier, username = "alice"): void {
    const wrong = credentials(crypto, "wrong password", username).keys;
    const x = 0x1234567n;
    const client = new V3Client({ crypto, username, deviceSalt: DEVICE_SALT, keys: wrong, x });
    const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
    const hello = sends(client.start());
    server.receive(hello);
    const message2 = sends(server.provideVerifier(record));
    assert.equal(message2.length, MESSAGE2_SIZE, "message 2 looks the same for every record");
    assert.throws(() => client.receive(message2), { code: "ERR_AUTH" }, "the client sees confirmV fail");
    assert.equal(client.stateName, "failed");
    assert.throws(() => server.receive(attackerConfirmP(wrong, hello, message2, x)), { code: "ERR_AUTH", name: "AuthError" });
    assert.equal(server.stateName, "failed");
  }

  test("a wrong password fails at confirmP on the server and at confirmV on the client", () => {
    guessAgainst(credentials(crypto).verifier);
  });

  test("an unknown user (fake record) fails the same way", () => {
    const fakes = new FakeVerifiers(crypto);
    guessAgainst(fakes.record(utf8("mallory")), "mallory");
  });

  test("a forged confirmP, a wrong message 3 length or extra bytes inside it fail", () => {
    const f = handshake(crypto);
    const forged = f.message3.slice();
    forged[33]! ^= 1;
    assert.throws(() => f.server.receive(forged), { code: "ERR_AUTH" });
    for (const bad of [Uint8Array.of(0, 31), Uint8Array.of(0, 33), Uint8Array.of(0, 0), Uint8Array.of(1, 0)]) {
      assert.throws(() => handshake(crypto).server.receive(bad), { code: "ERR_PROTOCOL" }, [...bad].join(","));
    }
  });

  test("a failed confirmation wipes that handshake's secrets on either side (MACs and transport keys)", () => {
    // The arrays each side compares are the ones it holds: captured from timingSafeEqual's arguments.
    const compared: Uint8Array[][] = [];
    const spy: CryptoBackend = { ...crypto, timingSafeEqual: (a, b) => (compared.push([a, b]), crypto.timingSafeEqual(a, b)) };
    const { keys, verifier } = credentials(crypto);
    const wiped = (a: Uint8Array) => a.length > 0 && a.every((b) => b === 0);
    // Server: a forged confirmP.
    const server = new V3Server({ crypto: spy, deviceSalt: DEVICE_SALT });
    const client = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys });
    server.receive(sends(client.start()));
    client.receive(sends(server.provideVerifier(verifier)));
    const held = (server as unknown as { state: { secrets: { clientToServer: Uint8Array; serverToClient: Uint8Array } } }).state.secrets;
    const forged = Uint8Array.of(0, 32, ...new Uint8Array(32).fill(7));
    assert.throws(() => server.receive(forged), { code: "ERR_AUTH" });
    assert.ok(wiped(compared.at(-1)![1]!), "the server's confirmP is zeroed");
    assert.ok(wiped(held.clientToServer) && wiped(held.serverToClient), "and its transport keys");
    // Client: a flipped confirmV.
    compared.length = 0;
    const c2 = new V3Client({ crypto: spy, username: "alice", deviceSalt: DEVICE_SALT, keys });
    const s2 = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
    s2.receive(sends(c2.start()));
    const message2 = sends(s2.provideVerifier(verifier)).slice();
    message2[98]! ^= 1;
    assert.throws(() => c2.receive(message2), { code: "ERR_AUTH" });
    assert.ok(wiped(compared.at(-1)![1]!), "the client's expected confirmV is zeroed");
  });

  test("the client rejects a bad confirmV with ERR_AUTH, and a bad shareV", () => {
    const { keys, verifier } = credentials(crypto);
    const cases: [string, (m: Uint8Array) => void][] = [
      ["confirmV bit flip", (m) => (m[98]! ^= 1)],
      ["shareV off the curve", (m) => (m[66]! ^= 1)],
      ["shareV compressed prefix", (m) => (m[2] = 2)],
      ["shareV hybrid prefix", (m) => (m[2] = 6)],
      ["shareV zeroed", (m) => m.fill(0, 2, 67)],
    ];
    for (const [name, mutate] of cases) {
      const client = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys });
      const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
      server.receive(sends(client.start()));
      const message2 = sends(server.provideVerifier(verifier)).slice();
      mutate(message2);
      assert.throws(() => client.receive(message2), { code: "ERR_AUTH", name: "AuthError" }, name);
    }
  });

  test("a shareV of w0·N (Y - w0·N the identity) is ERR_AUTH on the client", () => {
    const { keys } = credentials(crypto);
    const client = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys });
    client.start();
    const N = p256.Point.fromHex("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49");
    const shareV = N.multiply(scalarFromBytes(keys.w0)).toBytes(false);
    assert.throws(() => client.receive(concat(Uint8Array.of(0, 97), shareV, new Uint8Array(32))), { code: "ERR_AUTH" });
  });

  test("busy signal is ERR_BUSY at the client; any other message 2 length is ERR_PROTOCOL", () => {
    const { keys } = credentials(crypto);
    const c = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys });
    c.start();
    assert.throws(() => c.receive(BUSY_SIGNAL), { code: "ERR_BUSY" });
    for (const len of [48, 96, 98, 65]) {
      const d = new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys });
      d.start();
      assert.throws(() => d.receive(Uint8Array.of(0, len)), { code: "ERR_PROTOCOL" }, `${len}`);
    }
  });
});

describe("v3 bad input at the server", () => {
  const crypto = BACKENDS.native;
  const { keys, verifier } = credentials(crypto);
  const hello = () => sends(new V3Client({ crypto, username: "alice", deviceSalt: DEVICE_SALT, keys }).start());

  test("framing: junk after the marker, v2's version byte, empty or non-UTF-8 username, wrong lengths, early bytes", () => {
    const h = hello();
    const bad = [
      Uint8Array.of(0, 0x4e, 0x53, 0x54, 0x50, 2),
      Uint8Array.of(0, 0x41),
      Uint8Array.of(0, 0x4e, 0x53, 0x54, 0x50, 3, 0),
      Uint8Array.of(0, 0x4e, 0x53, 0x54, 0x50, 3, 2, 0xc3, 0x28),
      concat(h.subarray(0, 12), Uint8Array.of(0, 64)),
      concat(h.subarray(0, 12), Uint8Array.of(0, 66)),
      concat(h.subarray(0, 12), Uint8Array.of(0, 33)),
      concat(h.subarray(0, 12), Uint8Array.of(0, 0)),
      concat(h, Uint8Array.of(0)),
    ];
    for (const b of bad) {
      const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
      assert.throws(() => {
        for (const o of server.receive(b)) if (o.type === "need-key") server.provideVerifier(verifier);
      }, { code: "ERR_PROTOCOL", name: "ProtocolError" }, [...b.subarray(0, 16)].join(","));
      assert.equal(server.stateName, "failed");
      assert.throws(() => server.receive(Uint8Array.of(1)), { code: "ERR_PROTOCOL" });
    }
    // An early byte after message 1, while the record is still being looked up.
    const waiting = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
    waiting.receive(h);
    assert.throws(() => waiting.receive(Uint8Array.of(0)), { code: "ERR_PROTOCOL" });
  });

  test("every invalid shareP is ERR_AUTH, like a wrong password, whatever the record", () => {
    const G = p256.Point.BASE.toBytes(false);
    const M = p256.Point.fromHex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f");
    const shares: [string, Uint8Array][] = [
      ["compressed prefix", Uint8Array.of(2, ...G.subarray(1))],
      ["hybrid prefix", Uint8Array.of(7, ...G.subarray(1))],
      ["off the curve", Uint8Array.of(...G.subarray(0, 64), G[64]! ^ 1)],
      ["all zeros", new Uint8Array(65)],
      ["w0·M (X - w0·M is the identity)", M.multiply(scalarFromBytes(verifier.w0)).toBytes(false)],
    ];
    for (const record of [verifier, new FakeVerifiers(crypto).record(utf8("alice"))]) {
      // w0·M is only degenerate for the record whose w0 it was made from.
      for (const [name, share] of record === verifier ? shares : shares.slice(0, -1)) {
        const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
        server.receive(concat(hello().subarray(0, 12), Uint8Array.of(0, 65), share));
        assert.throws(() => server.provideVerifier(record), { code: "ERR_AUTH", name: "AuthError" }, name);
        assert.equal(server.stateName, "failed");
      }
    }
  });

  test("a record whose L is not a point fails as ERR_AUTH on the same path; a misshapen record is a RangeError", () => {
    const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
    server.receive(hello());
    assert.throws(() => server.provideVerifier({ w0: verifier.w0, L: new Uint8Array(65).fill(4) }), { code: "ERR_AUTH" });
    const other = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
    other.receive(hello());
    assert.throws(() => other.provideVerifier({ w0: verifier.w0, L: verifier.L.subarray(0, 33) }), RangeError);
  });

  test("the username is looked up exactly as sent: a leading byte-order mark is kept", () => {
    const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
    const bom = Uint8Array.of(0xef, 0xbb, 0xbf, ...utf8("alice"));
    assert.deepEqual(server.receive(Uint8Array.of(0, 0x4e, 0x53, 0x54, 0x50, 3, bom.length, ...bom)), [{ type: "need-key", username: "\uFEFFalice" }]);
  });

  test("a record provided twice or before the preamble is refused", () => {
    const server = new V3Server({ crypto, deviceSalt: DEVICE_SALT });
    assert.throws(() => server.provideVerifier(verifier), { code: "ERR_PROTOCOL" });
    server.receive(hello());
    server.provideVerifier(verifier);
    assert.throws(() => server.provideVerifier(verifier), { code: "ERR_PROTOCOL" });
  });
});
