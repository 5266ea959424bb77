/**
 * Protocol v3 wire format: every size, offset and parser of the handshake, in one place.
 * docs/PROTOCOL.md §v3 is the prose version of this file. After the handshake the bytes are v2's
 * frames, unchanged (../v2/wire.ts).
 *
 *   preamble   00 'N' 'S' 'T' 'P' 03 | ulen (1..255) | username (UTF-8)
 *   message 1  u16be 65 | shareP (uncompressed SEC1)                        client -> server
 *   message 2  u16be 97 | shareV (65) | confirmV (32)                       server -> client
 *              or the busy signal 00 00 in its place
 *   message 3  u16be 32 | confirmP                                          client -> server
 */
import { utf8 } from "../bytes.ts";
import { ProtocolError } from "../errors.ts";
import { LENGTH_SIZE, MAX_USERNAME_SIZE, type Preamble, encodeFramed, encodePreamble, framedLength, parsePreamble } from "../v2/wire.ts";
import { MAC_SIZE, POINT_SIZE } from "./spake2plus.ts";

// The same things as v2's, imported rather than redefined.
export { BUSY_SIGNAL, LENGTH_SIZE, MAX_USERNAME_SIZE, V2_MARKER as V3_MARKER, type Preamble } from "../v2/wire.ts";

export const V3_VERSION = 0x03;
export const PREAMBLE_MAGIC = new Uint8Array([0x00, 0x4e, 0x53, 0x54, 0x50, V3_VERSION]);
/** The ciphersuite name, which starts the SPAKE2+ Context (the preamble follows it). */
export const SUITE_CONTEXT = utf8("nstp/3 SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256");

export const MESSAGE1_BODY = POINT_SIZE;
export const MESSAGE2_BODY = POINT_SIZE + MAC_SIZE;
export const MESSAGE3_BODY = MAC_SIZE;
export const MESSAGE1_SIZE = LENGTH_SIZE + MESSAGE1_BODY;
export const MESSAGE2_SIZE = LENGTH_SIZE + MESSAGE2_BODY;
export const MESSAGE3_SIZE = LENGTH_SIZE + MESSAGE3_BODY;
/** Offsets inside message 2's body. */
export const SHARE_V_OFFSET = 0;
export const CONFIRM_V_OFFSET = POINT_SIZE;
/** The longest preamble: what a server buffers before it knows the user. */
export const MAX_PREAMBLE_SIZE = PREAMBLE_MAGIC.length + 1 + MAX_USERNAME_SIZE;

export function encodeV3Preamble(usernameBytes: Uint8Array): Uint8Array {
  return encodePreamble(usernameBytes, PREAMBLE_MAGIC);
}

/** undefined while incomplete; a ProtocolError as soon as an arrived byte is wrong. */
export function parseV3Preamble(buf: Uint8Array): Preamble | undefined {
  return parsePreamble(buf, PREAMBLE_MAGIC);
}

/** The username bytes exactly as the preamble carried them: SPAKE2+'s idProver. */
export function preambleUsername(preamble: Uint8Array): Uint8Array {
  return preamble.subarray(PREAMBLE_MAGIC.length + 1);
}

/** Context = the suite string, then the preamble exactly as sent. */
export function spakeContext(preamble: Uint8Array): Uint8Array {
  const out = new Uint8Array(SUITE_CONTEXT.length + preamble.length);
  out.set(SUITE_CONTEXT, 0);
  out.set(preamble, SUITE_CONTEXT.length);
  return out;
}

export function encodeMessage1(shareP: Uint8Array): Uint8Array {
  return encodeExact(shareP, MESSAGE1_BODY);
}

export function encodeMessage2(shareV: Uint8Array, confirmV: Uint8Array): Uint8Array {
  if (shareV.length !== POINT_SIZE || confirmV.length !== MAC_SIZE) throw new RangeError("message 2 fields have fixed sizes");
  const body = new Uint8Array(MESSAGE2_BODY);
  body.set(shareV, SHARE_V_OFFSET);
  body.set(confirmV, CONFIRM_V_OFFSET);
  return encodeFramed(body);
}

export function encodeMessage3(confirmP: Uint8Array): Uint8Array {
  return encodeExact(confirmP, MESSAGE3_BODY);
}

function encodeExact(body: Uint8Array, size: number): Uint8Array {
  if (body.length !== size) throw new RangeError(`handshake body must be ${size} bytes`);
  return encodeFramed(body);
}

/**
 * Checks the length prefix at the front of `buf` against the one length that message may have, as
 * soon as both bytes are there. Returns true once the whole message is buffered.
 */
export function expectMessage(buf: Uint8Array, body: number, name: string): boolean {
  const len = framedLength(buf);
  if (len === undefined) return false;
  if (len !== body) throw new ProtocolError(`${name} of ${len} bytes (must be ${body})`);
  return buf.length >= LENGTH_SIZE + body;
}

export interface Message2 {
  shareV: Uint8Array;
  confirmV: Uint8Array;
}

/** Splits message 2 (length prefix included, exactly MESSAGE2_SIZE bytes). */
export function parseMessage2(message: Uint8Array): Message2 {
  if (message.length !== MESSAGE2_SIZE) throw new ProtocolError("message 2 has the wrong size");
  const body = message.subarray(LENGTH_SIZE);
  return { shareV: body.slice(SHARE_V_OFFSET, CONFIRM_V_OFFSET), confirmV: body.slice(CONFIRM_V_OFFSET) };
}
