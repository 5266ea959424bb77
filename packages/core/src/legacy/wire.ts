/**
 * The Dart reference protocol's wire format ("legacy"), every size and offset named here and nowhere
 * else. Layout (docs/PROTOCOL.md, section "Legacy"):
 *
 *   client hello  = [username length: 1][username: 1..255, UTF-8][client nonce: 16]
 *   server hello  = [session nonce: 8]
 *   client proof  = HMAC-SHA256(sessionKey, clientNonce || sessionNonce || username)   (32)
 *   server proof  = HMAC-SHA256(sessionKey, sessionNonce || clientNonce || username)   (32)
 *   client record = [sessionNonce: 8][counter: uint32 BE][ciphertext][tag: 16]          (no length!)
 *   server record = [length: uint16 BE][nonce: 12][ciphertext][tag: 16]
 */
import { GCM_NONCE_SIZE, GCM_TAG_SIZE, SHA256_SIZE } from "../crypto/backend.ts";
import { ProtocolError, TooLargeError } from "../errors.ts";
import { concat, fromUtf8, readU16BE, writeU16BE, writeU32BE } from "../bytes.ts";

export const USERNAME_LENGTH_SIZE = 1;
export const MIN_USERNAME_BYTES = 1;
export const MAX_USERNAME_BYTES = 255;
export const CLIENT_NONCE_SIZE = 16;
export const SESSION_NONCE_SIZE = 8;
export const PROOF_SIZE = SHA256_SIZE;
export const COUNTER_SIZE = 4;
export const MAX_COUNTER = 0xffff_ffff;
/** sessionNonce || counter */
export const RECORD_NONCE_SIZE = SESSION_NONCE_SIZE + COUNTER_SIZE;
export const TAG_SIZE = GCM_TAG_SIZE;
/** Smallest client record: nonce and tag around an empty message. */
export const MIN_CLIENT_RECORD = RECORD_NONCE_SIZE + TAG_SIZE;
export const REPLY_LENGTH_SIZE = 2;
/** The uint16 length covers nonce, ciphertext and tag. */
export const MAX_REPLY_BODY = 0xffff;
export const MIN_REPLY_BODY = GCM_NONCE_SIZE + TAG_SIZE;
export const MAX_REPLY_PLAINTEXT = MAX_REPLY_BODY - GCM_NONCE_SIZE - TAG_SIZE;

export { PBKDF2_ITERATIONS, PSK_SIZE } from "../keys/password.ts";
/** The reference demo's device salt and user; running on them prints a warning. */
export const DEMO_DEVICE_SALT = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
export const DEMO_USERNAME = "alice";
export const DEMO_PASSWORD = "userpassword";
export const DEMO_PORT = 8080;
/** The reference server's reply prefix. */
export const REFERENCE_REPLY_PREFIX = "Server received: ";

export interface ClientHello {
  username: string;
  usernameBytes: Uint8Array;
  clientNonce: Uint8Array;
}

export function encodeClientHello(usernameBytes: Uint8Array, clientNonce: Uint8Array): Uint8Array {
  checkUsernameBytes(usernameBytes);
  if (clientNonce.length !== CLIENT_NONCE_SIZE) throw new RangeError("client nonce must be 16 bytes");
  return concat(Uint8Array.of(usernameBytes.length), usernameBytes, clientNonce);
}

export function checkUsernameBytes(usernameBytes: Uint8Array): void {
  if (usernameBytes.length < MIN_USERNAME_BYTES || usernameBytes.length > MAX_USERNAME_BYTES) {
    throw new RangeError(`username must be ${MIN_USERNAME_BYTES}..${MAX_USERNAME_BYTES} bytes of UTF-8`);
  }
}

/** The full length of a client hello, known from its first byte. */
export function clientHelloLength(firstByte: number): number {
  return USERNAME_LENGTH_SIZE + firstByte + CLIENT_NONCE_SIZE;
}

/**
 * Parses a client hello from exactly `clientHelloLength(bytes[0])` bytes. A zero length byte is
 * never sent by the reference (it is the v2 marker), and a username must be valid UTF-8.
 */
export function parseClientHello(bytes: Uint8Array): ClientHello {
  const nameLen = bytes[0] ?? 0;
  if (nameLen < MIN_USERNAME_BYTES) throw new ProtocolError("empty username");
  if (bytes.length !== clientHelloLength(nameLen)) throw new ProtocolError("client hello has the wrong length");
  const usernameBytes = bytes.slice(USERNAME_LENGTH_SIZE, USERNAME_LENGTH_SIZE + nameLen);
  let username: string;
  try {
    username = fromUtf8(usernameBytes);
  } catch (cause) {
    throw new ProtocolError("username is not valid UTF-8", { cause });
  }
  return { username, usernameBytes, clientNonce: bytes.slice(USERNAME_LENGTH_SIZE + nameLen) };
}

/** sessionNonce || counter, written at `at` of `out` (a new array unless given). */
export function recordNonce(sessionNonce: Uint8Array, counter: number, out: Uint8Array = new Uint8Array(RECORD_NONCE_SIZE), at = 0): Uint8Array {
  out.set(sessionNonce, at);
  writeU32BE(out, at + SESSION_NONCE_SIZE, counter);
  return out.subarray(at, at + RECORD_NONCE_SIZE);
}

/** Bytes of a server record, [uint16 length][nonce][sealed], carrying `plaintextLength` bytes. */
export function replyRecordSize(plaintextLength: number): number {
  const bodyLen = GCM_NONCE_SIZE + plaintextLength + TAG_SIZE;
  if (bodyLen > MAX_REPLY_BODY) throw new TooLargeError(`reply of ${plaintextLength} bytes exceeds ${MAX_REPLY_PLAINTEXT}`);
  return REPLY_LENGTH_SIZE + bodyLen;
}

/**
 * Writes a server record's length and nonce at `at` (the caller sized it with replyRecordSize);
 * returns where its sealed bytes, ciphertext and tag, go.
 */
export function writeReplyHeader(out: Uint8Array, at: number, nonce: Uint8Array, plaintextLength: number): number {
  writeU16BE(out, at, nonce.length + plaintextLength + TAG_SIZE);
  out.set(nonce, at + REPLY_LENGTH_SIZE);
  return at + REPLY_LENGTH_SIZE + nonce.length;
}

/** Bytes of a client record, [nonce][sealed], carrying `plaintextLength` bytes. */
export function clientRecordSize(plaintextLength: number): number {
  return RECORD_NONCE_SIZE + plaintextLength + TAG_SIZE;
}

/**
 * The body length announced by a server record header, checked against the bounds before any body
 * byte is buffered. Returns undefined while fewer than 2 bytes are available.
 */
export function replyBodyLength(buffered: Uint8Array, maxBody: number): number | undefined {
  if (buffered.length < REPLY_LENGTH_SIZE) return undefined;
  const len = readU16BE(buffered, 0);
  if (len < MIN_REPLY_BODY) throw new ProtocolError(`reply record of ${len} bytes is shorter than nonce and tag`);
  if (len > maxBody) throw new TooLargeError(`reply record of ${len} bytes exceeds the maximum of ${maxBody}`);
  return len;
}
