// Both crypto backends against Wycheproof (C2SP/wycheproof testvectors_v1, ../shared/vectors) and
// against each other on random inputs.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BACKENDS, type CryptoBackend } from "./index.ts";
import { fromHex, toHex } from "../bytes.ts";
import { loadVectors } from "../testing/vectors.ts";
import { hkdfSha256 } from "./hkdf.ts";

interface Group<T> { tests: T[]; [k: string]: unknown }
interface Suite<T> { testGroups: Group<T>[] }
type Result = "valid" | "invalid" | "acceptable";

const aesGcm = loadVectors<Suite<{ tcId: number; key: string; iv: string; aad: string; msg: string; ct: string; tag: string; result: Result }>>("wycheproof-aes_gcm.json");
const hmac = loadVectors<Suite<{ tcId: number; key: string; msg: string; tag: string; result: Result }>>("wycheproof-hmac_sha256.json");
const pbkdf2 = loadVectors<Suite<{ tcId: number; password: string; salt: string; iterationCount: number; dkLen: number; dk: string; result: Result }>>("wycheproof-pbkdf2_hmacsha256.json");
const hkdf = loadVectors<Suite<{ tcId: number; ikm: string; salt: string; info: string; size: number; okm: string; result: Result }>>("wycheproof-hkdf_sha256.json");
const x25519 = loadVectors<Suite<{ tcId: number; public: string; private: string; shared: string; result: Result; flags: string[] }>>("wycheproof-x25519.json");

for (const backend of Object.values(BACKENDS) as CryptoBackend[]) {
  describe(`crypto backend ${backend.name}`, () => {
    test("Wycheproof AES-256-GCM (96-bit IV, 128-bit tag)", () => {
      let run = 0;
      for (const g of aesGcm.testGroups) {
        if (g.keySize !== 256 || g.ivSize !== 96 || g.tagSize !== 128) continue;
        for (const t of g.tests) {
          const key = fromHex(t.key), iv = fromHex(t.iv), aad = fromHex(t.aad);
          const sealed = fromHex(t.ct + t.tag);
          const opened = backend.aesGcmOpen(key, iv, sealed, aad);
          if (t.result === "valid") {
            assert.equal(toHex(backend.aesGcmSeal(key, iv, fromHex(t.msg), aad)), t.ct + t.tag, `seal tcId ${t.tcId}`);
            assert.ok(opened, `open tcId ${t.tcId}`);
            assert.equal(toHex(opened), t.msg, `open tcId ${t.tcId}`);
          } else if (t.result === "invalid") {
            assert.equal(opened, null, `tcId ${t.tcId} must be rejected`);
          }
          run++;
        }
      }
      assert.ok(run > 50, `ran ${run} AES-256-GCM cases`);
    });

    test("Wycheproof HMAC-SHA256 (full-length tags)", () => {
      let run = 0;
      for (const g of hmac.testGroups) {
        if (g.tagSize !== 256) continue;
        for (const t of g.tests) {
          const mac = toHex(backend.hmacSha256(fromHex(t.key), fromHex(t.msg)));
          if (t.result === "valid") assert.equal(mac, t.tag, `tcId ${t.tcId}`);
          else assert.notEqual(mac, t.tag, `tcId ${t.tcId}`);
          run++;
        }
      }
      assert.ok(run > 50);
    });

    test("Wycheproof HKDF-SHA256 (the KDF inside Noise)", () => {
      let run = 0;
      for (const g of hkdf.testGroups) {
        for (const t of g.tests) {
          const args = [backend, fromHex(t.salt), fromHex(t.ikm), fromHex(t.info), t.size] as const;
          if (t.result === "valid") assert.equal(toHex(hkdfSha256(...args)), t.okm, `tcId ${t.tcId}`);
          else assert.throws(() => hkdfSha256(...args), RangeError, `tcId ${t.tcId}`);
          run++;
        }
      }
      assert.ok(run > 50, `ran ${run} HKDF cases`);
    });

    test("Wycheproof PBKDF2-HMAC-SHA256", async () => {
      let run = 0;
      for (const g of pbkdf2.testGroups) {
        for (const t of g.tests) {
          if (t.result !== "valid") continue;
          const dk = await backend.pbkdf2Sha256(fromHex(t.password), fromHex(t.salt), t.iterationCount, t.dkLen);
          assert.equal(toHex(dk), t.dk, `tcId ${t.tcId}`);
          run++;
        }
      }
      assert.ok(run > 20);
    });

    test("Wycheproof X25519", () => {
      let run = 0;
      for (const g of x25519.testGroups) {
        for (const t of g.tests) {
          const allZero = /^0+$/.test(t.shared);
          let shared: string | undefined;
          try {
            shared = toHex(backend.x25519(fromHex(t.private), fromHex(t.public)));
          } catch {
            shared = undefined;
          }
          if (allZero) assert.equal(shared, undefined, `tcId ${t.tcId}: all-zero secret must be refused`);
          else if (t.result !== "invalid") assert.equal(shared, t.shared, `tcId ${t.tcId}`);
          run++;
        }
      }
      assert.ok(run > 400);
    });

    test("randomBytes: any length, WebCrypto's 64 KiB per-call limit included", () => {
      for (const n of [0, 1, 65_536, 65_537, 65_536 + 64, 200_000]) {
        const r = backend.randomBytes(n);
        assert.equal(r.length, n);
        // A tail of 32 bytes or more is all zero with probability 2^-256; a shorter one (65,537's single byte is
        // zero once in 256 runs) proves nothing, so only its length is checked.
        if (n - 65_536 >= 32) assert.ok(r.subarray(65_536).some((x) => x !== 0), "the tail is filled too");
      }
    });

    test("aesGcmSealInto equals aesGcmSeal of the joined parts, at any offset", () => {
      const key = backend.randomBytes(32), nonce = backend.randomBytes(12);
      const parts = [backend.randomBytes(3), backend.randomBytes(0), backend.randomBytes(5000), backend.randomBytes(17)];
      const out = new Uint8Array(7 + 5020 + 16 + 5).fill(0xee);
      assert.equal(backend.aesGcmSealInto(key, nonce, parts, out, 7), 5020 + 16);
      const joined = new Uint8Array(5020);
      let off = 0;
      for (const p of parts) (joined.set(p, off), (off += p.length));
      assert.deepEqual(out.subarray(7, 7 + 5036), backend.aesGcmSeal(key, nonce, joined));
      assert.ok(out.subarray(0, 7).every((x) => x === 0xee) && out.subarray(7 + 5036).every((x) => x === 0xee), "nothing written outside");
    });

    test("timingSafeEqual", () => {
      assert.equal(backend.timingSafeEqual(fromHex("00ff"), fromHex("00ff")), true);
      assert.equal(backend.timingSafeEqual(fromHex("00ff"), fromHex("00fe")), false);
      assert.equal(backend.timingSafeEqual(fromHex("00ff"), fromHex("00")), false);
    });
  });
}

