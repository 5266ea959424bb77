/**
 * Client (Noise initiator) side of protocol v2 as a sans-IO state machine:
 *   start --preamble + message 1--> initiationSent --message 2--> established
 * with "failed" absorbing every error. The preamble and message 1 leave in one write.
 *
 * The server counts the session only once our first frame authenticates (docs/PROTOCOL.md §v2 "Key
 * confirmation"): a driver with nothing to send right after message 2 sends ping() at once.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { ByteQueue, concat, utf8 } from "../bytes.ts";
import { AuthError, DecryptError, NstpError, ProtocolError } from "../errors.ts";
import { type ClientMachine, endOf } from "../machine.ts";
import type { Output } from "../events.ts";
import { HandshakeState, PSK_SIZE } from "../noise/handshake-state.ts";
import { Channel } from "./channel.ts";
import { type EndpointFailed, V2Endpoint } from "./endpoint.ts";
import {
  DEFAULT_MAX_MESSAGE_SIZE,
  HANDSHAKE_MESSAGE_SIZE,
  LENGTH_SIZE,
  PROTOCOL_NAME,
  encodeFramed,
  encodePreamble,
  framedLength,
} from "./wire.ts";

export interface V2ClientOptions {
  crypto: CryptoBackend;
  username: string;
  /** The PBKDF2-derived key, the same as the reference protocol's PSK. */
  psk: Uint8Array;
  maxMessageSize?: number;
  /** Only tests inject these. */
  ephemeral?: Uint8Array;
  rekeyInterval?: number;
}

/**
 * The PSK (in the options) and the preamble are held by the handshake states only: an established
 * client keeps the channel, not the password's key.
 */
type ClientState =
  | { kind: "start"; opts: V2ClientOptions; preamble: Uint8Array }
  | { kind: "initiationSent"; opts: V2ClientOptions; handshake: HandshakeState; inbox: ByteQueue }
  | { kind: "established"; channel: Channel }
  | EndpointFailed;

const EMPTY = new Uint8Array(0);

export class V2Client extends V2Endpoint<ClientState> implements ClientMachine {
  readonly protocol = "v2" as const;
  readonly username: string;
  protected state: ClientState;

  constructor(opts: V2ClientOptions) {
    super();
    if (opts.psk.length !== PSK_SIZE) throw new RangeError(`PSK must be ${PSK_SIZE} bytes`);
    this.username = opts.username;
    this.state = { kind: "start", opts, preamble: encodePreamble(utf8(opts.username)) };
  }

  start(): Output[] {
    const s = this.state;
    if (s.kind !== "start") throw new ProtocolError(`start in state ${s.kind}`);
    const { opts, preamble } = s;
    const handshake = new HandshakeState({
      crypto: opts.crypto,
      protocolName: PROTOCOL_NAME,
      initiator: true,
      prologue: preamble,
      psks: [opts.psk],
      e: opts.ephemeral,
    });
    const message1 = handshake.writeMessage(EMPTY);
    this.state = { kind: "initiationSent", opts, handshake, inbox: new ByteQueue(LENGTH_SIZE + HANDSHAKE_MESSAGE_SIZE) };
    return [{ type: "send", data: concat(preamble, encodeFramed(message1)) }];
  }

  /** True until a frame has been sealed: the server is still waiting for our key confirmation. */
  get unconfirmed(): boolean {
    return this.state.kind === "established" && this.framesSent === 0;
  }

  /** A close after message 1: a wrong password, an unknown user, or a server without v2 (it stalls or closes). */
  endOfStream(cause?: Error): NstpError {
    if (this.state.kind === "initiationSent") {
      return endOf.auth("our first message: wrong password, unknown user, or a server that does not speak v2");
    }
    return endOf.closed(this.state.kind === "established", cause);
  }

  receive(chunk: Uint8Array): Output[] {
    const s = this.state;
    return this.receiveAfterHandshake(chunk, s.kind === "initiationSent" ? (c, out) => this.consumeResponse(s, c, out) : undefined);
  }

  /**
   * A handshake abandoned or failed after message 1: its chaining key, cipher key and ephemeral
   * private key are zeroed. The PSK in the options is the caller's (machine.ts dispose).
   */
  protected override discard(state: ClientState): void {
    if (state.kind === "initiationSent") state.handshake.wipe();
  }

  /** Takes message 2 from the front of `chunk`; returns how many bytes it used. */
  private consumeResponse(s: Extract<ClientState, { kind: "initiationSent" }>, chunk: Uint8Array, out: Output[]): number {
    const want = LENGTH_SIZE + HANDSHAKE_MESSAGE_SIZE;
    const take = Math.min(want - s.inbox.length, chunk.length);
    s.inbox.push(chunk.subarray(0, take));
    const buf = s.inbox.view();
    const len = framedLength(buf);
    if (len === 0) throw new NstpError("ERR_BUSY", "server busy: it refused the handshake");
    if (len !== undefined && len !== HANDSHAKE_MESSAGE_SIZE) {
      throw new ProtocolError(`handshake message of ${len} bytes: not a v2 server? (a Dart reference server needs --legacy)`);
    }
    if (buf.length < want) return take;
    try {
      s.handshake.readMessage(buf.subarray(LENGTH_SIZE));
    } catch (e) {
      if (e instanceof DecryptError) throw new AuthError("the server did not prove knowledge of the password", { cause: e });
      throw e;
    }
    const channel = new Channel(s.handshake.split(), { maxMessageSize: s.opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE, rekeyInterval: s.opts.rekeyInterval });
    // Split has given the transport keys: the chaining key and the ephemeral key are done.
    s.handshake.wipe();
    this.state = { kind: "established", channel };
    out.push({ type: "established", username: this.username });
    return take;
  }
}
