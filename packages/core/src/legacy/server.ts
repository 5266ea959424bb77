/**
 * Server side of the reference protocol as a sans-IO state machine.
 *
 * States are named after what has happened:
 *   start --client hello--> helloConsumed --key + proof--> established
 * with "failed" absorbing every error. The session nonce is sent as soon as the hello is parsed, so
 * the (possibly slow) key lookup overlaps the client's round trip.
 *
 * Hardening over the reference, with no byte changed on the wire:
 * - a client record is accepted only if its nonce starts with this session's nonce and its counter
 *   is greater than the last accepted one; anything else closes the connection;
 * - client records carry no length, so boundaries are recovered by trial: a record ends where the
 *   next record's nonce begins, or at the end of what has arrived; a candidate whose tag fails may be
 *   incomplete and is retried when more bytes arrive, within a bounded buffer, a trial credit earned
 *   by the bytes received, and a handful of false boundaries per session;
 * - reply nonces are random but never start with the session nonce, so a reply can never collide
 *   with a client record nonce under the shared key.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { AuthError, DecryptError, ProtocolError, TooLargeError } from "../errors.ts";
import type { Output, Random } from "../events.ts";
import { type Capabilities, type Credential, type CredentialFakes, type SealOptions, type ServerMachine, pskOrFake } from "../machine.ts";
import { ByteQueue, allocOverwritten, overwritten, feedBounded, indexOf, readU32BE, startsWith } from "../bytes.ts";
import { clientProof, serverProof, sessionKey } from "./keys.ts";
import {
  type ClientHello,
  MIN_CLIENT_RECORD,
  PROOF_SIZE,
  RECORD_NONCE_SIZE,
  SESSION_NONCE_SIZE,
  TAG_SIZE,
  clientHelloLength,
  parseClientHello,
  replyRecordSize,
  writeReplyHeader,
} from "./wire.ts";
import { GCM_NONCE_SIZE } from "../crypto/backend.ts";

export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024;
/**
 * Trial decryption is paid for by the bytes the peer sends: every byte received earns this many bytes
 * of trial decryption, every trial spends its length, and a trial the credit cannot pay for closes the
 * connection. The credit is never reset (a verified record earns nothing beyond its bytes), so a peer
 * can make the server decrypt at most this many bytes per byte it sent, however it cuts or crafts its
 * records. An honest 64 KiB record cut into 536-byte segments (the smallest common MSS) spends about
 * 61 bytes per byte received (arrival k retries the k*536 bytes buffered so far: 4 MiB in all).
 */
export const TRIAL_CREDIT_PER_BYTE = 256;
/** Credit saved up to at most this many largest records: a burst of trials cannot exceed it. */
export const TRIAL_CREDIT_RECORDS = 256;
/**
 * A session nonce found inside a record's bytes whose trial fails is a false boundary. Honest
 * ciphertext contains the 8-byte session nonce by chance with probability 2^-64 per position, so an
 * honest session never meets one in practice; a peer that plants them (the nonce every 8 bytes once
 * cost 8,100 trials per record) is closed after this many in the whole session.
 */
export const MAX_FALSE_BOUNDARIES = 8;

export interface LegacyServerOptions {
  crypto: CryptoBackend;
  /** Stand-ins for a PSK the store lacks (provideCredential). */
  fakes?: CredentialFakes;
  /** Largest plaintext accepted in one client message (default 64 KiB). */
  maxMessageSize?: number;
  random?: Random;
}

type ServerState =
  | { kind: "start" }
  | {
      kind: "helloConsumed";
      hello: ClientHello;
      sessionNonce: Uint8Array;
      /** Set once the driver resolved the user's key. */
      key?: Uint8Array;
      /** Set once the 32-byte proof arrived. */
      proof?: Uint8Array;
    }
  | { kind: "established"; hello: ClientHello; sessionNonce: Uint8Array; key: Uint8Array; lastCounter: number }
  | { kind: "failed" };

