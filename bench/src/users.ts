import { createHash } from "node:crypto";
/** The bench's users: one warm user every server holds a key for, and cold users derived on demand. */
export const BENCH_USER = "bench";
export const BENCH_PASSWORD = "bench-password";

/** Cold users are named cold-<run>-<i>; their password is derived from the name. */
export function coldPassword(name: string): string {
  return `pw:${name}`;
}

/**
 * The store bench's users: store-<i>, with a PSK taken from the name by one SHA-256 (the server only
 * stores and uses PSKs, it never checks how they were derived), so that thousands of them cost the
 * bench no PBKDF2.
 */
export const storeUserName = (i: number) => `store-${i}`;
export function storeUserPsk(name: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(`nstp bench store user ${name}`).digest());
}
