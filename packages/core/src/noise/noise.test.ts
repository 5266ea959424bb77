// The Noise implementation against the cacophony vectors (haskell-cryptography/cacophony, filtered to
// 25519_AESGCM_SHA256; ../shared/vectors/noise-cacophony-aesgcm-sha256.json), on both backends.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BACKENDS, type CryptoBackend } from "../crypto/index.ts";
import { fromHex, toHex } from "../bytes.ts";
import { loadVectors } from "../testing/vectors.ts";
import { CipherState, HandshakeState, aesGcmNonce } from "./index.ts";

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_psks?: string[];
  init_static?: string;
  init_ephemeral: string;
  resp_prologue: string;
  resp_psks?: string[];
  resp_static?: string;
  resp_ephemeral: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

const { vectors } = loadVectors<{ vectors: Vector[] }>("noise-cacophony-aesgcm-sha256.json");

function run(crypto: CryptoBackend, v: Vector): void {
  const side = (initiator: boolean) =>
    new HandshakeState({
      crypto,
      protocolName: v.protocol_name,
      initiator,
      prologue: fromHex(initiator ? v.init_prologue : v.resp_prologue),
      psks: (initiator ? v.init_psks : v.resp_psks)?.map(fromHex),
      s: (initiator ? v.init_static : v.resp_static) ? fromHex((initiator ? v.init_static : v.resp_static)!) : undefined,
      e: fromHex(initiator ? v.init_ephemeral : v.resp_ephemeral),
    });
  const init = side(true);
  const resp = side(false);
  let i = 0;
  // Handshake messages, alternating from the initiator.
  for (; !init.finished; i++) {
    const [writer, reader] = init.myTurn ? [init, resp] : [resp, init];
    const m = v.messages[i]!;
    const ct = writer.writeMessage(fromHex(m.payload));
    assert.equal(toHex(ct), m.ciphertext, `${v.protocol_name} handshake message ${i}`);
    assert.equal(toHex(reader.readMessage(ct)), m.payload);
  }
  assert.ok(resp.finished);
  assert.equal(toHex(init.handshakeHash), v.handshake_hash);
  assert.equal(toHex(resp.handshakeHash), v.handshake_hash);
  const a = init.split();
  const b = resp.split();
  // Transport messages keep alternating; cacophony's one-way rule does not apply to these patterns.
  for (; i < v.messages.length; i++) {
    const m = v.messages[i]!;
    const [tx, rx] = i % 2 === 0 ? [a.send, b.receive] : [b.send, a.receive];
    const ct = tx.encryptWithAd(new Uint8Array(0), fromHex(m.payload));
    assert.equal(toHex(ct), m.ciphertext, `${v.protocol_name} transport message ${i}`);
    assert.equal(toHex(rx.decryptWithAd(new Uint8Array(0), ct)), m.payload);
  }
}

for (const crypto of Object.values(BACKENDS)) {
  describe(`Noise on the ${crypto.name} backend`, () => {
    for (const v of vectors) {
      test(`cacophony ${v.protocol_name}`, () => run(crypto, v));
    }
  });
}

