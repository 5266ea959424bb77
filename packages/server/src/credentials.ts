/**
 * Where the server gets each user's PSK. A users file holds, per user, the PBKDF2-derived key (never
 * the password) with the salt and iteration count it was derived with.
 */
import { readFileSync } from "node:fs";
import { type CryptoBackend, concat, fromHex, legacy, toHex, utf8 } from "@nstp/core";

export interface KeyStore {
  /** The user's PSK, or undefined for an unknown user. */
  lookup(username: string): Promise<Uint8Array | undefined> | Uint8Array | undefined;
}

export const USERS_FILE_FORMAT = "nstp-users/1";

export interface UserRecord {
  /** PSK = PBKDF2-HMAC-SHA256(password, salt, iterations, 32), hex. */
  key: string;
  /** deviceSalt || UTF-8 username, hex. */
  salt: string;
  iterations: number;
}

export interface UsersFile {
  format: typeof USERS_FILE_FORMAT;
  users: Record<string, UserRecord>;
}

/** A fixed table of derived keys. */
export class StaticKeyStore implements KeyStore {
  private readonly keys: Map<string, Uint8Array>;
  constructor(keys: Map<string, Uint8Array>) {
    this.keys = keys;
  }
  lookup(username: string): Uint8Array | undefined {
    return this.keys.get(username);
  }
  get size(): number {
    return this.keys.size;
  }
}

/**
 * Parses a users file, checking every record against the protocol: the salt must be this device's
 * salt followed by the username, and the iteration count the protocol's (peers derive with 600,000).
 */
export function parseUsersFile(text: string, deviceSalt: Uint8Array): Map<string, Uint8Array> {
  let doc: UsersFile;
  try {
    doc = JSON.parse(text) as UsersFile;
  } catch (cause) {
    throw new Error("users file is not valid JSON", { cause });
  }
  if (doc?.format !== USERS_FILE_FORMAT || typeof doc.users !== "object" || doc.users === null) {
    throw new Error(`users file must have "format": "${USERS_FILE_FORMAT}" and a "users" object`);
  }
  const keys = new Map<string, Uint8Array>();
  for (const [name, rec] of Object.entries(doc.users)) {
    legacy.checkUsernameBytes(utf8(name));
    const expectedSalt = toHex(legacy.pskSalt(deviceSalt, utf8(name)));
    if (rec.salt !== expectedSalt) throw new Error(`user "${name}": salt does not match --device-salt`);
    if (rec.iterations !== legacy.PBKDF2_ITERATIONS) throw new Error(`user "${name}": iterations must be ${legacy.PBKDF2_ITERATIONS}`);
    const key = fromHex(rec.key);
    if (key.length !== legacy.PSK_SIZE) throw new Error(`user "${name}": key must be ${legacy.PSK_SIZE} bytes`);
    keys.set(name, key);
  }
  return keys;
}

export function loadUsersFile(path: string, deviceSalt: Uint8Array): StaticKeyStore {
  return new StaticKeyStore(parseUsersFile(readFileSync(path, "utf8"), deviceSalt));
}

export function userRecord(deviceSalt: Uint8Array, username: string, key: Uint8Array): UserRecord {
  return { key: toHex(key), salt: toHex(legacy.pskSalt(deviceSalt, utf8(username))), iterations: legacy.PBKDF2_ITERATIONS };
}

/** The reference demo user (alice / userpassword), derived once at start. */
export async function demoKeyStore(crypto: CryptoBackend, deviceSalt: Uint8Array): Promise<StaticKeyStore> {
  const psk = await legacy.derivePsk(crypto, { username: legacy.DEMO_USERNAME, password: legacy.DEMO_PASSWORD, deviceSalt });
  return new StaticKeyStore(new Map([[legacy.DEMO_USERNAME, psk]]));
}

/**
 * A stand-in key for a username the server does not know, so that an unknown user gets the same
 * replies, the same close and the same timing as a wrong password. It is derived cheaply (one HMAC)
 * from a per-process secret: stable per username, unguessable, and never a real key.
 */
export function dummyKeyFactory(crypto: CryptoBackend, secret: Uint8Array = crypto.randomBytes(32)): (username: string) => Uint8Array {
  return (username) => crypto.hmacSha256(secret, concat(utf8("nstp dummy psk\0"), utf8(username)));
}
