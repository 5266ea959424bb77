/**
 * What both v3 roles compute once they hold the shares, Z and V: the RFC 9383 transcript with nstp's
 * identities and Context, the confirmation MACs, and the v2 transport keys derived from K_shared.
 * Intermediate keys are wiped before it returns; only the MACs and the two transport keys leave.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { AES_KEY_SIZE } from "../crypto/backend.ts";
import { hkdfSha256 } from "../crypto/hkdf.ts";
import { concat, utf8 } from "../bytes.ts";
import { CipherState } from "../noise/cipher-state.ts";
import type { TransportKeys } from "../noise/handshake-state.ts";
import { type CurveResult, confirmP, confirmV, keySchedule, transcript } from "./spake2plus.ts";
import { preambleUsername, spakeContext } from "./wire.ts";

const TRANSPORT_INFO = utf8("nstp/3 transport");
const HANDSHAKE_HASH_LABEL = utf8("nstp/3 handshake hash");
const EMPTY = new Uint8Array(0);

export interface HandshakeInput extends CurveResult {
  /** The preamble exactly as sent: its username is idProver, and it ends the Context. */
  preamble: Uint8Array;
  /** idVerifier. */
  deviceSalt: Uint8Array;
  shareP: Uint8Array;
  shareV: Uint8Array;
  /** 32 bytes big-endian. */
  w0: Uint8Array;
}

export interface HandshakeSecrets {
  confirmP: Uint8Array;
  confirmV: Uint8Array;
  /** k_c2s || k_s2c = HKDF-SHA256(salt = empty, K_shared, "nstp/3 transport", 64). */
  clientToServer: Uint8Array;
  serverToClient: Uint8Array;
}

/**
 * Zeroes every secret of a handshake that ended before the channel took its transport keys: a wrong
 * or malformed confirmation (the machine fails), or a handshake abandoned after message 2 (its
 * client silent until the deadline, evicted, refused at shutdown, reset: the driver's dispose()).
 * Nothing of it is used again. Once the channel has the transport keys, the channel wipes them
 * (v2/channel.ts wipe). What the collector still holds: the node:crypto KeyObjects the native
 * backend keeps beside keys it used (machine.ts dispose).
 */
export function wipeSecrets(s: HandshakeSecrets): void {
  s.confirmP.fill(0);
  s.confirmV.fill(0);
  s.clientToServer.fill(0);
  s.serverToClient.fill(0);
}

/** RFC 9383 §3.4 with Context = suite || preamble, idProver = username bytes, idVerifier = deviceSalt. */
export function handshakeSecrets(crypto: CryptoBackend, h: HandshakeInput): HandshakeSecrets {
  const tt = transcript({
    context: spakeContext(h.preamble),
    idProver: preambleUsername(h.preamble),
    idVerifier: h.deviceSalt,
    shareP: h.shareP,
    shareV: h.shareV,
    Z: h.Z,
    V: h.V,
    w0: h.w0,
  });
  const keys = keySchedule(crypto, tt);
  const transport = hkdfSha256(crypto, EMPTY, keys.K_shared, TRANSPORT_INFO, 2 * AES_KEY_SIZE);
  const out: HandshakeSecrets = {
    confirmP: confirmP(crypto, keys, h.shareV),
    confirmV: confirmV(crypto, keys, h.shareP),
    clientToServer: transport.slice(0, AES_KEY_SIZE),
    serverToClient: transport.slice(AES_KEY_SIZE),
  };
  for (const k of [tt, keys.K_main, keys.K_confirmP, keys.K_confirmV, keys.K_shared, transport]) k.fill(0);
  return out;
}

/**
 * One Noise CipherState per direction, as v2's Split gives them, so v2's Channel runs unchanged.
 * The "handshake hash" (channel binding, never on the wire) is SHA-256 over a label and the four
 * handshake units exactly as sent: public, and the same on both sides.
 */
export function v3TransportKeys(crypto: CryptoBackend, s: HandshakeSecrets, role: "client" | "server", wire: readonly Uint8Array[]): TransportKeys {
  const c2s = new CipherState(crypto, s.clientToServer);
  const s2c = new CipherState(crypto, s.serverToClient);
  const handshakeHash = crypto.sha256(concat(HANDSHAKE_HASH_LABEL, ...wire));
  return role === "client" ? { send: c2s, receive: s2c, handshakeHash } : { send: s2c, receive: c2s, handshakeHash };
}