/** The reference: one reply per message, in order; no pushes, no pings, no close message. */
export const LEGACY_CAPABILITIES: Capabilities = { mayPush: false, oneReplyPerMessage: true, peerPings: false };

export class LegacyServer implements ServerMachine {
  readonly protocol = "legacy" as const;
  readonly capabilities = LEGACY_CAPABILITIES;
  /** Replies are sealed inline: each record is small and its own nonce is random. */
  readonly deferred = undefined;
  private state: ServerState = { kind: "start" };
  private readonly inbox: ByteQueue;
  private readonly crypto: CryptoBackend;
  private readonly fakes: CredentialFakes | undefined;
  private readonly random: Random;
  readonly maxMessageSize: number;
  private readonly maxRecord: number;
  /** Where the next search for a record boundary starts (earlier positions were tried). */
  private searchFrom = MIN_CLIENT_RECORD;
  /** Bytes of trial decryption the peer has paid for and not yet spent (TRIAL_CREDIT_PER_BYTE). */
  private trialCredit = 0;
  private readonly maxTrialCredit: number;
  /** Session nonces inside records whose trial failed, over the whole session. */
  private falseBoundaries = 0;

  constructor(opts: LegacyServerOptions) {
    this.crypto = opts.crypto;
    this.fakes = opts.fakes;
    this.random = opts.random ?? ((n) => opts.crypto.randomBytes(n));
    this.maxMessageSize = opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.maxRecord = RECORD_NONCE_SIZE + this.maxMessageSize + TAG_SIZE;
    // A full record plus the start of the next one's nonce fits; more is never needed.
    this.inbox = new ByteQueue(this.maxRecord + RECORD_NONCE_SIZE);
    this.maxTrialCredit = TRIAL_CREDIT_RECORDS * this.maxRecord;
  }

  get stateName(): ServerState["kind"] {
    return this.state.kind;
  }

  get username(): string | undefined {
    return this.state.kind === "helloConsumed" || this.state.kind === "established" ? this.state.hello.username : undefined;
  }

  /** Records accepted so far: advances whenever a partial record completes. */
  get inputProgress(): number {
    return this.state.kind === "established" ? this.state.lastCounter + 1 : 0;
  }

  /**
   * Handshake steps taken: 1 hello parsed, 2 proof arrived, 3 established. Admission treats a
   * connection whose step does not advance as stalled, however many bytes it sends.
   */
  get handshakeStep(): number {
    const s = this.state;
    return s.kind === "helloConsumed" ? (s.proof ? 2 : 1) : s.kind === "established" ? 3 : 0;
  }

  /** The client's proof verified: the guess charged for judging it is refunded. */
  get passwordVerified(): boolean {
    return this.state.kind === "established";
  }

  /** The proof is here and only the key is missing: providing it now judges the password. */
  get judgeable(): boolean {
    const s = this.state;
    return s.kind === "helloConsumed" && s.proof !== undefined && s.key === undefined;
  }

  /** True while part of a record is buffered: the driver runs the partial-message deadline then. */
  get hasPartialInput(): boolean {
    return this.inbox.length > 0;
  }

  /** A reference message is one record: a partial one is partial input (its record deadline). */
  get hasPartialMessage(): boolean {
    return false;
  }

  get messagesStarted(): number {
    return 0;
  }

  get partialMessageBytes(): number {
    return 0;
  }

  /** Feeds bytes from the peer. Throws an NstpError when the connection must close. */
  receive(chunk: Uint8Array): Output[] {
    const out: Output[] = [];
    try {
      if (this.state.kind === "failed") throw new ProtocolError("data after failure");
      this.trialCredit = Math.min(this.maxTrialCredit, this.trialCredit + TRIAL_CREDIT_PER_BYTE * chunk.length);
      feedBounded(this.inbox, chunk, () => this.process(out), () => new TooLargeError(`client message exceeds ${this.maxMessageSize} bytes`));
      return out;
    } catch (e) {
      this.fail();
      throw e;
    }
  }

