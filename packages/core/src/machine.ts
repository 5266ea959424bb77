/**
 * What a driver (packages/core/src/driver/, the server's connection, the client's session) may know
 * about a protocol machine: capabilities, never identities. A driver holds only these interfaces: it
 * never names a version, tests a class, or compares a state name (docs/ARCHITECTURE.md).
 */
import { AuthError, NstpError, ProtocolError } from "./errors.ts";
import type { Output } from "./events.ts";
import type { AeadJob } from "./v2/cipher.ts";
import type { PreparedFrames } from "./v2/writer.ts";
import type { VerifierCurveResult } from "./v3/spake2plus.ts";

/** What a version allows once established; the registry lists it per version (registry.ts). */
export interface Capabilities {
  /** Either side may send a message nobody asked for (v2, v3); otherwise each request gets one reply. */
  readonly mayPush: boolean;
  /** Every message from the client is answered by exactly one reply, in order (the reference). */
  readonly oneReplyPerMessage: boolean;
  /** The client can prove liveness with a ping, so an idle timeout is fair to apply (lifetime.ts). */
  readonly peerPings: boolean;
}

/**
 * AEAD that may run away from the machine (the worker pool): nonces are taken synchronously in wire
 * order by prepare/splitFrames, the sealing and opening happen elsewhere, and acceptFrames hands the
 * opened frames back in order (pool/ordered-aead.ts).
 */
export interface DeferredAead {
  prepare(messages: readonly Uint8Array[], opts?: SealOptions): PreparedFrames;
  splitFrames(chunk: Uint8Array): AeadJob[];
  acceptFrames(plaintexts: readonly (Uint8Array | null)[]): Output[];
}

/**
 * What the server holds for a user, per kind: the PBKDF2 PSK (legacy, v2) and the SPAKE2+ verifier
 * (v3: w0 and L, RFC 9383 §3.2). A machine takes what it needs from it.
 */
export interface Credential {
  psk?: Uint8Array;
  verifier?: { w0: Uint8Array; L: Uint8Array };
}

/**
 * Per-process stand-ins for a credential the store lacks (an unknown user, or a verifier-only user on
 * a PSK version): the machine goes on with one of the same kind, on the same code path, and fails
 * like a wrong password (docs/PROTOCOL.md).
 */
export interface CredentialFakes {
  psk(username: string): Uint8Array;
  verifier(usernameBytes: Uint8Array): { w0: Uint8Array; L: Uint8Array };
}

/** The PSK a PSK version judges with: the user's, or the fake of the same kind. */
export function pskOrFake(credential: Credential | undefined, fakes: CredentialFakes | undefined, username: string | undefined): Uint8Array {
  if (credential?.psk) return credential.psk;
  if (!fakes || username === undefined) throw new ProtocolError("no credential and no fakes to stand in for it");
  return fakes.psk(username);
}

/** How a batch is sealed. */
export interface SealOptions {
  /** End the session after these messages, with the version's close chunk where it has one (v2, v3). */
  readonly close?: boolean;
  /**
   * The caller hands the sealed bytes to a wire that copies writes (Wire.copiesWrites) and keeps no
   * reference to them: the version may seal into a per-thread buffer that its next seal reuses
   * (v2, v3), instead of fresh memory per batch.
   */
  readonly transient?: boolean;
}

/** What both roles share. */
export interface Machine {
  /** The registry name of the version, for logs and metrics labels only. */
  readonly protocol: string | undefined;
  readonly capabilities: Capabilities;
  receive(chunk: Uint8Array): Output[];
  /** Seals messages towards the peer, packed as the version allows. */
  seal(messages: readonly Uint8Array[], opts?: SealOptions): Uint8Array;
  /** A record or frame is partly received (the driver's partial-input deadline). */
  readonly hasPartialInput: boolean;
  /** Records or frames completed so far; a partial-input deadline checks that it advances. */
  readonly inputProgress: number;
  /** Established, and its AEAD may run elsewhere; undefined otherwise. */
  readonly deferred: DeferredAead | undefined;
  /**
   * The connection is over, for whatever reason (a clean close, a failure, the handshake deadline,
   * an eviction, a shutdown, a reset): zero every secret this machine owns and enter its terminal
   * state. Idempotent; nothing may be sealed or opened after (seal, receive, ping and the deferred
   * AEAD throw). The driver calls it once, after its last seal (a close chunk, the last replies) and
   * after every AEAD batch it handed to the worker pool has come back (AeadPlacement.afterPending):
   * a pooled job holds the key itself and must not run on a zeroed one.
   *
   * Ownership: a machine wipes what it derived or generated for this connection (Noise chaining
   * key, handshake cipher key and ephemeral private key, the HKDF outputs it still holds, v3's
   * confirmation MACs and the keys it derives from the PSK for itself, the transport keys in its
   * channel's CipherStates, legacy's session key). What it was handed is shared and never zeroed: the
   * client's PSK (the caller's, or the client's key cache), the server's PSK or v3 verifier { w0, L }
   * (the key store, the credential cache, cachedVerifierFromPsk, the fakes), the device salt, options
   * objects and anything a test injects; the machine only drops its references. BigInt scalars (v3's
   * x, y, w0/w1 as numbers) cannot be zeroed in JavaScript: their references are dropped. Keys that
   * were replaced before the end are not reachable from here and are not zeroed: the Noise chaining
   * and handshake keys a later MixKey replaced during the handshake, and transport keys a Rekey()
   * replaced (docs/PROTOCOL.md "Key hygiene"). A pool thread zeroes its own copy of a key once its
   * job is done (pool/worker.ts). The native backend keeps a node:crypto KeyObject beside a key array
   * it has used (crypto/native.ts `secretKey`, `x25519PrivateKey`): that copy lives in native memory
   * until the array is collected, and zeroing the array does not reach it.
   */
  dispose(): void;
}

