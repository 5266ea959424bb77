/**
 * Server (SPAKE2+ verifier) side of protocol v3 as a sans-IO state machine:
 *
 *   start --preamble--> preambleReceived --record + message 1--> [curvePending] --> responseSent
 *         --message 3 (confirmP verifies)--> established
 *
 * with "failed" absorbing every error. "need-key" goes out as soon as the preamble names the user,
 * so the record lookup overlaps message 1. The record is a verifier { w0, L } (provideVerifier), or
 * a PSK from which w0 and L are derived (provideKey, for users stores that hold only PSKs; the
 * derivation adds one base-point multiplication, so a driver must give unknown users the same kind
 * of record as known ones: fake verifiers where it serves verifiers, dummy PSKs where it serves PSKs).
 *
 * Nothing is sent after message 2 until confirmP verifies (docs/PROTOCOL.md §v3): seal() refuses
 * and "established" comes only then, so a driver counts the session only once the client proved
 * its key. Any byte from the client before message 3 is due closes the connection.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { ByteQueue } from "../bytes.ts";
import { AuthError, ProtocolError } from "../errors.ts";
import type { Output } from "../events.ts";
import type { Credential, CredentialFakes, ServerMachine } from "../machine.ts";
import { Channel } from "../v2/channel.ts";
import { type EndpointFailed, V2Endpoint } from "../v2/endpoint.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "../v2/wire.ts";
import { type HandshakeSecrets, handshakeSecrets, v3TransportKeys, wipeSecrets } from "./handshake.ts";
import { type Verifier, cachedVerifierFromPsk, checkVerifier } from "./keys.ts";
import { type VerifierCurveInput, type VerifierCurveResult, randomScalar, verifierShares } from "./spake2plus.ts";
import {
  BUSY_SIGNAL,
  LENGTH_SIZE,
  MAX_PREAMBLE_SIZE,
  MESSAGE1_BODY,
  MESSAGE1_SIZE,
  MESSAGE3_BODY,
  MESSAGE3_SIZE,
  type Preamble,
  encodeMessage1,
  encodeMessage2,
  expectMessage,
  parseV3Preamble,
  preambleUsername,
} from "./wire.ts";

export interface V3ServerOptions {
  crypto: CryptoBackend;
  /** The server's device salt: SPAKE2+'s idVerifier, and the salt of the PSK and of w0/w1. */
  deviceSalt: Uint8Array;
  /** Stand-ins for a verifier the store lacks (provideCredential). */
  fakes?: CredentialFakes;
  maxMessageSize?: number;
  /**
   * Emit "need-curve" instead of doing the scalar multiplications inline, so the driver can run
   * them in the worker pool (then provideCurve).
   */
  deferCurve?: boolean;
  /** Only tests inject these. */
  y?: bigint;
  rekeyInterval?: number;
}

/**
 * Only the handshake states hold the options (the device salt, the fakes, the backend) and the inbox:
 * "established" keeps just what the session uses, so an idle session retains no per-connection
 * options object or handshake buffer (issue 13), and "failed" holds nothing (but a channel that
 * failed established, until dispose() wipes it: v2/endpoint.ts).
 */
type ServerState =
  | { kind: "start"; opts: V3ServerOptions; inbox: ByteQueue }
  | { kind: "preambleReceived"; opts: V3ServerOptions; inbox: ByteQueue; preamble: Preamble; record?: Verifier; shareP?: Uint8Array }
  | { kind: "curvePending"; opts: V3ServerOptions; inbox: ByteQueue; preamble: Preamble; job: VerifierCurveInput }
  /** Message 2 sent; `wire` holds the handshake bytes so far, for the channel-binding hash. */
  | { kind: "responseSent"; opts: V3ServerOptions; inbox: ByteQueue; username: string; secrets: HandshakeSecrets; wire: Uint8Array[] }
  | { kind: "established"; username: string; channel: Channel }
  | EndpointFailed;

/** The preamble and message 1, then message 3: nothing else may arrive before the session. */
const INBOX_CAPACITY = MAX_PREAMBLE_SIZE + MESSAGE1_SIZE;

export class V3Server extends V2Endpoint<ServerState> implements ServerMachine {
  readonly protocol = "v3" as const;
  protected state: ServerState;

  constructor(opts: V3ServerOptions) {
    super();
    this.state = { kind: "start", opts, inbox: new ByteQueue(INBOX_CAPACITY, 64) };
  }

