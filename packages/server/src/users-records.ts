/**
 * What `bun run users` writes for a user, the same in every store (JSON file, SQLite, PostgreSQL):
 * the v3 verifier (w0, L: docs/PROTOCOL.md §v3 "Keys", RFC 9383 §3.2) always, and the PSK only where
 * legacy or v2 is still served to that user. A verifier is computed from the PSK, so converting a
 * store needs no password; the reverse is impossible by design (L = w1·G does not give w1 back).
 */
import { type CryptoBackend, fromHex, toHex, utf8, v3 } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import type { UsersFile } from "./credentials.ts";
import type { RecordInput } from "./stores/records.ts";

/** A device salt `bun run users` draws for a new store: 128 bits, so no two deployments share one. */
export const DEVICE_SALT_SIZE = 16;

export interface RecordOptions {
  /** Verifier only: the user can then use v3 only, and a legacy or v2 attempt fails like a wrong password. */
  v3Only?: boolean;
  crypto?: CryptoBackend;
}

/** `users add`: the PSK (unless v3Only) and the verifier derived from it. */
export function recordFromPsk(username: string, psk: Uint8Array, deviceSalt: Uint8Array, opts: RecordOptions = {}): RecordInput {
  const verifier = v3.verifierFromPsk(opts.crypto ?? nativeBackend, psk, deviceSalt, utf8(username));
  return { username, ...(opts.v3Only ? {} : { psk }), w0: verifier.w0, L: verifier.L };
}

/**
 * `users migrate`: every record gains the verifier its PSK gives (recomputed from the PSK, which is
 * the source of truth, so a stale or hand-edited pair is replaced); with v3Only the PSK is dropped.
 * A verifier-only record stays as it is. The disabled flag is kept.
 */
export function migrateRecord(r: RecordInput, deviceSalt: Uint8Array, opts: RecordOptions = {}): RecordInput {
  if (!r.psk) return r;
  return { ...recordFromPsk(r.username, r.psk, deviceSalt, opts), disabled: r.disabled };
}

/**
 * The device salt a users file records: its "deviceSalt", or for a file written before that field,
 * what precedes the username in any record's salt (salt = deviceSalt || UTF-8 username). A file with
 * neither (no such file, or no users) has none yet.
 */
export function usersFileDeviceSalt(doc: UsersFile): Uint8Array | undefined {
  if (doc.deviceSalt !== undefined) return fromHex(doc.deviceSalt);
  for (const [name, rec] of Object.entries(doc.users)) {
    const nameHex = toHex(utf8(name));
    if (typeof rec.salt === "string" && rec.salt.endsWith(nameHex)) return fromHex(rec.salt.slice(0, rec.salt.length - nameHex.length));
  }
  return undefined;
}