describe("native and noble agree on random inputs", () => {
  const { native, noble } = BACKENDS;
  test("AES-GCM, HMAC, SHA-256, X25519", () => {
    for (let i = 0; i < 200; i++) {
      const key = native.randomBytes(32), nonce = native.randomBytes(12);
      const msg = native.randomBytes(i * 37), aad = native.randomBytes(i % 3 === 0 ? 0 : i % 40);
      const a = native.aesGcmSeal(key, nonce, msg, aad);
      assert.deepEqual(noble.aesGcmSeal(key, nonce, msg, aad), a);
      assert.deepEqual(noble.aesGcmOpen(key, nonce, a, aad), msg);
      const flipped = a.slice();
      flipped[i % flipped.length]! ^= 1;
      assert.equal(native.aesGcmOpen(key, nonce, flipped, aad), null);
      assert.equal(noble.aesGcmOpen(key, nonce, flipped, aad), null);
      assert.deepEqual(noble.hmacSha256(key, msg), native.hmacSha256(key, msg));
      assert.deepEqual(noble.sha256(msg), native.sha256(msg));
    }
    for (let i = 0; i < 20; i++) {
      const a = native.randomBytes(32), b = native.randomBytes(32);
      assert.deepEqual(noble.x25519PublicKey(a), native.x25519PublicKey(a));
      assert.deepEqual(noble.x25519(a, native.x25519PublicKey(b)), native.x25519(b, noble.x25519PublicKey(a)));
    }
  });
  test("PBKDF2", async () => {
    const pw = native.randomBytes(13), salt = native.randomBytes(17);
    assert.deepEqual(await noble.pbkdf2Sha256(pw, salt, 1000, 32), await native.pbkdf2Sha256(pw, salt, 1000, 32));
  });
});
