/** Pure-JS backend on @noble/ciphers, @noble/hashes and @noble/curves (audited, no native code). */
import { gcm } from "@noble/ciphers/aes.js";
import { equalBytes } from "@noble/ciphers/utils.js";
import { hmac } from "@noble/hashes/hmac.js";
import { pbkdf2Async } from "@noble/hashes/pbkdf2.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { type CryptoBackend, checkAeadArgs, checkX25519Args, isAllZero } from "./backend.ts";
import { concat } from "../bytes.ts";

const MAX_RANDOM_PER_CALL = 65_536;

export const nobleBackend: CryptoBackend = {
  name: "noble",

  randomBytes(length) {
    const out = new Uint8Array(length);
    // WebCrypto fills at most 65,536 bytes per call (Node throws QuotaExceededError beyond it).
    for (let off = 0; off < length; off += MAX_RANDOM_PER_CALL) globalThis.crypto.getRandomValues(out.subarray(off, off + MAX_RANDOM_PER_CALL));
    return out;
  },

  sha256(data) {
    return sha256(data);
  },

  hmacSha256(key, data) {
    return hmac(sha256, key, data);
  },

  pbkdf2Sha256(password, salt, iterations, length) {
    // pbkdf2Async yields to the event loop between rounds; the pool runs it off-thread anyway.
    return pbkdf2Async(sha256, password, salt, { c: iterations, dkLen: length });
  },

  aesGcmSeal(key, nonce, plaintext, aad) {
    checkAeadArgs(key, nonce);
    return gcm(key, nonce, aad && aad.length ? aad : undefined).encrypt(plaintext);
  },

  aesGcmSealInto(key, nonce, parts, out, offset) {
    checkAeadArgs(key, nonce);
    const ct = gcm(key, nonce).encrypt(parts.length === 1 ? parts[0]! : concat(...parts));
    out.set(ct, offset);
    return ct.length;
  },

  aesGcmOpen(key, nonce, sealed, aad) {
    checkAeadArgs(key, nonce);
    try {
      // noble verifies the tag before decrypting; nothing is returned for a forged record.
      return gcm(key, nonce, aad && aad.length ? aad : undefined).decrypt(sealed);
    } catch {
      return null;
    }
  },

  timingSafeEqual(a, b) {
    return equalBytes(a, b);
  },

  x25519PublicKey(privateKey) {
    checkX25519Args(privateKey);
    return x25519.getPublicKey(privateKey);
  },

  x25519(privateKey, publicKey) {
    checkX25519Args(privateKey, publicKey);
    const shared = x25519.getSharedSecret(privateKey, publicKey);
    if (isAllZero(shared)) throw new RangeError("X25519 produced the all-zero shared secret");
    return shared;
  },
};