export interface ServerMachine extends Machine {
  /** The driver's answer to "need-key": the user's credential, or undefined for an unknown user. */
  provideCredential(credential: Credential | undefined): Output[];
  provideKey(psk: Uint8Array): Output[];
  /**
   * The driver's answer to "need-curve" (a version whose server curve step runs outside the machine,
   * v3 built with deferCurve): the result of runCurveJob (pool/curve.ts), or its Error.
   */
  provideCurve?(result: VerifierCurveResult | Error): Output[];
  /**
   * Bytes to send before closing when refusing for load or at the handshake deadline: only while the
   * server's answer to the client's guess has not been sent (undefined after that, or where the
   * version has none).
   */
  busySignal(): Uint8Array | undefined;
  /**
   * A message is partly received across records or frames (v2's and v3's "more to follow" chunks,
   * docs/PROTOCOL.md §v2 "Limits"): its first piece arrived, its last has not. Never for a version
   * whose message is one record (the reference: hasPartialInput covers it). The driver's message
   * deadline runs while it holds (driver/deadline.ts MessageDeadline).
   */
  readonly hasPartialMessage: boolean;
  /** Messages begun in more than one piece so far: tells one unfinished message from the next. */
  readonly messagesStarted: number;
  /**
   * Bytes of memory the unfinished message keeps alive (what v2's reader counts against its maximum:
   * assembly.ts); 0 when none. The server bounds their sum over its sessions.
   */
  readonly partialMessageBytes: number;
  /** Handshake steps taken so far (0 before the version's first message parses). */
  readonly handshakeStep: number;
  /** The client's guess is here and only the key is missing (a guess is charged before judging). */
  readonly judgeable: boolean;
  /** The password was found right (the guess is refunded). */
  readonly passwordVerified: boolean;
  /**
   * Ping chunks received so far; absent where the version has none. The driver answers a read that
   * brought pings with one ping() while established (docs/PROTOCOL.md §v2 "Keepalive and dead peers").
   */
  readonly pingsReceived?: number;
  /** One authenticated empty frame towards the client, established only; absent where the version has none. */
  ping?(): Uint8Array;
}

export interface ClientMachine extends Machine {
  readonly protocol: string;
  readonly username: string;
  /** Handshake done: requests may be sealed. */
  readonly established: boolean;
  /** The server still waits for our first frame as key confirmation (a ping sends one). */
  readonly unconfirmed: boolean;
  /** Frames sealed so far towards the server (a keepalive pings only when this stands still). */
  readonly framesSent: number;
  start(): Output[];
  /** One authenticated empty frame (confirmation or keepalive); absent where the version has none. */
  ping?(): Uint8Array;
  /**
   * What the server closing the stream now means, h11-style: the machine knows its state, so the
   * driver needs no state names (ERR_BUSY before the server's first byte, ERR_AUTH after our guess,
   * ERR_CLOSED once established).
   */
  endOfStream(cause?: Error): NstpError;
}

/** The end-of-stream meanings every client version shares. */
export const endOf = {
  /** Nothing from the server yet: our servers refuse for load before their first byte. */
  busy: (cause?: Error) => new NstpError("ERR_BUSY", "server busy: it closed the connection before the handshake", cause ? { cause } : undefined),
  /** After our guess: every authentication failure is a silent close (docs/PROTOCOL.md). */
  auth: (what: string) => new AuthError(`server closed the connection after ${what}`),
  closed: (established: boolean, cause?: Error) =>
    new NstpError("ERR_CLOSED", `server closed the connection${established ? "" : " during the handshake"}`, cause ? { cause } : undefined),
};