  /** The driver's answer to "need-key": the user's PSK, or a dummy key for an unknown user. */
  /** The user's PSK, or a fake one for an unknown or verifier-only user: the same path either way. */
  provideCredential(credential: Credential | undefined): Output[] {
    return this.provideKey(pskOrFake(credential, this.fakes, this.username));
  }

  provideKey(psk: Uint8Array): Output[] {
    const s = this.state;
    if (s.kind !== "helloConsumed" || s.key) throw new ProtocolError(`key provided in state ${s.kind}`);
    s.key = sessionKey(this.crypto, psk, s.hello.clientNonce, s.sessionNonce);
    const out: Output[] = [];
    try {
      this.process(out);
    } catch (e) {
      this.fail();
      throw e;
    }
    return out;
  }

  /** Seals one reply record for the established session. */
  sealReply(plaintext: Uint8Array): Uint8Array {
    return this.seal([plaintext]);
  }

  /** The reference has no busy signal: a refusal is a close before the session nonce. */
  busySignal(): undefined {
    return undefined;
  }

  /**
   * Seals replies, one record each, straight into one output buffer (the reference has no packing
   * and no close message: `close` adds nothing).
   */
  seal(messages: readonly Uint8Array[], _opts?: SealOptions): Uint8Array {
    const s = this.state;
    if (s.kind !== "established") throw new ProtocolError(`reply in state ${s.kind}`);
    let total = 0;
    for (const m of messages) total += replyRecordSize(m.length);
    const out = allocOverwritten(total);
    let pos = 0;
    for (const m of messages) {
      let nonce = this.random(GCM_NONCE_SIZE);
      // A reply nonce that began with the session nonce could repeat a client record nonce under the
      // same key (probability 2^-64 per reply, but the check is free) and would look reflected.
      while (startsWith(nonce, s.sessionNonce)) nonce = this.random(GCM_NONCE_SIZE);
      pos = writeReplyHeader(out, pos, nonce, m.length);
      pos += this.crypto.aesGcmSealInto(s.key, nonce, [m], out, pos);
    }
    return overwritten(out, pos);
  }

  /**
   * The connection is over (machine.ts dispose): the session key is zeroed and the machine fails.
   * The PSK given to provideKey is the key store's: it was never kept. Idempotent.
   */
  dispose(): void {
    this.fail();
  }

  /** Any error, or dispose(): failed from now on, with the session key (ours: sessionKey) zeroed. */
  private fail(): void {
    const s = this.state;
    if ((s.kind === "helloConsumed" || s.kind === "established") && s.key) s.key.fill(0);
    this.state = { kind: "failed" };
    this.inbox.clear();
  }

  private process(out: Output[]): void {
    for (;;) {
      const s = this.state;
      if (s.kind === "start") {
        if (!this.consumeHello(out)) return;
      } else if (s.kind === "helloConsumed") {
        if (!s.proof) {
          if (this.inbox.length < PROOF_SIZE) return;
          s.proof = this.inbox.take(PROOF_SIZE);
        }
        if (!s.key) return;
        this.verifyProof(s.hello, s.sessionNonce, s.key, s.proof, out);
      } else if (s.kind === "established") {
        if (!this.consumeRecord(s, out)) return;
      } else {
        return;
      }
    }
  }

  private consumeHello(out: Output[]): boolean {
    const buf = this.inbox.view();
    if (buf.length === 0) return false;
    if (buf[0] === 0) throw new ProtocolError("empty username");
    const len = clientHelloLength(buf[0]!);
    if (buf.length < len) return false;
    const hello = parseClientHello(this.inbox.take(len));
    const sessionNonce = this.random(SESSION_NONCE_SIZE);
    this.state = { kind: "helloConsumed", hello, sessionNonce };
    // need-key first: a driver that must refuse (server busy) can close before the nonce is sent.
    out.push({ type: "need-key", username: hello.username }, { type: "send", data: sessionNonce });
    return true;
  }

