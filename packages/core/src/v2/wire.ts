/**
 * Protocol v2 wire format: every size, offset and parser, in one place. docs/PROTOCOL.md §v2 is the
 * prose version of this file.
 *
 *   preamble   00 'N' 'S' 'T' 'P' 02 | ulen (1..255) | username (UTF-8)     = the Noise prologue
 *   message 1  u16be length (48) | Noise NNpsk0 "-> psk, e" (32-byte e, 16-byte tag of empty payload)
 *   message 2  u16be length (48) | Noise NNpsk0 "<- e, ee"
 *   frames     u16be length | AES-256-GCM ciphertext of one or more chunks, empty AAD
 *   chunk      type (0 last, 1 more, 2 close, 3 ping) | u16be body length | body
 *
 * The client's first frame is the key confirmation (docs/PROTOCOL.md §v2 "Key confirmation"): the
 * server counts a session only once it has authenticated a frame from the client.
 */
import { fromUtf8, readU16BE, startsWith, writeU16BE } from "../bytes.ts";
import { GCM_TAG_SIZE, X25519_KEY_SIZE } from "../crypto/backend.ts";
import { ProtocolError } from "../errors.ts";

export const PROTOCOL_NAME = "Noise_NNpsk0_25519_AESGCM_SHA256";
/** First byte 0: the reference never sends it (its usernames are 1..255 bytes), so one port serves both. */
export const V2_MARKER = 0x00;
export const PREAMBLE_MAGIC = new Uint8Array([0x00, 0x4e, 0x53, 0x54, 0x50, 0x02]);
export const MAX_USERNAME_SIZE = 255;
/** Every length-prefixed unit (handshake messages, frames) starts with a u16be length: the frame header. */
export const LENGTH_SIZE = 2;
export const FRAME_HEADER_SIZE = LENGTH_SIZE;
/** AES-GCM's tag: the one definition is the crypto interface's (crypto/backend.ts). */
export const TAG_SIZE = GCM_TAG_SIZE;
/** Curve25519 public key (Noise §4.1 DHLEN). */
export const EPHEMERAL_SIZE = X25519_KEY_SIZE;
/** Both handshake messages: an ephemeral key and the tag of the empty payload. */
export const HANDSHAKE_MESSAGE_SIZE = EPHEMERAL_SIZE + TAG_SIZE;
/**
 * What a server that refuses for load sends in place of message 2, then closes: a zero length, which
 * no Noise message can have, so a peer that does not know it fails the handshake as it should.
 */
export const BUSY_SIGNAL = new Uint8Array(LENGTH_SIZE);
/** The largest length a frame header can state: 2^16 - 1 (Noise §3 caps messages at 65,535 bytes too). */
export const MAX_FRAME_CIPHERTEXT = 2 ** (8 * LENGTH_SIZE) - 1;
export const MAX_FRAME_PLAINTEXT = MAX_FRAME_CIPHERTEXT - TAG_SIZE;
/** Chunk header: type (1 byte), then the body's length (u16be). */
export const CHUNK_TYPE_SIZE = 1;
export const CHUNK_LENGTH_OFFSET = CHUNK_TYPE_SIZE;
export const CHUNK_LENGTH_SIZE = 2;
export const CHUNK_HEADER_SIZE = CHUNK_TYPE_SIZE + CHUNK_LENGTH_SIZE;
export const MAX_CHUNK_BODY = MAX_FRAME_PLAINTEXT - CHUNK_HEADER_SIZE;
/** The smallest frame: the tag of one chunk header (a close or an empty message). */
export const MIN_FRAME_CIPHERTEXT = CHUNK_HEADER_SIZE + TAG_SIZE;
export const CHUNK_LAST = 0;
export const CHUNK_MORE = 1;
export const CHUNK_CLOSE = 2;
/**
 * An empty chunk the receiver ignores: a client with nothing to say right after message 2 sends one
 * so that its first frame confirms its key; it also serves as a keepalive against the idle timeout.
 */
