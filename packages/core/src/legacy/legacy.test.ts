// The reference protocol machines against ../shared/vectors/legacy-dart-reference.json (every byte,
// nonces injected), every segmentation of the handshake and the records, and every failure path.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BACKENDS, type CryptoBackend } from "../crypto/index.ts";
import { concat, fromHex, toHex, utf8 } from "../bytes.ts";
import { NstpError } from "../errors.ts";
import type { Output } from "../events.ts";
import { loadVectors } from "../testing/vectors.ts";
import { LegacyClient } from "./client.ts";
import { LegacyServer } from "./server.ts";
import { derivePsk, sessionKey } from "./keys.ts";
import { MAX_FALSE_BOUNDARIES } from "./server.ts";
import { plantedRecord } from "@nstp/testkit";

interface Vector {
  name: string; device_salt: string; username: string; password: string; client_nonce: string; session_nonce: string;
  psk: string; session_key: string; client_hello: string; server_hello: string; client_proof: string; server_proof: string;
  records: { counter: number; plaintext: string; client_frame: string; reply_plaintext: string; reply_nonce: string; server_frame: string }[];
}
const { vectors } = loadVectors<{ vectors: Vector[] }>("legacy-dart-reference.json");

/** A random source that hands out the given values in order, then fails loudly. */
function scripted(values: Uint8Array[]): (n: number) => Uint8Array {
  return (n) => {
    const v = values.shift();
    if (!v || v.length !== n) throw new Error(`scripted random: wanted ${n} bytes`);
    return v;
  };
}

const sends = (out: Output[]) => concat(...out.filter((o) => o.type === "send").map((o) => (o as { data: Uint8Array }).data));
const messages = (out: Output[]) => out.filter((o) => o.type === "message").map((o) => new TextDecoder().decode((o as { data: Uint8Array }).data));

for (const backend of Object.values(BACKENDS) as CryptoBackend[]) {
  describe(`legacy vectors (${backend.name})`, () => {
    for (const v of vectors) {
      test(v.name, async () => {
        const psk = backend.name === "native"
          ? await derivePsk(backend, { password: v.password, username: v.username, deviceSalt: fromHex(v.device_salt) })
          : fromHex(v.psk); // pure-JS PBKDF2 at 600k iterations is checked once below
        assert.equal(toHex(psk), v.psk);

        const client = new LegacyClient({ crypto: backend, username: v.username, psk, random: scripted([fromHex(v.client_nonce)]) });
        const server = new LegacyServer({ crypto: backend, random: scripted([fromHex(v.session_nonce), ...v.records.map((r) => fromHex(r.reply_nonce))]) });

        const hello = sends(client.start());
        assert.equal(toHex(hello), v.client_hello);
        let out = server.receive(hello);
        assert.equal(toHex(sends(out)), v.server_hello);
        assert.deepEqual(out.find((o) => o.type === "need-key"), { type: "need-key", username: v.username });
        const proof = sends(client.receive(sends(out)));
        assert.equal(toHex(proof), v.client_proof);
        assert.deepEqual(server.receive(proof), []); // waits for the key
        out = server.provideKey(psk);
        assert.equal(toHex(sends(out)), v.server_proof);
        assert.equal(server.stateName, "established");
        assert.deepEqual(client.receive(sends(out)), [{ type: "established", username: v.username }]);

        for (const r of v.records) {
          const frame = client.sealMessage(utf8(r.plaintext));
          assert.equal(toHex(frame), r.client_frame);
          assert.deepEqual(messages(server.receive(frame)), [r.plaintext]);
          const reply = server.sealReply(utf8(r.reply_plaintext));
          assert.equal(toHex(reply), r.server_frame);
          assert.deepEqual(messages(client.receive(reply)), [r.reply_plaintext]);
        }
      });
    }
  });
}

test("noble PBKDF2 reproduces the reference PSK at 600,000 iterations", async () => {
  const v = vectors[0]!;
  const psk = await derivePsk(BACKENDS.noble, { password: v.password, username: v.username, deviceSalt: fromHex(v.device_salt) });
  assert.equal(toHex(psk), v.psk);
});

