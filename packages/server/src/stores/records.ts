/**
 * Credential records as the database stores them, one row per user with the record of every protocol
 * version: the PBKDF2-derived PSK (legacy and v2) and the SPAKE2+ verifier (v3: w0 and L, RFC 9383
 * §3.2). A store is read by the server and written only by `bun run users`.
 */
import { type Credential, NstpError, PSK_SIZE, legacy, utf8 } from "@nstp/core";
import type { SharedUserBudget } from "../budget.ts";
import type { KeyStore } from "../credentials.ts";
import { ProvenLru } from "../lru.ts";

/** RFC 9383 §3.2 with P-256: w0 is a scalar (32 bytes), L = w1*P an uncompressed SEC1 point (65 bytes). */
export const W0_SIZE = 32;
export const L_SIZE = 65;

export interface CredentialRecord {
  username: string;
  /** PBKDF2-HMAC-SHA256(password, deviceSalt || username, 600,000, 32): where legacy or v2 is served. */
  psk?: Uint8Array;
  /** The v3 verifier: w0 and L (the server never holds w1 or the password). */
  w0?: Uint8Array;
  L?: Uint8Array;
  disabled: boolean;
  /** The store-wide change counter when this row last changed. */
  version: number;
  /** Milliseconds since the epoch. */
  updatedAt: number;
}

/** What a writer gives for one user. */
export type RecordInput = Pick<CredentialRecord, "username" | "psk" | "w0" | "L"> & { disabled?: boolean };

export interface StoreHealth {
  /** The database answered at the last attempt. */
  ok: boolean;
  /** Records served from memory. */
  cached: number;
  /** Last error, without credentials. */
  error?: string;
  /** ms since the epoch of the last successful contact. */
  lastOkAt?: number;
}

/**
 * A KeyStore backed by a database: the server's lookup, the full record with the v3 verifier, and
 * removals (deleted or disabled users) announced so that the server can end their live sessions.
 */
export interface CredentialStore extends KeyStore {
  lookupRecord(username: string, signal?: AbortSignal): CredentialRecord | undefined | Promise<CredentialRecord | undefined>;
  /** `listener` is called with each user removed, disabled or re-keyed (by any process); returns an unsubscribe. */
  onUserRemoved(listener: (username: string) => void): () => void;
  health(): StoreHealth;
  close(): Promise<void>;
  /** A store that several hosts share may keep the per-user guessing budget for all of them (PostgreSQL). */
  openGuessBudget?(opts: { burst: number; refillPerSecond: number }): Promise<SharedUserBudget>;
}

/** Checks sizes before anything is written: a record must carry a PSK, a verifier, or both. */
export function checkRecord(r: RecordInput): void {
  legacy.checkUsernameBytes(utf8(r.username));
  const bad = (what: string) => {
    throw new NstpError("ERR_INVALID_ARG", `user "${r.username}": ${what}`);
  };
  if (r.psk && r.psk.length !== PSK_SIZE) bad(`psk must be ${PSK_SIZE} bytes`);
  if ((r.w0 === undefined) !== (r.L === undefined)) bad("w0 and L come together");
  if (r.w0 && r.w0.length !== W0_SIZE) bad(`w0 must be ${W0_SIZE} bytes`);
  if (r.L && (r.L.length !== L_SIZE || r.L[0] !== 0x04)) bad(`L must be a ${L_SIZE}-byte uncompressed SEC1 point`);
  if (!r.psk && !r.w0) bad("a record needs a psk or a v3 verifier");
}

/** The usable PSK of a record: none for a disabled user (who then fails like an unknown one). */
export function pskOf(r: CredentialRecord | undefined): Uint8Array | undefined {
  return r && !r.disabled ? r.psk : undefined;
}

/** What a machine is given: the PSK and the verifier the row holds; a disabled user is unknown. */
export function credentialOf(r: CredentialRecord | undefined): Credential | undefined {
  if (!r || r.disabled) return undefined;
  return { psk: r.psk, verifier: r.w0 && r.L ? { w0: r.w0, L: r.L } : undefined };
}

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array | undefined) =>
  a === b || (!!a && !!b && a.length === b.length && a.every((x, i) => x === b[i]));

/**
 * Whether a change to a user ends their sessions (main's StaticKeyStore rule: removed, disabled, or
 * re-keyed, since a new password revokes what the old one opened). `before` is what this process
 * had: a record, null for a name it knew to be absent (a new user: no session), or undefined when it
 * does not know (an evicted record may have had sessions, so announce). Enabling a user ends nothing.
 */
export function endsSessions(before: CredentialRecord | null | undefined, after: { removed: boolean; disabled: boolean; psk?: Uint8Array; w0?: Uint8Array; L?: Uint8Array }): boolean {
  if (after.removed || after.disabled) return true;
  if (before === null) return false;
  if (before === undefined) return true;
  if (before.disabled) return false; // it had no session to end
  if (!sameBytes(before.psk, after.psk)) return true;
  // A verifier given to a PSK record that had none (`bun run users -- migrate`, which computes it
  // from that PSK) adds v3 for the same password: nothing was re-keyed. Any other change to it is.
  if (before.w0 === undefined && before.L === undefined && before.psk !== undefined) return false;
  return !sameBytes(before.w0, after.w0) || !sameBytes(before.L, after.L);
}

/** Listeners for removals, each called once per event; a throwing listener does not stop the others. */
export class RemovalListeners {
  private readonly listeners = new Set<(username: string) => void>();
  add(listener: (username: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(username: string): void {
    for (const l of this.listeners) {
      try {
        l(username);
      } catch {
        // One listener's failure is its own.
      }
    }
  }
}

/**
 * The records and the names the store does not have, by username, in a segmented LRU (lru.ts
 * ProvenLru). Remembering misses makes a probe for an unknown name answer as fast as one for a cached
 * user (no store round trip to time). Every name a lookup caches, record or miss, goes on probation;
 * a record moves to the proven segment once a peer has proven its key (proven(), from the server's
 * KeyStore.confirmed), and misses never do. So a stranger's flood of random names evicts only names
 * on probation, records and misses alike (a name it probed before the flood is a first probe again
 * whether it exists or not: the review of session 5), and never the records of devices that log in
 * (the review of session 8: in one LRU, it evicted them all within seconds, and with them the
 * records that serve while the database is down). Every change to a name drops it.
 */
export class RecordCache {
  private readonly entries: ProvenLru<CredentialRecord | null>;
  constructor(max: number) {
    this.entries = new ProvenLru(max);
  }
  /** The record; null when the store is known not to have the name; undefined when not known here. */
  get(username: string): CredentialRecord | null | undefined {
    return this.entries.get(username);
  }
  set(r: CredentialRecord): void {
    this.entries.set(r.username, r);
  }
  setMissing(username: string): void {
    this.entries.set(username, null);
  }
  /** A peer proved its key for `username`: its record, if cached, leaves probation (a miss never does). */
  proven(username: string): void {
    this.entries.promote(username, (r) => r !== null && !r.disabled);
  }
  delete(username: string): void {
    this.entries.delete(username);
  }
  /** Names cached, records and misses alike. */
  get size(): number {
    return this.entries.size;
  }
}
