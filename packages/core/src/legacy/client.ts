/**
 * Client side of the reference protocol as a sans-IO state machine.
 *
 *   start --hello sent--> helloSent --session nonce--> proofSent --server proof--> established
 *
 * The client holds its PSK before it starts (the driver derives or looks it up), so no step waits.
 * Hardening over the reference, with no byte changed on the wire: a reply whose nonce starts with the
 * session nonce is our own record reflected back; a reply with no request outstanding, a reply nonce
 * seen recently in this session, or a tag failure is a protocol error that closes the session.
 */
import { GCM_NONCE_SIZE } from "../crypto/backend.ts";
import type { CryptoBackend } from "../crypto/backend.ts";
import { AuthError, DecryptError, NstpError, ProtocolError, TooLargeError } from "../errors.ts";
import type { Output, Random } from "../events.ts";
import { type ClientMachine, type SealOptions, endOf } from "../machine.ts";
import { LEGACY_CAPABILITIES } from "./server.ts";
import { ByteQueue, allocOverwritten, overwritten, feedBounded, startsWith, toHex, utf8 } from "../bytes.ts";
import { clientProof, serverProof, sessionKey } from "./keys.ts";
import {
  CLIENT_NONCE_SIZE,
  MAX_COUNTER,
  MAX_REPLY_BODY,
  PROOF_SIZE,
  RECORD_NONCE_SIZE,
  REPLY_LENGTH_SIZE,
  SESSION_NONCE_SIZE,
  TAG_SIZE,
  checkUsernameBytes,
  clientRecordSize,
  encodeClientHello,
  recordNonce,
  replyBodyLength,
} from "./wire.ts";

/** How many recent reply nonces are remembered to detect a replayed reply (memory per session is bounded). */
export const REPLY_NONCE_MEMORY = 1024;

export interface LegacyClientOptions {
  crypto: CryptoBackend;
  username: string;
  psk: Uint8Array;
  /** Largest reply plaintext accepted (default: the wire maximum, 65507 bytes). */
  maxReplySize?: number;
  random?: Random;
}

type ClientState =
  | { kind: "start" }
  | { kind: "helloSent"; clientNonce: Uint8Array }
  | { kind: "proofSent"; clientNonce: Uint8Array; sessionNonce: Uint8Array; key: Uint8Array }
  | { kind: "established"; sessionNonce: Uint8Array; key: Uint8Array; nextCounter: number; outstanding: number }
  | { kind: "failed" };

export class LegacyClient implements ClientMachine {
  readonly protocol = "legacy" as const;
  readonly capabilities = LEGACY_CAPABILITIES;
  readonly deferred = undefined;
  /** The server proved its key before we sent anything sealed: nothing is owed. */
  readonly unconfirmed = false;
  /** Records sealed so far. */
  framesSent = 0;
  private state: ClientState = { kind: "start" };
  private readonly crypto: CryptoBackend;
  private readonly random: Random;
  private readonly usernameBytes: Uint8Array;
  private readonly psk: Uint8Array;
  private readonly maxBody: number;
  private readonly inbox: ByteQueue;
  private readonly recentNonces = new Set<string>();
  private readonly recentOrder: string[] = [];
  readonly username: string;
  private repliesReceived = 0;

  constructor(opts: LegacyClientOptions) {
    this.crypto = opts.crypto;
    this.random = opts.random ?? ((n) => opts.crypto.randomBytes(n));
    this.username = opts.username;
    this.usernameBytes = utf8(opts.username);
    checkUsernameBytes(this.usernameBytes);
    this.psk = opts.psk;
    const maxReply = opts.maxReplySize ?? MAX_REPLY_BODY;
    this.maxBody = Math.min(MAX_REPLY_BODY, maxReply + GCM_NONCE_SIZE + TAG_SIZE);
    this.inbox = new ByteQueue(REPLY_LENGTH_SIZE + this.maxBody);
  }

  get stateName(): ClientState["kind"] {
    return this.state.kind;
  }

  get established(): boolean {
    return this.state.kind === "established";
  }

  /** Part of a server record is buffered. */
  get hasPartialInput(): boolean {
    return this.inbox.length > 0;
  }

  /** Replies received so far. */
  get inputProgress(): number {
    return this.repliesReceived;
  }

  /**
   * Our servers refuse for load before the session nonce; both protocols close without a word when
   * the proof fails (wrong password or unknown user).
   */
  endOfStream(cause?: Error): NstpError {
    const kind = this.state.kind;
    if (kind === "helloSent") return endOf.busy(cause);
    if (kind === "proofSent") return endOf.auth("our proof: wrong password or unknown user");
    return endOf.closed(kind === "established", cause);
  }

  /** Requests sent whose reply has not arrived. */
  get outstanding(): number {
    return this.state.kind === "established" ? this.state.outstanding : 0;
  }

  /** Emits the client hello. */
  start(): Output[] {
    if (this.state.kind !== "start") throw new ProtocolError(`start in state ${this.state.kind}`);
    const clientNonce = this.random(CLIENT_NONCE_SIZE);
    this.state = { kind: "helloSent", clientNonce };
    return [{ type: "send", data: encodeClientHello(this.usernameBytes, clientNonce) }];
  }

