/**
 * SPAKE2+ (RFC 9383) for the ciphersuite P256-SHA256-HKDF-SHA256-HMAC-SHA256: the group arithmetic
 * of §3.3 on @noble/curves' p256, and the key schedule of §3.4 on the project's CryptoBackend (so
 * both backends compute every hash, HKDF and HMAC of the protocol).
 *
 * Every function here is pure: bytes and bigints in, bytes out. The curve half (shares, Z, V) is
 * separated from the hashing half (transcript, keys, MACs) so a driver can run the former in the
 * worker pool; nothing keeps a reference to a scalar after it returns.
 *
 * Scalar multiplication always uses noble's constant-time `multiply` (scalar-blinded, fixed
 * window), never `multiplyUnsafe`: every scalar here (x, y, w0, w1) is secret.
 */
import { p256 } from "@noble/curves/nist.js";
import { bytesToNumberBE, numberToBytesBE } from "@noble/curves/utils.js";
import type { CryptoBackend } from "../crypto/backend.ts";
import { SHA256_SIZE } from "../crypto/backend.ts";
import { hkdfSha256 } from "../crypto/hkdf.ts";
import { fromHex } from "../bytes.ts";

type Point = InstanceType<typeof p256.Point>;
const Point = p256.Point;

/** n, the order of the P-256 group (its cofactor h is 1, so RFC 9383's h·X multiplications vanish). */
export const GROUP_ORDER = Point.Fn.ORDER;
/** Uncompressed SEC1: 04 || x || y, the only encoding on the wire and in the transcript. */
export const POINT_SIZE = 65;
export const UNCOMPRESSED_PREFIX = 0x04;
/** Scalars (w0 in the transcript, x, y) are 32 bytes big-endian, zero-padded. */
export const SCALAR_SIZE = 32;
/** Nh of §4: the MAC and hash output size. */
export const MAC_SIZE = SHA256_SIZE;

/** §4, P-256 M and N (compressed in the RFC); their tables serve every record alike. */
const M = Point.fromBytes(fromHex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f")).precompute(6);
const N = Point.fromBytes(fromHex("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49")).precompute(6);
export const M_BYTES: Uint8Array = M.toBytes(false);
export const N_BYTES: Uint8Array = N.toBytes(false);

const CONFIRMATION_KEYS_INFO = new TextEncoder().encode("ConfirmationKeys");
const SHARED_KEY_INFO = new TextEncoder().encode("SharedKey");
const EMPTY = new Uint8Array(0);

/** Thrown for any input the protocol must reject; the machines turn it into the ordinary AuthError. */
export class InvalidPointError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InvalidPointError";
  }
}

/**
 * Decodes a point received from the peer (or read from a record), exactly as docs/PROTOCOL.md §v3
 * says: 65 bytes, prefix 04, both coordinates below p, on the curve. Compressed (02, 03), hybrid
 * (06, 07) and the identity (which has no 65-byte encoding) are rejected; with cofactor 1 being on
 * the curve is the whole subgroup check.
 */
export function decodePoint(bytes: Uint8Array): Point {
  if (bytes.length !== POINT_SIZE || bytes[0] !== UNCOMPRESSED_PREFIX) throw new InvalidPointError("point is not 65-byte uncompressed SEC1");
  let p: Point;
  try {
    // fromBytes rejects coordinates >= p and points off the curve (assertValidity).
    p = Point.fromBytes(bytes);
  } catch (e) {
    throw new InvalidPointError("point is not on P-256", { cause: e });
  }
  if (p.is0()) throw new InvalidPointError("identity point");
  return p;
}

/** Encodes a computed point; the identity (from a hostile share) is an error, never bytes. */
function encodePoint(p: Point, what: string): Uint8Array {
  if (p.is0()) throw new InvalidPointError(`${what} is the identity`);
  return p.toBytes(false);
}

/** The 32-byte big-endian encoding of a scalar below n. */
export function scalarToBytes(s: bigint): Uint8Array {
  return numberToBytesBE(s, SCALAR_SIZE);
}

/** A big-endian integer, unreduced (a record's w0, checked against n by its caller). */
export function scalarFromBytes(b: Uint8Array): bigint {
  return bytesToNumberBE(b);
}

/** A big-endian integer reduced mod n (RFC 9383 §3.2: w0 = w0s mod p, with p the group order). */
export function scalarFromBytesModN(b: Uint8Array): bigint {
  return bytesToNumberBE(b) % GROUP_ORDER;
}

/**
 * A fresh scalar, uniform in [1, n-1] up to 2^-64: 40 random bytes reduced mod (n-1), plus 1
 * (FIPS 186-5 A.2.1). Randomness comes from the backend, like every other key in the project.
 */
export function randomScalar(crypto: CryptoBackend): bigint {
  return (bytesToNumberBE(crypto.randomBytes(40)) % (GROUP_ORDER - 1n)) + 1n;
}

