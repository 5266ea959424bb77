/**
 * HKDF-SHA256 (RFC 5869) over the backend's HMAC. Noise's HKDF(ck, ikm, n) (spec §4.3) is this with
 * salt = ck and empty info, cut into n 32-byte outputs; Wycheproof's HKDF vectors check it.
 */
import type { CryptoBackend } from "./backend.ts";
import { SHA256_SIZE } from "./backend.ts";

export const HKDF_MAX_LENGTH = 255 * SHA256_SIZE;

export function hkdfSha256(crypto: CryptoBackend, salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > HKDF_MAX_LENGTH) throw new RangeError(`HKDF length must be 0..${HKDF_MAX_LENGTH}`);
  if (crypto.hkdfSha256 && length > 0) return crypto.hkdfSha256(salt, ikm, info, length);
  // RFC 5869 §2.2: an absent salt is HashLen zero bytes (HMAC pads an empty key the same way).
  const prk = crypto.hmacSha256(salt, ikm);
  const out = new Uint8Array(length);
  const block = new Uint8Array(SHA256_SIZE + info.length + 1);
  let prev: Uint8Array = new Uint8Array(0);
  for (let i = 1, off = 0; off < length; i++) {
    // T(i) = HMAC(PRK, T(i-1) || info || i)
    const input = block.subarray(SHA256_SIZE - prev.length);
    input.set(prev, 0);
    input.set(info, prev.length);
    input[prev.length + info.length] = i;
    prev = crypto.hmacSha256(prk, input);
    out.set(prev.subarray(0, Math.min(SHA256_SIZE, length - off)), off);
    off += SHA256_SIZE;
  }
  return out;
}
