/** The reference key schedule after the PSK: HMAC-SHA256 for the session key and both proofs. */
import type { CryptoBackend } from "../crypto/backend.ts";
import { concat } from "../bytes.ts";

// The PSK itself is every version's (keys/password.ts); re-exported for legacy.derivePsk callers.
export { derivePsk, pskSalt, type PskParams } from "../keys/password.ts";

/** sessionKey = HMAC-SHA256(PSK, clientNonce || sessionNonce). */
export function sessionKey(crypto: CryptoBackend, psk: Uint8Array, clientNonce: Uint8Array, sessionNonce: Uint8Array): Uint8Array {
  return crypto.hmacSha256(psk, concat(clientNonce, sessionNonce));
}

/** HMAC-SHA256(sessionKey, clientNonce || sessionNonce || username). */
export function clientProof(crypto: CryptoBackend, key: Uint8Array, clientNonce: Uint8Array, sessionNonce: Uint8Array, usernameBytes: Uint8Array): Uint8Array {
  return crypto.hmacSha256(key, concat(clientNonce, sessionNonce, usernameBytes));
}

/** HMAC-SHA256(sessionKey, sessionNonce || clientNonce || username). */
export function serverProof(crypto: CryptoBackend, key: Uint8Array, clientNonce: Uint8Array, sessionNonce: Uint8Array, usernameBytes: Uint8Array): Uint8Array {
  return crypto.hmacSha256(key, concat(sessionNonce, clientNonce, usernameBytes));
}