/** §3.3 prover: shareP = X = x·G + w0·M. */
export function proverShare(w0: bigint, x: bigint): Uint8Array {
  return encodePoint(Point.BASE.multiply(x).add(M.multiply(w0)), "shareP");
}

export interface CurveResult {
  Z: Uint8Array;
  V: Uint8Array;
}

/** §3.3 prover, on receiving shareV: Z = h·x·(Y - w0·N), V = h·w1·(Y - w0·N). */
export function proverFinish(w0: bigint, w1: bigint, x: bigint, shareV: Uint8Array): CurveResult {
  const base = decodePoint(shareV).subtract(N.multiply(w0));
  if (base.is0()) throw new InvalidPointError("Y - w0·N is the identity");
  return { Z: encodePoint(base.multiply(x), "Z"), V: encodePoint(base.multiply(w1), "V") };
}

export interface VerifierCurveInput {
  /** The record's w0, 32 bytes big-endian, below n. */
  w0: Uint8Array;
  /** The record's L = w1·G, 65 bytes. */
  L: Uint8Array;
  shareP: Uint8Array;
  y: bigint;
}

export interface VerifierCurveResult extends CurveResult {
  shareV: Uint8Array;
}

/**
 * §3.3 verifier: validates shareP and L, then shareV = Y = y·G + w0·N, Z = h·y·(X - w0·M),
 * V = h·y·L. All five multiplications of the server's handshake, and nothing else: the unit a
 * driver moves into the worker pool. Real and fake records take exactly this path.
 */
export function verifierShares(input: VerifierCurveInput): VerifierCurveResult {
  const w0 = bytesToNumberBE(input.w0);
  const L = decodePoint(input.L);
  const X = decodePoint(input.shareP);
  const shareV = encodePoint(Point.BASE.multiply(input.y).add(N.multiply(w0)), "shareV");
  const base = X.subtract(M.multiply(w0));
  if (base.is0()) throw new InvalidPointError("X - w0·M is the identity");
  return { shareV, Z: encodePoint(base.multiply(input.y), "Z"), V: encodePoint(L.multiply(input.y), "V") };
}

/** L = w1·G, the verifier's half of the record (§3.2). */
export function verifierPoint(w1: bigint): Uint8Array {
  return encodePoint(Point.BASE.multiply(w1), "L");
}

export interface TranscriptInput extends CurveResult {
  context: Uint8Array;
  idProver: Uint8Array;
  idVerifier: Uint8Array;
  shareP: Uint8Array;
  shareV: Uint8Array;
  /** 32 bytes big-endian. */
  w0: Uint8Array;
}

/**
 * Each part as an 8-byte little-endian length, then its bytes (§3.4's len(x) || x). The w0/w1
 * derivation's HKDF info uses the same encoding.
 */
export function lengthPrefixed(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += 8 + p.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const p of parts) {
    view.setBigUint64(off, BigInt(p.length), true);
    out.set(p, off + 8);
    off += 8 + p.length;
  }
  return out;
}

/** §3.4: TT = Context, idProver, idVerifier, M, N, shareP, shareV, Z, V, w0, each length-prefixed. */
export function transcript(t: TranscriptInput): Uint8Array {
  return lengthPrefixed([t.context, t.idProver, t.idVerifier, M_BYTES, N_BYTES, t.shareP, t.shareV, t.Z, t.V, t.w0]);
}

export interface KeySchedule {
  K_main: Uint8Array;
  K_confirmP: Uint8Array;
  K_confirmV: Uint8Array;
  K_shared: Uint8Array;
}

/**
 * §3.4: K_main = Hash(TT); K_confirmP || K_confirmV = KDF(nil, K_main, "ConfirmationKeys");
 * K_shared = KDF(nil, K_main, "SharedKey"), with KDF = HKDF-SHA256 and Nh = 32.
 */
export function keySchedule(crypto: CryptoBackend, tt: Uint8Array): KeySchedule {
  const K_main = crypto.sha256(tt);
  const confirm = hkdfSha256(crypto, EMPTY, K_main, CONFIRMATION_KEYS_INFO, 2 * MAC_SIZE);
  return {
    K_main,
    K_confirmP: confirm.subarray(0, MAC_SIZE),
    K_confirmV: confirm.subarray(MAC_SIZE),
    K_shared: hkdfSha256(crypto, EMPTY, K_main, SHARED_KEY_INFO, MAC_SIZE),
  };
}

/** §3.4: confirmP = MAC(K_confirmP, shareV), sent by the prover. */
export function confirmP(crypto: CryptoBackend, keys: KeySchedule, shareV: Uint8Array): Uint8Array {
  return crypto.hmacSha256(keys.K_confirmP, shareV);
}

/** §3.4: confirmV = MAC(K_confirmV, shareP), sent by the verifier. */
export function confirmV(crypto: CryptoBackend, keys: KeySchedule, shareP: Uint8Array): Uint8Array {
  return crypto.hmacSha256(keys.K_confirmV, shareP);
}
