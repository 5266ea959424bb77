// v3 credentials: w0/w1 from the PSK exactly as docs/PROTOCOL.md §v3 says (recomputed here with
// node:crypto's own HKDF), verifier records, and the fake records for unknown users.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { hkdfSync } from "node:crypto";
import { p256 } from "@noble/curves/nist.js";
import { BACKENDS } from "../crypto/index.ts";
import { concat, fromHex, toHex, utf8 } from "../bytes.ts";
import { derivePsk } from "../keys/password.ts";
import {
  FakeVerifiers,
  checkVerifier,
  deriveProverKeys,
  proverKeysFromPsk,
  verifierFromJson,
  verifierFromProverKeys,
  verifierFromPsk,
  verifierToJson,
} from "./keys.ts";
import { GROUP_ORDER } from "./spake2plus.ts";

const le64 = (n: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
};
const num = (b: Uint8Array) => BigInt("0x" + toHex(b));

for (const crypto of Object.values(BACKENDS)) {
  describe(`v3 keys on the ${crypto.name} backend`, () => {
    const psk = crypto.sha256(utf8("a psk"));
    const salt = fromHex("0102030405060708");
    const user = utf8("élise");

    test("w0 || w1 = HKDF(empty, PSK, 'nstp/3 w0w1' || len salt || salt || len user || user, 80), halves mod n", () => {
      const info = concat(utf8("nstp/3 w0w1"), le64(salt.length), salt, le64(user.length), user);
      const okm = new Uint8Array(hkdfSync("sha256", psk, new Uint8Array(0), info, 80));
      const keys = proverKeysFromPsk(crypto, psk, salt, user);
      assert.equal(num(keys.w0), num(okm.subarray(0, 40)) % GROUP_ORDER);
      assert.equal(num(keys.w1), num(okm.subarray(40)) % GROUP_ORDER);
      assert.equal(keys.w0.length, 32);
      assert.equal(keys.w1.length, 32);
    });

    test("the salt/username split is unambiguous where PBKDF2's salt is not", () => {
      const a = proverKeysFromPsk(crypto, psk, utf8("ab"), utf8("c"));
      const b = proverKeysFromPsk(crypto, psk, utf8("a"), utf8("bc"));
      assert.notDeepEqual(a.w0, b.w0);
    });

    test("L = w1·G; from the PSK directly the same record", () => {
      const keys = proverKeysFromPsk(crypto, psk, salt, user);
      const v = verifierFromProverKeys(keys);
      assert.deepEqual(v.L, p256.Point.BASE.multiply(num(keys.w1)).toBytes(false));
      assert.deepEqual(v, verifierFromPsk(crypto, psk, salt, user));
    });
  });
}

describe("v3 records", () => {
  const crypto = BACKENDS.native;

  test("deriveProverKeys is the existing PBKDF2 PSK, then the HKDF", async () => {
    const p = { password: "pw", username: "bob", deviceSalt: fromHex("aabb"), iterations: 1000 };
    const psk = await derivePsk(crypto, p);
    assert.deepEqual(await deriveProverKeys(crypto, p), proverKeysFromPsk(crypto, psk, p.deviceSalt, utf8("bob")));
  });

  test("records round-trip through JSON; a w0 at or above n, or a wrong size, is refused", () => {
    const v = verifierFromPsk(crypto, new Uint8Array(32).fill(7), utf8("s"), utf8("u"));
    assert.deepEqual(verifierFromJson(verifierToJson(v)), v);
    assert.match(verifierToJson(v).L, /^04[0-9a-f]{128}$/);
    const n = fromHex(GROUP_ORDER.toString(16));
    assert.throws(() => checkVerifier({ w0: n, L: v.L }), RangeError);
    assert.throws(() => checkVerifier({ w0: v.w0.subarray(1), L: v.L }), RangeError);
    assert.throws(() => checkVerifier({ w0: v.w0, L: v.L.subarray(1) }), RangeError);
  });

  test("fake records: w0 = HKDF(secret, 'nstp/3 fake' || username, 40) mod n, one L per factory", () => {
    const secret = new Uint8Array(32).fill(9);
    const fakes = new FakeVerifiers(crypto, secret);
    const a = fakes.record(utf8("mallory"));
    const okm = new Uint8Array(hkdfSync("sha256", secret, new Uint8Array(0), concat(utf8("nstp/3 fake"), utf8("mallory")), 40));
    assert.equal(num(a.w0), num(okm) % GROUP_ORDER);
    assert.deepEqual(fakes.record(utf8("mallory")), a, "stable per username");
    const b = fakes.record(utf8("trudy"));
    assert.notDeepEqual(b.w0, a.w0);
    assert.deepEqual(b.L, a.L, "one L per factory");
    assert.notDeepEqual(new FakeVerifiers(crypto, secret).record(utf8("mallory")).L, a.L, "a random L per process");
    assert.deepEqual(checkVerifier(a), a, "shaped like a real record");
    assert.ok(p256.Point.fromBytes(a.L));
  });
});