  get username(): string | undefined {
    const s = this.state;
    if (s.kind === "preambleReceived" || s.kind === "curvePending") return s.preamble.username;
    return s.kind === "responseSent" || s.kind === "established" ? s.username : undefined;
  }

  /**
   * Handshake steps taken (for admission, which treats a connection whose step does not advance as
   * stalled): 1 preamble parsed, 2 the client's share arrived, 3 message 2 sent, 4 established.
   */
  get handshakeStep(): number {
    const s = this.state;
    if (s.kind === "preambleReceived") return s.shareP ? 2 : 1;
    return s.kind === "curvePending" ? 2 : s.kind === "responseSent" ? 3 : s.kind === "established" ? 4 : 0;
  }

  /**
   * The client's share is here and only the key is missing: providing it now makes the server answer,
   * which is where v3 charges a guess (the answer lets the client test one password).
   */
  get judgeable(): boolean {
    const s = this.state;
    return s.kind === "preambleReceived" && s.shareP !== undefined && s.record === undefined;
  }

  /** The client proved the password (message 3 verified): the guess charged is refunded. */
  get passwordVerified(): boolean {
    return this.state.kind === "established";
  }

  /**
   * What to send in place of message 2 when refusing for load: v2's busy signal, 00 00; nothing once
   * message 2 has left. Until then (the curve step included) the client has learnt nothing of its
   * password, so a refusal tells it only to come back.
   */
  busySignal(): Uint8Array | undefined {
    const k = this.state.kind;
    return k === "start" || k === "preambleReceived" || k === "curvePending" ? BUSY_SIGNAL : undefined;
  }

  receive(chunk: Uint8Array): Output[] {
    const s = this.state;
    if (s.kind === "responseSent") return this.receiveAfterHandshake(chunk, (c, out) => this.receiveConfirmation(s, c, out));
    if (s.kind !== "start" && s.kind !== "preambleReceived") return this.receiveAfterHandshake(chunk, undefined);
    return this.collect((out) => {
      if (!s.inbox.push(chunk)) throw new ProtocolError("data before the handshake completed");
      this.process(out);
    });
  }

  /** The driver's answer to "need-key" from a verifier-holding store: the record, or a fake one. */
  provideVerifier(record: Verifier): Output[] {
    const s = this.state;
    if (s.kind !== "preambleReceived" || s.record) throw new ProtocolError(`record provided in state ${s.kind}`);
    return this.collect((out) => {
      s.record = checkVerifier(record);
      this.process(out);
    });
  }

  /**
   * The user's verifier; or, from a store that holds only a PSK, one derived from it (on the PSK's
   * first v3 handshake, then cached: keys.ts cachedVerifierFromPsk); or for an unknown
   * user a fake verifier, on the verifier's path.
   */
  provideCredential(credential: Credential | undefined): Output[] {
    if (credential?.verifier) return this.provideVerifier(credential.verifier);
    if (credential?.psk) return this.provideKey(credential.psk);
    const s = this.state;
    if (s.kind !== "preambleReceived" || !s.opts.fakes) throw new ProtocolError(`credential provided in state ${s.kind}`);
    return this.provideVerifier(s.opts.fakes.verifier(preambleUsername(s.preamble.bytes)));
  }

  /** The driver's answer to "need-key" from a PSK store: w0 and L are derived from the PSK. */
  provideKey(psk: Uint8Array): Output[] {
    const s = this.state;
    if (s.kind !== "preambleReceived" || s.record) throw new ProtocolError(`key provided in state ${s.kind}`);
    return this.provideVerifier(cachedVerifierFromPsk(s.opts.crypto, psk, s.opts.deviceSalt, preambleUsername(s.preamble.bytes)));
  }

  /** The driver's answer to "need-curve": verifierShares(job), or the error it threw. */
  provideCurve(result: VerifierCurveResult | Error): Output[] {
    const s = this.state;
    if (s.kind !== "curvePending") throw new ProtocolError(`curve result in state ${s.kind}`);
    return this.collect((out) => {
      if (result instanceof Error) throw new AuthError("message 1 did not verify", { cause: result });
      this.respond(s, s.job, result, out);
    });
  }

