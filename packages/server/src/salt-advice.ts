/**
 * The server's warning about the reference's demo device salt (0102030405060708), which every copy
 * of the reference and of this project's defaults shares.
 */
import { legacy, toHex } from "@nstp/core";

export interface SaltAdviceContext {
  /** A users store (file or database) is served, rather than the built-in demo user. */
  usersStore: boolean;
  /** v3 is among the protocols served. */
  v3: boolean;
}

/** The warning to log at start, or undefined when the salt is not the demo one. */
export function demoSaltWarning(deviceSalt: Uint8Array, ctx: SaltAdviceContext): string | undefined {
  if (toHex(deviceSalt) !== toHex(legacy.DEMO_DEVICE_SALT)) return undefined;
  if (!ctx.v3 || !ctx.usersStore) return "using the reference demo device salt 0102030405060708";
  // docs/PROTOCOL.md §v3 "Keys": w0 and L depend only on (device salt, username, password), and so
  // does the PSK. Deployments sharing a salt share verifiers for common usernames: a guess tested
  // against one stolen store (one PBKDF2-600k each) is tested against all of them, and a dictionary
  // computed in advance for "admin" or "device" on this salt serves every such store.
  return "serving v3 with a users store on the reference demo device salt 0102030405060708: every deployment on this salt " +
    "holds the same verifier (w0, L) for the same username and password, so guesses tested against one stolen store, " +
    "or precomputed for common usernames, serve them all; recreate the store with `bun run users` (a random 16-byte " +
    "salt) and start the server with its --device-salt";
}
