/**
 * Client (SPAKE2+ prover) side of protocol v3 as a sans-IO state machine:
 *
 *   start --preamble + message 1--> shareSent --message 2 (confirmV verifies) / message 3--> established
 *
 * with "failed" absorbing every error. The client is established once the server proved its key
 * (confirmV); message 3 leaves first, so the driver's first transport frames follow it on the wire.
 * A confirmV that does not verify is a final ERR_AUTH: the password is wrong or the server is not
 * the one holding this user's verifier; retrying or falling back to an older version cannot help.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { ByteQueue, concat, utf8 } from "../bytes.ts";
import { AuthError, NstpError, ProtocolError } from "../errors.ts";
import { type ClientMachine, endOf } from "../machine.ts";
import type { Output } from "../events.ts";
import { Channel } from "../v2/channel.ts";
import { type EndpointFailed, V2Endpoint } from "../v2/endpoint.ts";
import { DEFAULT_MAX_MESSAGE_SIZE, framedLength } from "../v2/wire.ts";
import { handshakeSecrets, v3TransportKeys, wipeSecrets } from "./handshake.ts";
import type { ProverKeys } from "./keys.ts";
import { SCALAR_SIZE, proverFinish, proverShare, randomScalar, scalarFromBytes, type CurveResult } from "./spake2plus.ts";
import { MESSAGE2_BODY, MESSAGE2_SIZE, encodeMessage1, encodeMessage3, encodeV3Preamble, expectMessage, parseMessage2 } from "./wire.ts";

export interface V3ClientOptions {
  crypto: CryptoBackend;
  username: string;
  /** The server's device salt: SPAKE2+'s idVerifier. */
  deviceSalt: Uint8Array;
  /** w0 and w1 (deriveProverKeys, or the key cache). */
  keys: ProverKeys;
  /**
   * `keys` were derived for this machine alone (the registry's factory derives them from the PSK per
   * connection): the machine zeroes them once its handshake is over, established or not. Otherwise
   * they are the caller's (a cache of its own) and are left alone (machine.ts dispose). Set only by
   * the registry's factory: a caller that sets it with keys it keeps has them zeroed under it.
   * @internal
   */
  ownsKeys?: boolean;
  maxMessageSize?: number;
  /** Only tests inject these. */
  x?: bigint;
  rekeyInterval?: number;
}

/**
 * w0 and w1 (in the options), the preamble and x are held by the handshake states only: an
 * established client keeps the channel, not the password's keys.
 */
type ClientState =
  | { kind: "start"; opts: V3ClientOptions; preamble: Uint8Array }
  | { kind: "shareSent"; opts: V3ClientOptions; preamble: Uint8Array; x: bigint; sent: Uint8Array; shareP: Uint8Array; inbox: ByteQueue }
  | { kind: "established"; channel: Channel }
  | EndpointFailed;

export class V3Client extends V2Endpoint<ClientState> implements ClientMachine {
  readonly protocol = "v3" as const;
  readonly username: string;
  protected state: ClientState;

  constructor(opts: V3ClientOptions) {
    super();
    if (opts.keys.w0.length !== SCALAR_SIZE || opts.keys.w1.length !== SCALAR_SIZE) throw new RangeError(`w0 and w1 must be ${SCALAR_SIZE} bytes`);
    this.username = opts.username;
    this.state = { kind: "start", opts, preamble: encodeV3Preamble(utf8(opts.username)) };
  }

  /** The preamble and message 1, in one write. */
  start(): Output[] {
    const s = this.state;
    if (s.kind !== "start") throw new ProtocolError(`start in state ${s.kind}`);
    const { opts, preamble } = s;
    const x = opts.x ?? randomScalar(opts.crypto);
    const shareP = proverShare(scalarFromBytes(opts.keys.w0), x);
    const sent = concat(preamble, encodeMessage1(shareP));
    this.state = { kind: "shareSent", opts, preamble, x, sent, shareP, inbox: new ByteQueue(MESSAGE2_SIZE) };
    return [{ type: "send", data: sent }];
  }

  /** The server confirmed itself in message 2, so no ping is owed: message 3 is our confirmation. */
  readonly unconfirmed = false;

  /** A close after our share: a wrong password, an unknown user, or a server without v3. */
  endOfStream(cause?: Error): NstpError {
    if (this.state.kind === "shareSent") return endOf.auth("our share: wrong password, unknown user, or a server that does not speak v3");
    return endOf.closed(this.state.kind === "established", cause);
  }

  receive(chunk: Uint8Array): Output[] {
    const s = this.state;
    return this.receiveAfterHandshake(chunk, s.kind === "shareSent" ? (c, out) => this.consumeResponse(s, c, out) : undefined);
  }

  /**
   * A handshake abandoned or failed: w0 and w1 are zeroed if they are this machine's own (ownsKeys);
   * x is a BigInt, which cannot be zeroed: it goes with the state. The device salt and options are
   * the caller's (machine.ts dispose).
   */
  protected override discard(state: ClientState): void {
    if (state.kind === "start" || state.kind === "shareSent") wipeOwnKeys(state.opts);
  }

  /** Takes message 2 from the front of `chunk`; returns how many bytes it used. */
  private consumeResponse(s: Extract<ClientState, { kind: "shareSent" }>, chunk: Uint8Array, out: Output[]): number {
    const take = Math.min(MESSAGE2_SIZE - s.inbox.length, chunk.length);
    s.inbox.push(chunk.subarray(0, take));
    if (framedLength(s.inbox.view()) === 0) throw new NstpError("ERR_BUSY", "server busy: it refused the handshake");
    if (!expectMessage(s.inbox.view(), MESSAGE2_BODY, "message 2")) return take;
    const message2 = s.inbox.take(MESSAGE2_SIZE);
    const { shareV, confirmV } = parseMessage2(message2);
    const { crypto, deviceSalt, keys, maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE, rekeyInterval } = s.opts;
    let curve: CurveResult;
    try {
      curve = proverFinish(scalarFromBytes(keys.w0), scalarFromBytes(keys.w1), s.x, shareV);
    } catch (e) {
      throw new AuthError("the server did not prove knowledge of the password", { cause: e });
    }
    const secrets = handshakeSecrets(crypto, { preamble: s.preamble, deviceSalt, shareP: s.shareP, shareV, Z: curve.Z, V: curve.V, w0: keys.w0 });
    curve.Z.fill(0);
    curve.V.fill(0);
    if (!crypto.timingSafeEqual(confirmV, secrets.confirmV)) {
      wipeSecrets(secrets);
      throw new AuthError("the server did not prove knowledge of the password");
    }
    const message3 = encodeMessage3(secrets.confirmP);
    const transport = v3TransportKeys(crypto, secrets, "client", [s.sent, message2, message3]);
    const channel = new Channel(transport, { maxMessageSize, rekeyInterval });
    // The MACs have done their work (message 3 is a copy); the transport keys live in the channel.
    secrets.confirmP.fill(0);
    secrets.confirmV.fill(0);
    wipeOwnKeys(s.opts);
    this.state = { kind: "established", channel };
    out.push({ type: "send", data: message3 }, { type: "established", username: this.username });
    return take;
  }
}

/** Zeroes w0 and w1 where the machine derived them for itself (V3ClientOptions.ownsKeys). */
function wipeOwnKeys(opts: V3ClientOptions): void {
  if (!opts.ownsKeys) return;
  opts.keys.w0.fill(0);
  opts.keys.w1.fill(0);
}
