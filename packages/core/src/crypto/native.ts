/** Backend on node:crypto, which Bun implements natively (BoringSSL) and Node on OpenSSL. */
import * as nodeCrypto from "node:crypto";
import { promisify } from "node:util";
import {
  type CryptoBackend,
  GCM_TAG_SIZE,
  checkAeadArgs,
  checkX25519Args,
  isAllZero,
} from "./backend.ts";

const pbkdf2 = promisify(nodeCrypto.pbkdf2);

// RFC 8410 DER prefix: wrapping a raw X25519 private key lets node:crypto import it. Public keys go
// through JWK, which Node 24 imports and exports faster than DER (measured: 26 vs 33 µs, 1 vs 28 µs).
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/** The imported private key is kept beside its bytes: a handshake derives the public key, then a DH. */
const privateKeys = new WeakMap<Uint8Array, nodeCrypto.KeyObject>();
function x25519PrivateKey(raw: Uint8Array): nodeCrypto.KeyObject {
  let k = privateKeys.get(raw);
  if (!k) {
    k = nodeCrypto.createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
    privateKeys.set(raw, k);
  }
  return k;
}

/**
 * One-shot hashing where the runtime has it (Node >= 21.7, Bun): no Hash object per call, which the
 * handshake's dozens of SHA-256 calls notice.
 */
const oneShotHash = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: "buffer") => Buffer }).hash;

/**
 * node:crypto turns a raw key into a KeyObject on every createCipheriv call (a measurable share of
 * small-frame sealing); a session's keys are long-lived Uint8Arrays, so the KeyObject is kept beside
 * each one. Keys are never mutated in place while in use (a rekey makes a new array), so the cache
 * cannot go stale. A machine's dispose() zeroes a key array it will never use again; the KeyObject
 * here keeps its own copy of the key in native memory until the array is collected, which nothing in
 * JavaScript can wipe (machine.ts dispose).
 */
const keyObjects = new WeakMap<Uint8Array, nodeCrypto.KeyObject>();
function secretKey(key: Uint8Array): nodeCrypto.KeyObject {
  let k = keyObjects.get(key);
  if (!k) {
    k = nodeCrypto.createSecretKey(key);
    keyObjects.set(key, k);
  }
  return k;
}

function view(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export const nativeBackend: CryptoBackend = {
  name: "native",

  randomBytes(length) {
    return new Uint8Array(nodeCrypto.randomBytes(length));
  },

  sha256(data) {
    const d = oneShotHash ? oneShotHash("sha256", data, "buffer") : nodeCrypto.createHash("sha256").update(data).digest();
    return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  },

  hmacSha256(key, data) {
    // Node 24 prepares a raw HMAC key several times slower than it takes a KeyObject (measured:
    // 71k vs 256k HMACs/s including the KeyObject's creation); HKDF in the Noise handshake is HMACs.
    const k = key.length ? secretKey(key) : key;
    return new Uint8Array(nodeCrypto.createHmac("sha256", k).update(data).digest());
  },

  hkdfSha256(salt, ikm, info, length) {
    // One native call: a Noise handshake's HKDFs were a dozen HMACs, each with a KeyObject and an
    // Hmac object whose native memory outlived them until a collection (the fleet bench).
    return new Uint8Array(nodeCrypto.hkdfSync("sha256", ikm, salt, info, length));
  },

  async pbkdf2Sha256(password, salt, iterations, length) {
    return new Uint8Array(await pbkdf2(password, salt, iterations, length, "sha256"));
  },

  aesGcmSeal(key, nonce, plaintext, aad) {
    checkAeadArgs(key, nonce);
    const cipher = nodeCrypto.createCipheriv("aes-256-gcm", secretKey(key), nonce, { authTagLength: GCM_TAG_SIZE });
    if (aad && aad.length) cipher.setAAD(aad);
    const out = new Uint8Array(plaintext.length + GCM_TAG_SIZE);
    const body = cipher.update(plaintext);
    out.set(body, 0);
    const fin = cipher.final();
    out.set(fin, body.length);
    out.set(cipher.getAuthTag(), body.length + fin.length);
    return out;
  },

  aesGcmSealInto(key, nonce, parts, out, offset) {
    checkAeadArgs(key, nonce);
    const cipher = nodeCrypto.createCipheriv("aes-256-gcm", secretKey(key), nonce, { authTagLength: GCM_TAG_SIZE });
    let off = offset;
    for (const p of parts) {
      const c = cipher.update(p);
      out.set(c, off);
      off += c.length;
    }
    const fin = cipher.final();
    out.set(fin, off);
    off += fin.length;
    out.set(cipher.getAuthTag(), off);
    return off + GCM_TAG_SIZE - offset;
  },

  aesGcmOpen(key, nonce, sealed, aad) {
    checkAeadArgs(key, nonce);
    if (sealed.length < GCM_TAG_SIZE) return null;
    const ctLen = sealed.length - GCM_TAG_SIZE;
    const decipher = nodeCrypto.createDecipheriv("aes-256-gcm", secretKey(key), nonce, { authTagLength: GCM_TAG_SIZE });
    decipher.setAuthTag(sealed.subarray(ctLen));
    if (aad && aad.length) decipher.setAAD(aad);
    const body = decipher.update(sealed.subarray(0, ctLen));
    try {
      // final() checks the tag; until it returns, `body` is unauthenticated and never escapes.
      const fin = decipher.final();
      if (fin.length === 0) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
      const out = new Uint8Array(body.length + fin.length);
      out.set(body, 0);
      out.set(fin, body.length);
      return out;
    } catch {
      body.fill(0);
      return null;
    }
  },

  timingSafeEqual(a, b) {
    if (a.length !== b.length) return false;
    return nodeCrypto.timingSafeEqual(view(a), view(b));
  },

  x25519PublicKey(privateKey) {
    checkX25519Args(privateKey);
    // JWK export of the public key costs about 1 µs in Node 24 where DER (SPKI) costs about 28.
    const jwk = nodeCrypto.createPublicKey(x25519PrivateKey(privateKey)).export({ format: "jwk" });
    const pub = Buffer.from(jwk.x!, "base64url");
    if (pub.length !== 32) throw new RangeError("X25519 public key export failed");
    return new Uint8Array(pub.buffer, pub.byteOffset, pub.byteLength);
  },

  x25519(privateKey, publicKey) {
    checkX25519Args(privateKey, publicKey);
    const pub = nodeCrypto.createPublicKey({ key: { kty: "OKP", crv: "X25519", x: Buffer.from(publicKey).toString("base64url") }, format: "jwk" });
    const shared = new Uint8Array(nodeCrypto.diffieHellman({ privateKey: x25519PrivateKey(privateKey), publicKey: pub }));
    if (isAllZero(shared)) throw new RangeError("X25519 produced the all-zero shared secret");
    return shared;
  },
};