describe("Noise state machine rules", () => {
  const crypto = BACKENDS.native;
  const v = vectors.find((x) => x.protocol_name === "Noise_NNpsk0_25519_AESGCM_SHA256")!;
  const make = (initiator: boolean, psk = v.init_psks![0]!) =>
    new HandshakeState({ crypto, protocolName: v.protocol_name, initiator, prologue: fromHex(v.init_prologue), psks: [fromHex(psk)] });

  test("a wrong PSK fails the first message and leaves the reader's state untouched", () => {
    const init = make(true, "00".repeat(32));
    const resp = make(false);
    const m1 = init.writeMessage(new Uint8Array(0));
    const before = toHex(resp.handshakeHash);
    assert.throws(() => resp.readMessage(m1), { code: "ERR_DECRYPT" });
    assert.equal(toHex(resp.handshakeHash), before);
    // The same reader still accepts the right initiator afterwards: nothing was committed.
    assert.deepEqual(resp.readMessage(make(true).writeMessage(new Uint8Array(0))), new Uint8Array(0));
  });

  test("a changed prologue fails the handshake", () => {
    const init = new HandshakeState({ crypto, protocolName: v.protocol_name, initiator: true, prologue: fromHex("00"), psks: [fromHex(v.init_psks![0]!)] });
    assert.throws(() => make(false).readMessage(init.writeMessage(new Uint8Array(0))), { code: "ERR_DECRYPT" });
  });

  test("a bit flip anywhere in a message fails it", () => {
    const m1 = make(true).writeMessage(new Uint8Array(0));
    for (let i = 0; i < m1.length; i++) {
      const bad = m1.slice();
      bad[i]! ^= 1 << (i % 8);
      assert.throws(() => make(false).readMessage(bad), (e: Error & { code?: string }) => e.code === "ERR_DECRYPT", `byte ${i}`);
    }
  });

  test("messages out of turn and truncated messages are protocol errors", () => {
    const init = make(true);
    assert.throws(() => init.readMessage(new Uint8Array(48)), { code: "ERR_PROTOCOL" });
    assert.throws(() => make(false).writeMessage(new Uint8Array(0)), { code: "ERR_PROTOCOL" });
    assert.throws(() => make(false).readMessage(new Uint8Array(31)), { code: "ERR_PROTOCOL" });
  });

  test("an all-zero (small-order) ephemeral is refused as a forged message", () => {
    const m1 = make(true).writeMessage(new Uint8Array(0));
    const resp = make(false);
    resp.readMessage(m1);
    const reply = new Uint8Array(48);
    const init = make(true);
    init.writeMessage(new Uint8Array(0));
    assert.throws(() => init.readMessage(reply), { code: "ERR_DECRYPT" });
  });
});

describe("CipherState", () => {
  const crypto = BACKENDS.native;
  test("nonce layout is 32 zero bits then the counter big-endian (§12.3)", () => {
    assert.equal(toHex(aesGcmNonce(1)), "000000000000000000000001");
    assert.equal(toHex(aesGcmNonce(2 ** 40 + 5)), "000000000000010000000005");
  });

  test("Rekey is ENCRYPT(k, 2^64-1, empty, zeros)[0:32] and keeps the counter (§4.2)", () => {
    const k = crypto.randomBytes(32);
    const c = new CipherState(crypto, k);
    c.encryptWithAd(new Uint8Array(0), new Uint8Array(1));
    c.rekey();
    const expectedKey = crypto.aesGcmSeal(k, fromHex("00000000ffffffffffffffff"), new Uint8Array(32)).subarray(0, 32);
    const ct = c.encryptWithAd(new Uint8Array(0), new Uint8Array(3));
    assert.deepEqual(ct, crypto.aesGcmSeal(expectedKey, aesGcmNonce(1), new Uint8Array(3)));
  });

  test("the counter limit ends the session with ERR_EXHAUSTED", () => {
    const c = new CipherState(crypto, crypto.randomBytes(32), 2);
    c.encryptWithAd(new Uint8Array(0), new Uint8Array(0));
    c.encryptWithAd(new Uint8Array(0), new Uint8Array(0));
    assert.throws(() => c.encryptWithAd(new Uint8Array(0), new Uint8Array(0)), { code: "ERR_EXHAUSTED" });
  });

  test("a failed decryption does not advance the counter", () => {
    const k = crypto.randomBytes(32);
    const tx = new CipherState(crypto, k);
    const rx = new CipherState(crypto, k);
    const ct = tx.encryptWithAd(new Uint8Array(0), new Uint8Array([1, 2]));
    const bad = ct.slice();
    bad[0]! ^= 1;
    assert.throws(() => rx.decryptWithAd(new Uint8Array(0), bad), { code: "ERR_DECRYPT" });
    assert.equal(rx.n, 0);
    assert.deepEqual(rx.decryptWithAd(new Uint8Array(0), ct), new Uint8Array([1, 2]));
  });
});
