/**
 * v3 credentials (docs/PROTOCOL.md §v3 "Keys"): the prover's w0 and w1 from the PSK every version
 * shares, the verifier record { w0, L } a server stores, and the fake record an unknown user gets.
 *
 *   w0s || w1s = HKDF-SHA256(salt = empty, IKM = PSK,
 *                            info = "nstp/3 w0w1" || len(deviceSalt) || deviceSalt || len(username) || username, 80)
 *   w0 = w0s mod n, w1 = w1s mod n (40-byte halves, big-endian), L = w1·G
 *
 * with len() the 8-byte little-endian length RFC 9383's transcript uses, and PSK the existing
 * PBKDF2-HMAC-SHA256(password, deviceSalt || username, 600000, 32).
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { hkdfSha256 } from "../crypto/hkdf.ts";
import { concat, fromHex, toHex, utf8 } from "../bytes.ts";
import { PSK_SIZE, type PskParams, derivePsk } from "../keys/password.ts";
import { GROUP_ORDER, POINT_SIZE, SCALAR_SIZE, lengthPrefixed, randomScalar, scalarFromBytes, scalarFromBytesModN, scalarToBytes, verifierPoint } from "./spake2plus.ts";

const W0W1_INFO = utf8("nstp/3 w0w1");
const FAKE_INFO = utf8("nstp/3 fake");
/** Each half is 40 bytes: 64 bits more than n, so the reduction's bias is below 2^-64 (RFC 9383 §3.2). */
export const W_HALF_SIZE = 40;
const EMPTY = new Uint8Array(0);

/** What a client keeps (its key cache): both scalars, 32 bytes big-endian each. */
export interface ProverKeys {
  w0: Uint8Array;
  w1: Uint8Array;
}

/** What a server stores for a v3 user: never w1 nor the PSK. */
export interface Verifier {
  /** 32 bytes big-endian, below n. */
  w0: Uint8Array;
  /** L = w1·G, 65 bytes uncompressed SEC1. */
  L: Uint8Array;
}

/** w0 and w1 from the PSK (the HKDF above). `usernameBytes` exactly as the preamble sends them. */
export function proverKeysFromPsk(crypto: CryptoBackend, psk: Uint8Array, deviceSalt: Uint8Array, usernameBytes: Uint8Array): ProverKeys {
  if (psk.length !== PSK_SIZE) throw new RangeError(`PSK must be ${PSK_SIZE} bytes`);
  const info = concat(W0W1_INFO, lengthPrefixed([deviceSalt, usernameBytes]));
  const okm = hkdfSha256(crypto, EMPTY, psk, info, 2 * W_HALF_SIZE);
  const w0 = scalarFromBytesModN(okm.subarray(0, W_HALF_SIZE));
  const w1 = scalarFromBytesModN(okm.subarray(W_HALF_SIZE));
  okm.fill(0);
  // A zero scalar has probability 2^-256: it would make L (or shareP) the identity; refuse it.
  if (w0 === 0n || w1 === 0n) throw new RangeError("degenerate w0 or w1");
  return { w0: scalarToBytes(w0), w1: scalarToBytes(w1) };
}

/** The password's prover keys: the PBKDF2 PSK (legacy/keys.ts, 600,000 iterations), then the HKDF. */
export async function deriveProverKeys(crypto: CryptoBackend, p: PskParams): Promise<ProverKeys> {
  const psk = await derivePsk(crypto, p);
  try {
    return proverKeysFromPsk(crypto, psk, p.deviceSalt, utf8(p.username));
  } finally {
    psk.fill(0);
  }
}

/** The server's record: w0 and L = w1·G. */
export function verifierFromProverKeys(keys: ProverKeys): Verifier {
  return { w0: keys.w0.slice(), L: verifierPoint(scalarFromBytes(keys.w1)) };
}

