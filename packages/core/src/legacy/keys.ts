/** The reference key schedule: PBKDF2 for the PSK, HMAC-SHA256 for the session key and both proofs. */
import type { CryptoBackend } from "../crypto/backend.ts";
import { concat, utf8 } from "../bytes.ts";
import { PBKDF2_ITERATIONS, PSK_SIZE } from "./wire.ts";

/** PBKDF2 salt: deviceSalt || UTF-8 username. */
export function pskSalt(deviceSalt: Uint8Array, usernameBytes: Uint8Array): Uint8Array {
  return concat(deviceSalt, usernameBytes);
}

export interface PskParams {
  password: string;
  username: string;
  deviceSalt: Uint8Array;
  iterations?: number;
}

/** PSK = PBKDF2-HMAC-SHA256(password, deviceSalt || username, 600000, 32). */
export function derivePsk(crypto: CryptoBackend, p: PskParams): Promise<Uint8Array> {
  return crypto.pbkdf2Sha256(utf8(p.password), pskSalt(p.deviceSalt, utf8(p.username)), p.iterations ?? PBKDF2_ITERATIONS, PSK_SIZE);
}

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