export const CHUNK_PING = 3;
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
/** Each direction calls Noise Rekey() after every 2^20 frames it has carried. */
export const REKEY_INTERVAL = 2 ** 20;

export interface Preamble {
  username: string;
  /** The preamble exactly as sent: the Noise prologue. */
  bytes: Uint8Array;
}

/** `magic` is v2's unless given: v3's preamble differs only in its version byte. */
export function encodePreamble(usernameBytes: Uint8Array, magic: Uint8Array = PREAMBLE_MAGIC): Uint8Array {
  if (usernameBytes.length < 1 || usernameBytes.length > MAX_USERNAME_SIZE) throw new RangeError("username must be 1..255 bytes of UTF-8");
  const out = new Uint8Array(magic.length + 1 + usernameBytes.length);
  out.set(magic, 0);
  out[magic.length] = usernameBytes.length;
  out.set(usernameBytes, magic.length + 1);
  return out;
}

/**
 * Parses the preamble at the start of `buf`: undefined while incomplete, a ProtocolError as soon as a
 * byte that has arrived is wrong (a marker followed by junk closes at once).
 */
export function parsePreamble(buf: Uint8Array, magic: Uint8Array = PREAMBLE_MAGIC): Preamble | undefined {
  const have = Math.min(buf.length, magic.length);
  if (!startsWith(magic.subarray(0, have), buf.subarray(0, have))) throw new ProtocolError(`bad v${magic[magic.length - 1]} preamble`);
  if (buf.length <= magic.length) return undefined;
  const ulen = buf[magic.length]!;
  if (ulen === 0) throw new ProtocolError("empty username");
  const total = magic.length + 1 + ulen;
  if (buf.length < total) return undefined;
  const bytes = buf.slice(0, total);
  let username: string;
  try {
    username = fromUtf8(bytes.subarray(magic.length + 1));
  } catch (e) {
    throw new ProtocolError("username is not valid UTF-8", { cause: e });
  }
  return { username, bytes };
}

/** Writes the frame header (the ciphertext's length) at `at`; returns where the ciphertext starts. */
export function writeFrameHeader(out: Uint8Array, at: number, ciphertextLength: number): number {
  if (ciphertextLength > MAX_FRAME_CIPHERTEXT) throw new RangeError("frame too large");
  writeU16BE(out, at, ciphertextLength);
  return at + FRAME_HEADER_SIZE;
}

/** The length a frame header at `at` states (the caller has checked that LENGTH_SIZE bytes are there). */
export function readFrameHeader(buf: Uint8Array, at: number): number {
  return readU16BE(buf, at);
}

/** Length of the u16-prefixed unit at the start of `buf`, or undefined if the prefix is incomplete. */
export function framedLength(buf: Uint8Array, at = 0): number | undefined {
  return buf.length - at < FRAME_HEADER_SIZE ? undefined : readFrameHeader(buf, at);
}

/** `body` behind its frame header: the handshake messages' framing. */
export function encodeFramed(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE + body.length);
  out.set(body, writeFrameHeader(out, 0, body.length));
  return out;
}

/** Writes a chunk header at `at`; returns where the body starts. */
export function writeChunkHeader(out: Uint8Array, at: number, type: number, bodyLength: number): number {
  out[at] = type;
  writeU16BE(out, at + CHUNK_LENGTH_OFFSET, bodyLength);
  return at + CHUNK_HEADER_SIZE;
}

/** The type of the chunk whose header starts at `at` (CHUNK_HEADER_SIZE bytes are there). */
export function chunkType(plaintext: Uint8Array, at: number): number {
  return plaintext[at]!;
}

/** The body length of the chunk whose header starts at `at`. */
export function chunkBodyLength(plaintext: Uint8Array, at: number): number {
  return readU16BE(plaintext, at + CHUNK_LENGTH_OFFSET);
}