describe("legacy segmentation", () => {
  const v = vectors[0]!;
  const crypto = BACKENDS.native;
  const psk = fromHex(v.psk);
  const clientStream = concat(fromHex(v.client_hello), fromHex(v.client_proof), ...v.records.map((r) => fromHex(r.client_frame)));
  
  function serverFor(): LegacyServer {
    return new LegacyServer({ crypto, random: scripted([fromHex(v.session_nonce)]) });
  }
  function feedServer(server: LegacyServer, parts: Uint8Array[]): string[] {
    const got: string[] = [];
    for (const p of parts) {
      for (const o of server.receive(p)) {
        if (o.type === "need-key") server.provideKey(psk).forEach((x) => x.type === "message" && got.push(new TextDecoder().decode(x.data)));
        if (o.type === "message") got.push(new TextDecoder().decode(o.data));
      }
    }
    return got;
  }
  const expected = v.records.map((r) => r.plaintext);

  test("server: the whole client stream cut at every byte position", () => {
    for (let cut = 1; cut < clientStream.length; cut++) {
      const got = feedServer(serverFor(), [clientStream.subarray(0, cut), clientStream.subarray(cut)]);
      assert.deepEqual(got, expected, `cut at ${cut}`);
    }
  });

  test("server: one byte at a time, and everything in one write", () => {
    assert.deepEqual(feedServer(serverFor(), [...clientStream].map((b) => Uint8Array.of(b))), expected);
    assert.deepEqual(feedServer(serverFor(), [clientStream]), expected);
  });

  test("server: records cut at two random positions", () => {
    for (let i = 0; i < 300; i++) {
      const a = 1 + Math.floor(Math.random() * (clientStream.length - 2));
      const b = a + 1 + Math.floor(Math.random() * (clientStream.length - a - 1));
      const got = feedServer(serverFor(), [clientStream.subarray(0, a), clientStream.subarray(a, b), clientStream.subarray(b)]);
      assert.deepEqual(got, expected, `cuts ${a},${b}`);
    }
  });

  test("server: an honest 60 KiB record in 536-byte segments stays within the trial budget", () => {
    const client = new LegacyClient({ crypto, username: v.username, psk, random: scripted([fromHex(v.client_nonce)]) });
    client.start();
    client.receive(concat(fromHex(v.server_hello), fromHex(v.server_proof)));
    const big = crypto.randomBytes(60 * 1024);
    const stream = concat(fromHex(v.client_hello), fromHex(v.client_proof), client.sealMessage(big));
    const parts: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i += 536) parts.push(stream.subarray(i, i + 536));
    const server = serverFor();
    const got: Uint8Array[] = [];
    for (const p of parts) {
      for (const o of server.receive(p)) {
        if (o.type === "need-key") server.provideKey(psk);
        if (o.type === "message") got.push(o.data);
      }
    }
    assert.equal(got.length, 1);
    assert.deepEqual(got[0], big);
  });

  function clientFor(): LegacyClient {
    return new LegacyClient({ crypto, username: v.username, psk, random: scripted([fromHex(v.client_nonce)]) });
  }
  /** Feeds the handshake in `hs` pieces, sends every message, then feeds the replies in `rs` pieces. */
  function feedClient(client: LegacyClient, hs: Uint8Array[], rs: Uint8Array[]): string[] {
    client.start();
    const got: string[] = [];
    for (const p of hs) client.receive(p);
    assert.equal(client.stateName, "established");
    for (const r of v.records) client.sealMessage(utf8(r.plaintext));
    for (const p of rs) for (const o of client.receive(p)) if (o.type === "message") got.push(new TextDecoder().decode(o.data));
    return got;
  }
  const handshake = concat(fromHex(v.server_hello), fromHex(v.server_proof));
  const replies = concat(...v.records.map((r) => fromHex(r.server_frame)));
  const expectedReplies = v.records.map((r) => r.reply_plaintext);

  test("client: handshake and replies cut at every byte position, byte by byte, and in one piece", () => {
    for (let cut = 1; cut < handshake.length; cut++) {
      assert.deepEqual(feedClient(clientFor(), [handshake.subarray(0, cut), handshake.subarray(cut)], [replies]), expectedReplies, `handshake cut ${cut}`);
    }
    for (let cut = 1; cut < replies.length; cut++) {
      assert.deepEqual(feedClient(clientFor(), [handshake], [replies.subarray(0, cut), replies.subarray(cut)]), expectedReplies, `reply cut ${cut}`);
    }
    const bytes = (b: Uint8Array) => [...b].map((x) => Uint8Array.of(x));
    assert.deepEqual(feedClient(clientFor(), bytes(handshake), bytes(replies)), expectedReplies);
  });
});