  receive(chunk: Uint8Array): Output[] {
    const out: Output[] = [];
    try {
      if (this.state.kind === "failed") throw new ProtocolError("data after failure");
      feedBounded(this.inbox, chunk, () => this.process(out), () => new TooLargeError("reply exceeds the maximum record size"));
      return out;
    } catch (e) {
      this.fail();
      throw e;
    }
  }

  /** Seals one message; the caller writes the returned record. */
  sealMessage(plaintext: Uint8Array): Uint8Array {
    return this.seal([plaintext]);
  }

  /**
   * One record per message, sealed straight into one output buffer (the reference has no packing and
   * no close message: `close` adds nothing).
   */
  seal(messages: readonly Uint8Array[], _opts?: SealOptions): Uint8Array {
    const s = this.state;
    if (s.kind !== "established") throw new ProtocolError(`message in state ${s.kind}`);
    if (s.nextCounter + messages.length - 1 > MAX_COUNTER) throw new NstpError("ERR_EXHAUSTED", "message counter exhausted: reconnect");
    let total = 0;
    for (const m of messages) total += clientRecordSize(m.length);
    const out = allocOverwritten(total);
    let pos = 0;
    for (const m of messages) {
      const nonce = recordNonce(s.sessionNonce, s.nextCounter, out, pos);
      pos += RECORD_NONCE_SIZE;
      pos += this.crypto.aesGcmSealInto(s.key, nonce, [m], out, pos);
      s.nextCounter++;
      s.outstanding++;
      this.framesSent++;
    }
    return overwritten(out, pos);
  }

  /**
   * The connection is over (machine.ts dispose): the session key is zeroed and the machine fails.
   * The PSK is the caller's (its own, or the client's key cache) and is left alone. Idempotent.
   */
  dispose(): void {
    this.fail();
  }

  /** Any error, or dispose(): failed from now on, with the session key (ours: sessionKey) zeroed. */
  private fail(): void {
    const s = this.state;
    if (s.kind === "proofSent" || s.kind === "established") s.key.fill(0);
    this.state = { kind: "failed" };
    this.inbox.clear();
  }

  private process(out: Output[]): void {
    for (;;) {
      const s = this.state;
      if (s.kind === "helloSent") {
        if (this.inbox.length < SESSION_NONCE_SIZE) return;
        const sessionNonce = this.inbox.take(SESSION_NONCE_SIZE);
        const key = sessionKey(this.crypto, this.psk, s.clientNonce, sessionNonce);
        const proof = clientProof(this.crypto, key, s.clientNonce, sessionNonce, this.usernameBytes);
        this.state = { kind: "proofSent", clientNonce: s.clientNonce, sessionNonce, key };
        out.push({ type: "send", data: proof });
      } else if (s.kind === "proofSent") {
        if (this.inbox.length < PROOF_SIZE) return;
        const proof = this.inbox.take(PROOF_SIZE);
        const expected = serverProof(this.crypto, s.key, s.clientNonce, s.sessionNonce, this.usernameBytes);
        if (!this.crypto.timingSafeEqual(expected, proof)) throw new AuthError("server proof did not verify");
        this.state = { kind: "established", sessionNonce: s.sessionNonce, key: s.key, nextCounter: 0, outstanding: 0 };
        out.push({ type: "established", username: this.username });
      } else if (s.kind === "established") {
        if (!this.consumeReply(s, out)) return;
      } else if (s.kind === "start") {
        if (this.inbox.length > 0) throw new ProtocolError("data before the client hello");
        return;
      } else {
        return;
      }
    }
  }

  private consumeReply(s: Extract<ClientState, { kind: "established" }>, out: Output[]): boolean {
    const buf = this.inbox.view();
    if (buf.length === 0) return false;
    if (s.outstanding === 0) throw new ProtocolError("reply with no request outstanding");
    let bodyLen: number | undefined;
    try {
      bodyLen = replyBodyLength(buf, this.maxBody);
    } catch (e) {
      throw e instanceof TooLargeError ? e : new ProtocolError("malformed reply record", { cause: e });
    }
    if (bodyLen === undefined || buf.length < REPLY_LENGTH_SIZE + bodyLen) return false;
    const nonce = buf.slice(REPLY_LENGTH_SIZE, REPLY_LENGTH_SIZE + GCM_NONCE_SIZE);
    if (startsWith(nonce, s.sessionNonce)) throw new DecryptError("reply is a reflected client record");
    const nonceId = toHex(nonce);
    if (this.recentNonces.has(nonceId)) throw new DecryptError("replayed reply");
    const plaintext = this.crypto.aesGcmOpen(s.key, nonce, buf.subarray(REPLY_LENGTH_SIZE + GCM_NONCE_SIZE, REPLY_LENGTH_SIZE + bodyLen));
    if (!plaintext) throw new DecryptError();
    this.remember(nonceId);
    this.inbox.consume(REPLY_LENGTH_SIZE + bodyLen);
    s.outstanding--;
    this.repliesReceived++;
    out.push({ type: "message", data: plaintext });
    return true;
  }

  private remember(nonceId: string): void {
    this.recentNonces.add(nonceId);
    this.recentOrder.push(nonceId);
    if (this.recentOrder.length > REPLY_NONCE_MEMORY) this.recentNonces.delete(this.recentOrder.shift()!);
  }
}
