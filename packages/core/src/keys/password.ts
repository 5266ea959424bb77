/**
 * The password key schedule every version starts from (docs/PROTOCOL.md, "Keys"): the reference's
 * PBKDF2-HMAC-SHA256 over deviceSalt || UTF-8 username. Legacy keys its proofs with it, v2 uses it as
 * the Noise PSK, v3 stretches it into w0/w1 (v3/keys.ts); so it lives here, not under one version.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { concat, utf8 } from "../bytes.ts";

/** The reference's iteration count; part of the wire contract (the vectors pin it). */
export const PBKDF2_ITERATIONS = 600_000;
/** PBKDF2's output length: one SHA-256 block, the size of every version's password key. */
export const PSK_SIZE = 32;

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