  private process(out: Output[]): void {
    const s = this.state;
    if (s.kind === "start") {
      const preamble = this.takePreamble(s.inbox, parseV3Preamble, out);
      if (!preamble) return;
      this.state = { kind: "preambleReceived", opts: s.opts, inbox: s.inbox, preamble };
      this.process(out);
      return;
    }
    if (s.kind !== "preambleReceived") return;
    if (!s.shareP) {
      const buf = s.inbox.view();
      if (!expectMessage(buf, MESSAGE1_BODY, "message 1")) return;
      if (buf.length > MESSAGE1_SIZE) throw new ProtocolError("data before message 2");
      s.shareP = s.inbox.take(MESSAGE1_SIZE).subarray(LENGTH_SIZE);
      // Empty now, and nothing may arrive until message 3 (a few bytes): hold no buffer meanwhile.
      s.inbox.release();
    } else if (s.inbox.length > 0) {
      throw new ProtocolError("data before message 2");
    }
    if (!s.record) return;
    const job: VerifierCurveInput = { w0: s.record.w0, L: s.record.L, shareP: s.shareP, y: s.opts.y ?? randomScalar(s.opts.crypto) };
    if (s.opts.deferCurve) {
      this.state = { kind: "curvePending", opts: s.opts, inbox: s.inbox, preamble: s.preamble, job };
      out.push({ type: "need-curve", job });
      return;
    }
    let result: VerifierCurveResult;
    try {
      result = verifierShares(job);
    } catch (e) {
      // An invalid share, a record whose L is not a point, an identity Z or V, or a library
      // exception: all the ordinary silent failure, like a wrong password.
      throw new AuthError("message 1 did not verify", { cause: e });
    }
    this.respond(s, job, result, out);
  }

  private respond(s: { opts: V3ServerOptions; inbox: ByteQueue; preamble: Preamble }, job: VerifierCurveInput, curve: VerifierCurveResult, out: Output[]): void {
    const { opts, inbox, preamble } = s;
    const { crypto, deviceSalt } = opts;
    const secrets = handshakeSecrets(crypto, { preamble: preamble.bytes, deviceSalt, shareP: job.shareP, shareV: curve.shareV, Z: curve.Z, V: curve.V, w0: job.w0 });
    curve.Z.fill(0);
    curve.V.fill(0);
    const message2 = encodeMessage2(curve.shareV, secrets.confirmV);
    this.state = { kind: "responseSent", opts, inbox, username: preamble.username, secrets, wire: [preamble.bytes, encodeMessage1(job.shareP), message2] };
    out.push({ type: "send", data: message2 });
  }

  /**
   * A failure after message 2 (a wrong confirmP, a malformed message 3), or a handshake abandoned
   * there (the client silent until the deadline, evicted, refused at shutdown, reset): its secrets
   * are wiped. Earlier states hold only what was handed in (the record's w0 and L: the key store's
   * or the credential cache's, never zeroed here) and public shares; y is a BigInt, which cannot be
   * zeroed, and goes with the state (machine.ts dispose).
   */
  protected override discard(state: ServerState): void {
    if (state.kind === "responseSent") wipeSecrets(state.secrets);
  }

  /** Takes message 3 from the front of `chunk`; returns how many bytes it used (the rest are frames). */
  private receiveConfirmation(s: Extract<ServerState, { kind: "responseSent" }>, chunk: Uint8Array, out: Output[]): number {
    const take = Math.min(MESSAGE3_SIZE - s.inbox.length, chunk.length);
    s.inbox.push(chunk.subarray(0, take));
    if (!expectMessage(s.inbox.view(), MESSAGE3_BODY, "message 3")) return take;
    const message3 = s.inbox.take(MESSAGE3_SIZE);
    const { crypto, maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE, rekeyInterval } = s.opts;
    if (!crypto.timingSafeEqual(message3.subarray(LENGTH_SIZE), s.secrets.confirmP)) {
      // Wrong password, unknown user (fake record) and a forged confirmation fail here alike.
      throw new AuthError("confirmP did not verify");
    }
    const channel = new Channel(v3TransportKeys(crypto, s.secrets, "server", [...s.wire, message3]), { maxMessageSize, rekeyInterval });
    // The confirmation MACs have done their work (the transport keys now live in the channel's
    // CipherStates); the new state holds neither them, the options nor the inbox.
    s.secrets.confirmP.fill(0);
    s.secrets.confirmV.fill(0);
    this.state = { kind: "established", username: s.username, channel };
    out.push({ type: "established", username: s.username });
    return take;
  }
}