/** The record for a user whose PSK the server holds (a users file written for legacy and v2). */
export function verifierFromPsk(crypto: CryptoBackend, psk: Uint8Array, deviceSalt: Uint8Array, usernameBytes: Uint8Array): Verifier {
  return verifierFromProverKeys(proverKeysFromPsk(crypto, psk, deviceSalt, usernameBytes));
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
/** Verifiers derived from PSKs, by the PSK array: a store hands out the same array for a user each time. */
const fromPsk = new WeakMap<Uint8Array, { deviceSalt: Uint8Array; usernameBytes: Uint8Array; verifier: Verifier }>();

/**
 * verifierFromPsk, once per PSK array (for as long as the store keeps it): a server whose store holds
 * only PSKs pays the HKDF and the base-point multiplication on a user's first v3 handshake only, so
 * that a known user's repeat handshakes cost what an unknown user's (a cached fake record) do.
 */
export function cachedVerifierFromPsk(crypto: CryptoBackend, psk: Uint8Array, deviceSalt: Uint8Array, usernameBytes: Uint8Array): Verifier {
  const hit = fromPsk.get(psk);
  if (hit && sameBytes(hit.deviceSalt, deviceSalt) && sameBytes(hit.usernameBytes, usernameBytes)) return hit.verifier;
  const verifier = verifierFromPsk(crypto, psk, deviceSalt, usernameBytes);
  fromPsk.set(psk, { deviceSalt: deviceSalt.slice(), usernameBytes: usernameBytes.slice(), verifier });
  return verifier;
}

/**
 * Checks a record's shape (sizes, w0 below n). The point L is validated where it is used, on every
 * handshake, by the same decoder as a peer's share: real and fake records take one path.
 */
export function checkVerifier(v: Verifier): Verifier {
  if (v.w0.length !== SCALAR_SIZE) throw new RangeError(`w0 must be ${SCALAR_SIZE} bytes`);
  if (v.L.length !== POINT_SIZE) throw new RangeError(`L must be ${POINT_SIZE} bytes`);
  if (scalarFromBytes(v.w0) >= GROUP_ORDER) throw new RangeError("w0 must be below the group order");
  return v;
}

/** A record as the users store keeps it: lowercase hex. */
export interface VerifierJson {
  w0: string;
  L: string;
}

export function verifierToJson(v: Verifier): VerifierJson {
  return { w0: toHex(v.w0), L: toHex(v.L) };
}

export function verifierFromJson(j: VerifierJson): Verifier {
  return checkVerifier({ w0: fromHex(j.w0), L: fromHex(j.L) });
}

/**
 * Records for usernames the server does not know, so that they get the same answers, on the same
 * code path and with the same timing, as a wrong password:
 *   w0 = HKDF-SHA256(salt = empty, IKM = server secret, info = "nstp/3 fake" || username, 40) mod n
 * stable per username (a prober sees the same shareV distribution for the same name), and one random
 * L per factory (one per server process). Both are bytes, parsed per handshake like a real record:
 * no point object, and so no precomputed table, outlives a handshake for either.
 */
export class FakeVerifiers {
  private readonly crypto: CryptoBackend;
  private readonly secret: Uint8Array;
  private readonly L: Uint8Array;
  /**
   * Records handed out, by username (hex), oldest dropped past `maxCached`: a repeat probe of an
   * unknown name costs what a repeat handshake of a known user does (a stored or cached verifier),
   * no HKDF more (the username-timing probe, server/probes.test.ts).
   */
  private readonly cache = new Map<string, Verifier>();
  private readonly maxCached: number;

  constructor(crypto: CryptoBackend, secret: Uint8Array = crypto.randomBytes(32), maxCached = 10_000) {
    this.crypto = crypto;
    this.secret = secret;
    this.L = verifierPoint(randomScalar(crypto));
    this.maxCached = maxCached;
  }

  record(usernameBytes: Uint8Array): Verifier {
    const name = toHex(usernameBytes);
    const hit = this.cache.get(name);
    if (hit) return hit;
    const okm = hkdfSha256(this.crypto, EMPTY, this.secret, concat(FAKE_INFO, usernameBytes), W_HALF_SIZE);
    const record = { w0: scalarToBytes(scalarFromBytesModN(okm)), L: this.L.slice() };
    if (this.cache.size >= this.maxCached) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(name, record);
    return record;
  }
}
