/**
 * What `bun run users` needs from a database store (SQLite or PostgreSQL), the row mapping both
 * share, and the JSON users format in and out of a database.
 */
import { NstpError, fromHex, fromUtf8, toHex } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import { USERS_FILE_FORMAT, type UserRecord, type UsersFile, derivedWith, parseUsersFile, userRecord } from "../credentials.ts";
import { DEVICE_SALT_SIZE } from "../users-records.ts";
import type { CredentialRecord, RecordInput } from "./records.ts";

/** A writer: each method is one transaction. */
export interface UsersDb {
  /** The salt the store's records are derived with (recorded in nstp_meta when the store was created). */
  readonly deviceSalt: Uint8Array;
  /** True when this open created the store (and chose its salt). */
  readonly created: boolean;
  put(record: RecordInput): Promise<void>;
  /** Many records in one transaction (an import). */
  putMany(records: RecordInput[]): Promise<void>;
  /** False if there was no such user. */
  remove(username: string): Promise<boolean>;
  setDisabled(username: string, disabled: boolean): Promise<boolean>;
  list(): Promise<CredentialRecord[]>;
  close(): Promise<void>;
}

type Bytes = Uint8Array | null | undefined;

/** A row (SQLite or PostgreSQL, BLOB/BYTEA as Uint8Array) as a record. */
export function rowToRecord(row: Record<string, unknown>): CredentialRecord {
  const b = (x: unknown) => (x == null ? undefined : new Uint8Array(x as Uint8Array));
  return {
    username: fromUtf8(row.username as Uint8Array),
    psk: b(row.psk as Bytes),
    w0: b(row.w0 as Bytes),
    L: b(row.l as Bytes),
    disabled: Number(row.disabled) !== 0,
    version: Number(row.version),
    updatedAt: Number(row.updated_at),
  };
}

/** The store's device salt must be the server's: the PSKs in it were derived with it. */
export function checkDeviceSalt(stored: unknown, deviceSalt: Uint8Array, where: string): void {
  if (stored == null) throw new NstpError("ERR_INVALID_ARG", `${where} is not an nstp credential store (no device salt); create it with bun run users`);
  if (toHex(new Uint8Array(stored as Uint8Array)) !== toHex(deviceSalt)) {
    throw new NstpError("ERR_INVALID_ARG", `${where} holds keys derived with another device salt than --device-salt`);
  }
}

/**
 * The device salt for a store `bun run users` opens: the one recorded in it (a --device-salt that
 * differs is refused: the records were derived with the recorded one), else the one given, else 16
 * random bytes. A random salt per store means two deployments never share a verifier (or a PSK) for
 * the same username and password, so precomputed guesses for common names serve one store at most.
 */
export function chooseDeviceSalt(stored: Uint8Array | undefined, given: Uint8Array | undefined, where: string): { deviceSalt: Uint8Array; created: boolean } {
  if (stored !== undefined) {
    if (given !== undefined) checkDeviceSalt(stored, given, where);
    return { deviceSalt: stored, created: false };
  }
  return { deviceSalt: given ?? nativeBackend.randomBytes(DEVICE_SALT_SIZE), created: true };
}

/** A users-file record with the optional v3 verifier and disabled flag a database also keeps. */
export type ExportedRecord = Partial<UserRecord> & { disabled?: boolean };

/**
 * Records from a JSON users file: keys checked as the server checks them (salt and iterations), and
 * the optional v3 verifier (w0, L in hex) and disabled flag taken as they are.
 */
export function recordsFromUsersFile(text: string, deviceSalt: Uint8Array): RecordInput[] {
  const doc = JSON.parse(text) as { format?: string; users?: Record<string, ExportedRecord> };
  if (doc?.format !== USERS_FILE_FORMAT || typeof doc.users !== "object" || doc.users === null) {
    throw new Error(`users file must have "format": "${USERS_FILE_FORMAT}" and a "users" object`);
  }
  const keys = parseUsersFile(text, deviceSalt);
  return Object.entries(doc.users).map(([username, r]) => ({
    username,
    psk: keys.get(username),
    w0: r.w0 === undefined ? undefined : fromHex(r.w0),
    L: r.L === undefined ? undefined : fromHex(r.L),
    disabled: r.disabled === true,
  }));
}

/**
 * A users file of these records. Every record carries its salt and iteration count (a verifier-only
 * one too: its w0 and L come from that PBKDF2), and the file its device salt, which the server checks.
 */
export function recordsToUsersFile(records: RecordInput[], deviceSalt: Uint8Array): UsersFile & { users: Record<string, ExportedRecord> } {
  const users: Record<string, ExportedRecord> = {};
  for (const r of records) {
    users[r.username] = {
      ...(r.psk ? userRecord(deviceSalt, r.username, r.psk) : derivedWith(deviceSalt, r.username)),
      ...(r.w0 && r.L ? { w0: toHex(r.w0), L: toHex(r.L) } : {}),
      ...(r.disabled ? { disabled: true } : {}),
    };
  }
  return { format: USERS_FILE_FORMAT, deviceSalt: toHex(deviceSalt), users: users as Record<string, UserRecord> };
}
