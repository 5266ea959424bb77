// SPAKE2+ core against RFC 9383 Appendix C (P256-SHA256-HKDF-SHA256-HMAC-SHA256), with x and y
// injected, on both crypto backends; and the point validation docs/PROTOCOL.md §v3 requires.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { p256 } from "@noble/curves/nist.js";
import { BACKENDS } from "../crypto/index.ts";
import { fromHex, toHex, utf8 } from "../bytes.ts";
import { loadVectors } from "../testing/vectors.ts";
import {
  GROUP_ORDER,
  InvalidPointError,
  confirmP,
  confirmV,
  decodePoint,
  keySchedule,
  proverFinish,
  proverShare,
  transcript,
  verifierPoint,
  verifierShares,
} from "./spake2plus.ts";

interface Case {
  suite: string;
  context: string;
  idProver: string;
  idVerifier: string;
  [field: string]: string;
}
const rfc = loadVectors<{ cases: Case[] }>("spake2plus-rfc9383.json").cases.find((c) => c.suite === "P256-SHA256-HKDF-SHA256-HMAC-SHA256")!;
const big = (hex: string) => BigInt("0x" + hex);

for (const crypto of Object.values(BACKENDS)) {
  describe(`SPAKE2+ RFC 9383 P256-SHA256 vector on the ${crypto.name} backend`, () => {
    test("every field: shares, Z, V, TT, K_main, confirmation keys and MACs, K_shared", () => {
      const w0 = big(rfc.w0!), w1 = big(rfc.w1!), x = big(rfc.x!), y = big(rfc.y!);
      assert.equal(toHex(verifierPoint(w1)), rfc.L);
      const shareP = proverShare(w0, x);
      assert.equal(toHex(shareP), rfc.shareP);
      const v = verifierShares({ w0: fromHex(rfc.w0!), L: fromHex(rfc.L!), shareP, y });
      assert.equal(toHex(v.shareV), rfc.shareV);
      assert.equal(toHex(v.Z), rfc.Z);
      assert.equal(toHex(v.V), rfc.V);
      const p = proverFinish(w0, w1, x, v.shareV);
      assert.equal(toHex(p.Z), rfc.Z);
      assert.equal(toHex(p.V), rfc.V);
      const tt = transcript({ context: utf8(rfc.context), idProver: utf8(rfc.idProver), idVerifier: utf8(rfc.idVerifier), shareP, shareV: v.shareV, Z: v.Z, V: v.V, w0: fromHex(rfc.w0!) });
      assert.equal(toHex(tt), rfc.TT);
      const keys = keySchedule(crypto, tt);
      assert.equal(toHex(keys.K_main), rfc.K_main);
      assert.equal(toHex(keys.K_confirmP), rfc.K_confirmP);
      assert.equal(toHex(keys.K_confirmV), rfc.K_confirmV);
      assert.equal(toHex(keys.K_shared), rfc.K_shared);
      assert.equal(toHex(confirmP(crypto, keys, v.shareV)), rfc.confirmP);
      assert.equal(toHex(confirmV(crypto, keys, shareP)), rfc.confirmV);
    });
  });
}

describe("SPAKE2+ point validation", () => {
  const G = p256.Point.BASE.toBytes(false);
  const P = p256.Point.CURVE().p;
  const be = (n: bigint) => fromHex(n.toString(16).padStart(64, "0"));
  // A point whose x is small enough that x + p still fits in 32 bytes: the way to write a
  // coordinate >= p for a point otherwise on the curve (a small y would need a cube root).
  const small = firstPoint((x) => { try { return p256.Point.fromBytes(Uint8Array.of(2, ...be(x))).toAffine(); } catch { return undefined; } });
  function firstPoint(f: (x: bigint) => { x: bigint; y: bigint } | undefined) {
    for (let x = 1n; x < 100n; x++) { const a = f(x); if (a) return a; }
    throw new Error("no small-x point");
  }

  test("accepts an uncompressed point on the curve", () => {
    assert.ok(decodePoint(G).equals(p256.Point.BASE));
  });

  test("rejects compressed, hybrid, short, long, off-curve, out-of-range and identity encodings", () => {
    const gx = G.subarray(1, 33), gy = G.subarray(33);
    const bad: [string, Uint8Array][] = [
      ["compressed 02", p256.Point.BASE.toBytes(true)],
      ["02 prefix on 65 bytes", Uint8Array.of(2, ...gx, ...gy)],
      ["03 prefix on 65 bytes", Uint8Array.of(3, ...gx, ...gy)],
      ["hybrid 06", Uint8Array.of(6, ...gx, ...gy)],
      ["hybrid 07", Uint8Array.of(7, ...gx, ...gy)],
      ["64 bytes", G.subarray(0, 64)],
      ["66 bytes", Uint8Array.of(...G, 0)],
      ["empty", new Uint8Array(0)],
      ["identity 00", new Uint8Array([0])],
      ["65 zero bytes", new Uint8Array(65)],
      ["04 and zeros", Uint8Array.of(4, ...new Uint8Array(64))],
      ["off the curve", Uint8Array.of(4, ...gx, ...gy.map((b, i) => (i === 31 ? b ^ 1 : b)))],
      ["x + p for a point with a small x", Uint8Array.of(4, ...be(small.x + P), ...be(small.y))],
      ["x = p", Uint8Array.of(4, ...be(P), ...gy)],
    ];
    for (const [name, bytes] of bad) assert.throws(() => decodePoint(bytes), InvalidPointError, name);
  });

  test("a share that makes X - w0·M the identity is rejected by the verifier, Y - w0·N by the prover", () => {
    const w0 = 12345n;
    const M = decodePoint(fromHex("04886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f5ff355163e43ce224e0b0e65ff02ac8e5c7be09419c785e0ca547d55a12e2d20"));
    const N = decodePoint(fromHex("04d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b4907d60aa6bfade45008a636337f5168c64d9bd36034808cd564490b1e656edbe7"));
    const L = verifierPoint(777n);
    const w0Bytes = fromHex(w0.toString(16).padStart(64, "0"));
    assert.throws(() => verifierShares({ w0: w0Bytes, L, shareP: M.multiply(w0).toBytes(false), y: 5n }), InvalidPointError);
    assert.throws(() => proverFinish(w0, 777n, 9n, N.multiply(w0).toBytes(false)), InvalidPointError);
    assert.ok(GROUP_ORDER > 0n);
  });
});