describe("legacy failures close with typed errors", () => {
  const v = vectors[0]!;
  const crypto = BACKENDS.native;
  const psk = fromHex(v.psk);
  const records = v.records.map((r) => fromHex(r.client_frame));

  function established(): LegacyServer {
    const s = new LegacyServer({ crypto, random: scripted([fromHex(v.session_nonce)]) });
    s.receive(fromHex(v.client_hello));
    s.receive(fromHex(v.client_proof));
    s.provideKey(psk);
    assert.equal(s.stateName, "established");
    return s;
  }
  function code(fn: () => unknown): string {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof NstpError, `expected NstpError, got ${e}`);
      return e.code;
    }
    return "no error";
  }

  test("a backend that seals fewer bytes than laid out fails the seal: no uninitialised memory leaves", () => {
    // Records of 4 KiB and more are laid out in memory that is not zero-filled (bytes.allocOverwritten).
    const short: CryptoBackend = { ...crypto, aesGcmSealInto: (...a: Parameters<CryptoBackend["aesGcmSealInto"]>) => crypto.aesGcmSealInto(...a) - 1 };
    let first = true;
    const random = (n: number) => (first ? ((first = false), fromHex(v.session_nonce)) : crypto.randomBytes(n));
    const s = new LegacyServer({ crypto: short, random });
    s.receive(fromHex(v.client_hello));
    s.receive(fromHex(v.client_proof));
    s.provideKey(psk);
    assert.equal(s.stateName, "established");
    assert.equal(code(() => s.seal([new Uint8Array(8192)])), "ERR_PROTOCOL");
  });

  test("wrong password: the proof fails with ERR_AUTH and nothing is sent", () => {
    const s = new LegacyServer({ crypto, random: scripted([fromHex(v.session_nonce)]) });
    s.receive(fromHex(v.client_hello));
    s.receive(fromHex(v.client_proof));
    assert.equal(code(() => s.provideKey(crypto.randomBytes(32))), "ERR_AUTH");
    assert.equal(s.stateName, "failed");
  });

  test("client rejects a wrong server proof", () => {
    const c = new LegacyClient({ crypto, username: v.username, psk, random: scripted([fromHex(v.client_nonce)]) });
    c.start();
    c.receive(fromHex(v.server_hello));
    const bad = fromHex(v.server_proof);
    bad[0]! ^= 1;
    assert.equal(code(() => c.receive(bad)), "ERR_AUTH");
  });

  test("empty or invalid UTF-8 username", () => {
    assert.equal(code(() => new LegacyServer({ crypto }).receive(Uint8Array.of(0))), "ERR_PROTOCOL");
    const badUtf8 = concat(Uint8Array.of(2, 0xc3, 0x28), new Uint8Array(16));
    assert.equal(code(() => new LegacyServer({ crypto }).receive(badUtf8)), "ERR_PROTOCOL");
  });

  test("tampered record: any flipped bit closes with ERR_DECRYPT, never a message", () => {
    for (let i = 12; i < records[0]!.length; i++) {
      const bad = records[0]!.slice();
      bad[i]! ^= 0x80;
      const s = established();
      // A tampered record may look incomplete; it is settled as soon as the next record arrives.
      let out: Output[] = [];
      const c = code(() => { out = [...s.receive(bad), ...s.receive(records[1]!)]; });
      assert.equal(out.filter((o) => o.type === "message").length, 0, `byte ${i}`);
      assert.equal(c, "ERR_DECRYPT", `byte ${i}`);
    }
  });

  test("tampered nonce prefix closes at once", () => {
    const bad = records[0]!.slice();
    bad[3]! ^= 1;
    assert.equal(code(() => established().receive(bad)), "ERR_DECRYPT");
  });

  test("replayed and reordered records", () => {
    const s = established();
    s.receive(records[0]!);
    assert.equal(code(() => s.receive(records[0]!)), "ERR_DECRYPT");
    const t = established();
    t.receive(records[2]!);
    assert.equal(code(() => t.receive(records[1]!)), "ERR_DECRYPT");
  });

  test("a reply reflected back to the server is refused", () => {
    const s = established();
    assert.equal(code(() => s.receive(fromHex(v.records[0]!.server_frame))), "ERR_DECRYPT");
  });

  test("client: reflected record, replayed reply, unsolicited reply, bad tag", () => {
    function ready(): LegacyClient {
      const c = new LegacyClient({ crypto, username: v.username, psk, random: scripted([fromHex(v.client_nonce)]) });
      c.start();
      c.receive(concat(fromHex(v.server_hello), fromHex(v.server_proof)));
      return c;
    }
    const reply0 = fromHex(v.records[0]!.server_frame);
    let c = ready();
    assert.equal(code(() => c.receive(reply0)), "ERR_PROTOCOL"); // nothing outstanding
    c = ready();
    const own = c.sealMessage(utf8("x"));
    const reflected = concat(Uint8Array.of(own.length >> 8, own.length & 0xff), own);
    assert.equal(code(() => c.receive(reflected)), "ERR_DECRYPT");
    c = ready();
    c.sealMessage(utf8("a"));
    c.sealMessage(utf8("b"));
    c.receive(reply0);
    assert.equal(code(() => c.receive(reply0)), "ERR_DECRYPT");
    c = ready();
    c.sealMessage(utf8("a"));
    const bad = reply0.slice();
    bad[bad.length - 1]! ^= 1;
    assert.equal(code(() => c.receive(bad)), "ERR_DECRYPT");
    c = ready();
    c.sealMessage(utf8("a"));
    assert.equal(code(() => c.receive(Uint8Array.of(0, 5))), "ERR_PROTOCOL");
  });

  test("a message over the maximum closes with ERR_TOO_LARGE before it is buffered", () => {
    const s = new LegacyServer({ crypto, maxMessageSize: 100, random: scripted([fromHex(v.session_nonce)]) });
    s.receive(fromHex(v.client_hello));
    s.receive(fromHex(v.client_proof));
    s.provideKey(psk);
    const junk = concat(fromHex(v.session_nonce), new Uint8Array(4), new Uint8Array(200));
    assert.equal(code(() => s.receive(junk)), "ERR_TOO_LARGE");
  });

  test("records with the session nonce planted every 8 bytes: a few trials, then closed, however spread", () => {
    let opens = 0;
    const counting: CryptoBackend = { ...crypto, aesGcmOpen: (...a) => (opens++, crypto.aesGcmOpen(...a)) };
    const key = sessionKey(crypto, psk, fromHex(v.client_nonce), fromHex(v.session_nonce));
    const established = (): LegacyServer => {
      const s = new LegacyServer({ crypto: counting, random: scripted([fromHex(v.session_nonce)]) });
      s.receive(fromHex(v.client_hello));
      s.receive(fromHex(v.client_proof));
      s.provideKey(psk);
      return s;
    };
    // One 64 KiB record holding 8,000 planted nonces (each once cost a trial decryption of the bytes
    // before it) ends after MAX_FALSE_BOUNDARIES failed trials, not 8,000.
    const big = plantedRecord(key, fromHex(v.session_nonce), 0, 64_000);
    assert.equal(code(() => established().receive(big)), "ERR_DECRYPT");
    assert.ok(opens <= MAX_FALSE_BOUNDARIES + 1, `${opens} trial decryptions`);
    // Spread over records that each verify, a few planted nonces per record: the count is per session,
    // not reset by a verified record.
    opens = 0;
    const s = established();
    let err = "no error";
    let delivered = 0;
    for (let i = 0; i < 100 && err === "no error"; i++) {
      err = code(() => (delivered += messages(s.receive(plantedRecord(key, fromHex(v.session_nonce), i, 40))).length));
    }
    assert.equal(err, "ERR_DECRYPT");
    assert.ok(delivered < MAX_FALSE_BOUNDARIES && opens <= 2 * MAX_FALSE_BOUNDARIES + 2, `${delivered} records, ${opens} trials`);
  });

  test("a peer dribbling a large record one byte at a time exhausts the trial budget, bounded", () => {
    const s = established();
    const junk = concat(fromHex(v.session_nonce), new Uint8Array(4), new Uint8Array(64 * 1024));
    let err = "no error";
    for (let i = 0; i < junk.length && err === "no error"; i++) err = code(() => s.receive(junk.subarray(i, i + 1)));
    assert.ok(err === "ERR_PROTOCOL" || err === "ERR_TOO_LARGE", err);
  });
});