  private verifyProof(hello: ClientHello, sessionNonce: Uint8Array, key: Uint8Array, proof: Uint8Array, out: Output[]): void {
    const expected = clientProof(this.crypto, key, hello.clientNonce, sessionNonce, hello.usernameBytes);
    // Compute, verify, then commit: the state changes only after the proof checks out.
    if (!this.crypto.timingSafeEqual(expected, proof)) throw new AuthError();
    const mine = serverProof(this.crypto, key, hello.clientNonce, sessionNonce, hello.usernameBytes);
    this.state = { kind: "established", hello, sessionNonce, key, lastCounter: -1 };
    out.push({ type: "send", data: mine }, { type: "established", username: hello.username });
  }

  /** Extracts at most one record from the inbox; returns true if one was consumed. */
  private consumeRecord(s: Extract<ServerState, { kind: "established" }>, out: Output[]): boolean {
    const buf = this.inbox.view();
    if (buf.length === 0) return false;
    // Check as much of the session nonce as has arrived: a stranger's nonce closes at once.
    const have = Math.min(buf.length, SESSION_NONCE_SIZE);
    if (!startsWith(s.sessionNonce.subarray(0, have), buf.subarray(0, have))) {
      throw new DecryptError("record nonce is not of this session");
    }
    if (buf.length < RECORD_NONCE_SIZE) return false;
    const counter = readU32BE(buf, SESSION_NONCE_SIZE);
    if (counter <= s.lastCounter) throw new DecryptError("replayed or reordered record");
    if (buf.length < MIN_CLIENT_RECORD) return false;

    const nonce = buf.subarray(0, RECORD_NONCE_SIZE);
    // Candidate ends: every later occurrence of the session nonce (the next record's start), then the
    // end of the buffered bytes. Positions before searchFrom were tried on an earlier arrival.
    let from = Math.max(this.searchFrom, MIN_CLIENT_RECORD);
    for (;;) {
      const at = indexOf(buf, s.sessionNonce, from);
      const end = at < 0 ? buf.length : at;
      const plaintext = this.tryOpen(s.key, nonce, buf.subarray(RECORD_NONCE_SIZE, end));
      if (plaintext) {
        s.lastCounter = counter;
        this.inbox.consume(end);
        this.searchFrom = MIN_CLIENT_RECORD;
        out.push({ type: "message", data: plaintext });
        return true;
      }
      if (at < 0) break;
      // The next record's nonce (session nonce || counter + 1) ends this one: if the bytes before it
      // do not verify, this record was forged or corrupted, not incomplete (a chance occurrence inside
      // the ciphertext has probability 2^-96 per position).
      if (at + RECORD_NONCE_SIZE <= buf.length && readU32BE(buf, at + SESSION_NONCE_SIZE) === counter + 1) {
        throw new DecryptError();
      }
      if (++this.falseBoundaries > MAX_FALSE_BOUNDARIES) throw new DecryptError("session nonce planted inside records");
      from = at + 1;
    }
    // Nothing verified: the record may be incomplete. Search only new positions next time (an
    // occurrence may straddle the end, so back off by the nonce size).
    this.searchFrom = Math.max(MIN_CLIENT_RECORD, buf.length - SESSION_NONCE_SIZE + 1);
    if (buf.length >= this.maxRecord) throw new TooLargeError(`client message exceeds ${this.maxMessageSize} bytes`);
    return false;
  }

  private tryOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (sealed.length - TAG_SIZE > this.maxMessageSize) return null;
    // Paid before it is done: a peer out of credit is closed without the work.
    if (sealed.length > this.trialCredit) throw new ProtocolError("record boundary not found within the trial credit");
    this.trialCredit -= sealed.length;
    // Both backends return the plaintext in a fresh buffer, so it outlives the inbox view.
    return this.crypto.aesGcmOpen(key, nonce, sealed);
  }
}
