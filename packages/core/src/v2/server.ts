/**
 * Server (Noise responder) side of protocol v2 as a sans-IO state machine:
 *   start --preamble--> preambleConsumed --key + message 1--> responseSent --first frame--> established
 * with "failed" absorbing every error. The driver is asked for the user's key ("need-key") as soon as
 * the preamble names the user, so the lookup overlaps the arrival of message 1.
 *
 * Message 1 of NNpsk0 has no freshness: a recorded one verifies again on any connection. So message 1
 * proves nothing about the peer, and the session counts ("established") only once the client's first
 * transport frame has authenticated under the keys that message 2 gave it (docs/PROTOCOL.md §v2 "Key
 * confirmation"). Until then nothing can be sealed towards the client.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { ByteQueue } from "../bytes.ts";
import { AuthError, DecryptError, ProtocolError } from "../errors.ts";
import type { Output } from "../events.ts";
import { type Credential, type CredentialFakes, type ServerMachine, pskOrFake } from "../machine.ts";
import { HandshakeState, type TransportKeys } from "../noise/handshake-state.ts";
import { Channel } from "./channel.ts";
import { type EndpointFailed, V2Endpoint } from "./endpoint.ts";
import {
  BUSY_SIGNAL,
  DEFAULT_MAX_MESSAGE_SIZE,
  HANDSHAKE_MESSAGE_SIZE,
  LENGTH_SIZE,
  MAX_USERNAME_SIZE,
  PREAMBLE_MAGIC,
  PROTOCOL_NAME,
  type Preamble,
  encodeFramed,
  framedLength,
  parsePreamble,
} from "./wire.ts";

export interface V2ServerOptions {
  crypto: CryptoBackend;
  /** Stand-ins for a PSK the store lacks (provideCredential). */
  fakes?: CredentialFakes;
  maxMessageSize?: number;
  /** Only tests inject these. */
  ephemeral?: Uint8Array;
  rekeyInterval?: number;
}

/**
 * Only the states before message 2 hold the options (the fakes, the backend) and the inbox: from
 * "responseSent" on the machine keeps just the channel and the username, so an idle session
 * retains no per-connection options object or handshake buffer (issue 13).
 */
type ServerState =
  | { kind: "start"; opts: V2ServerOptions; inbox: ByteQueue }
  | { kind: "preambleConsumed"; opts: V2ServerOptions; inbox: ByteQueue; preamble: Preamble; key?: Uint8Array; message1?: Uint8Array }
  /** Message 2 sent; waiting for the client's first frame to prove it holds the session keys. */
  | { kind: "responseSent"; username: string; channel: Channel }
  | { kind: "established"; username: string; channel: Channel }
  | EndpointFailed;

const EMPTY = new Uint8Array(0);
const MESSAGE1_SIZE = LENGTH_SIZE + HANDSHAKE_MESSAGE_SIZE;
/** The preamble and message 1 only: the client cannot send more before message 2. */
const INBOX_CAPACITY = PREAMBLE_MAGIC.length + 1 + MAX_USERNAME_SIZE + MESSAGE1_SIZE;

export class V2Server extends V2Endpoint<ServerState> implements ServerMachine {
  readonly protocol = "v2" as const;
  protected state: ServerState;

  constructor(opts: V2ServerOptions) {
    super();
    this.state = { kind: "start", opts, inbox: new ByteQueue(INBOX_CAPACITY, 64) };
  }

  get username(): string | undefined {
    const s = this.state;
    if (s.kind === "preambleConsumed") return s.preamble.username;
    return s.kind === "responseSent" || s.kind === "established" ? s.username : undefined;
  }

  /**
   * Handshake steps taken: 1 preamble parsed, 2 message 1 arrived, 3 message 2 sent (waiting for the
   * client's first frame), 4 established. Admission treats a connection whose step does not advance
   * as stalled, however many bytes it sends: a replayed message 1 stalls at step 3.
   */
  get handshakeStep(): number {
    const s = this.state;
    if (s.kind === "preambleConsumed") return s.message1 ? 2 : 1;
    return s.kind === "responseSent" ? 3 : s.kind === "established" ? 4 : 0;
  }

  /**
   * Message 1 verified (even if replayed: it was made with the right key), so the guess charged for
   * judging it is refunded (docs/PROTOCOL.md, "Key confirmation": a verified message 1 spends no budget).
   */
  get passwordVerified(): boolean {
    return this.state.kind === "responseSent" || this.state.kind === "established";
  }

  /** Message 1 is here and only the key is missing: providing it now judges the password. */
  get judgeable(): boolean {
    const s = this.state;
    return s.kind === "preambleConsumed" && s.message1 !== undefined && s.key === undefined;
  }

  /**
   * What to send in place of message 2 when refusing for load: 00 00 (docs/PROTOCOL.md §v2 "Busy");
   * nothing once message 2 has left (the client then has its answer, and a close must look like any
   * failure).
   */
  busySignal(): Uint8Array | undefined {
    const k = this.state.kind;
    return k === "start" || k === "preambleConsumed" ? BUSY_SIGNAL : undefined;
  }

  receive(chunk: Uint8Array): Output[] {
    return this.collect((out) => {
      const s = this.state;
      if (s.kind === "established" || s.kind === "responseSent") s.channel.receive(chunk, out);
      else if (s.kind === "failed") throw new ProtocolError("data after failure");
      else {
        if (!s.inbox.push(chunk)) throw new ProtocolError("data before the handshake completed");
        this.process(out);
      }
    });
  }

  /** The driver's answer to "need-key": the user's PSK, or a dummy key for an unknown user. */
  /** The user's PSK, or a fake one for an unknown or verifier-only user: the same path either way. */
  provideCredential(credential: Credential | undefined): Output[] {
    const s = this.state;
    if (s.kind !== "preambleConsumed") throw new ProtocolError(`credential provided in state ${s.kind}`);
    return this.provideKey(pskOrFake(credential, s.opts.fakes, s.preamble.username));
  }

  provideKey(psk: Uint8Array): Output[] {
    const s = this.state;
    if (s.kind !== "preambleConsumed" || s.key) throw new ProtocolError(`key provided in state ${s.kind}`);
    s.key = psk;
    return this.collect((out) => this.process(out));
  }

  private process(out: Output[]): void {
    const s = this.state;
    if (s.kind === "start") {
      const preamble = this.takePreamble(s.inbox, parsePreamble, out);
      if (!preamble) return;
      this.state = { kind: "preambleConsumed", opts: s.opts, inbox: s.inbox, preamble };
      this.process(out);
      return;
    }
    if (s.kind !== "preambleConsumed") return;
    if (!s.message1) {
      const buf = s.inbox.view();
      const len = framedLength(buf);
      if (len === undefined) return;
      if (len !== HANDSHAKE_MESSAGE_SIZE) throw new ProtocolError(`handshake message of ${len} bytes`);
      if (buf.length > MESSAGE1_SIZE) throw new ProtocolError("data before the handshake completed");
      if (buf.length < MESSAGE1_SIZE) return;
      s.message1 = s.inbox.take(MESSAGE1_SIZE).subarray(LENGTH_SIZE);
      // The inbox has done its work: nothing more may arrive before message 2 (memory: bytes.ts).
      s.inbox.release();
    } else if (s.inbox.length > 0) {
      throw new ProtocolError("data before the handshake completed");
    }
    if (s.key) this.respond(s.opts, s.preamble, s.key, s.message1, out);
  }

  private respond(opts: V2ServerOptions, preamble: Preamble, key: Uint8Array, message1: Uint8Array, out: Output[]): void {
    const handshake = new HandshakeState({
      crypto: opts.crypto,
      protocolName: PROTOCOL_NAME,
      initiator: false,
      prologue: preamble.bytes,
      psks: [key],
      e: opts.ephemeral,
    });
    let transport: TransportKeys;
    let message2: Uint8Array;
    try {
      handshake.readMessage(message1);
      message2 = handshake.writeMessage(EMPTY);
      transport = handshake.split();
    } catch (e) {
      // A wrong password and an unknown user (dummy key) fail in readMessage alike; writing and
      // splitting only encrypt and derive, and never throw DecryptError.
      if (e instanceof DecryptError) throw new AuthError("message 1 did not authenticate", { cause: e });
      throw e;
    } finally {
      // The handshake ends here either way: its chaining key and ephemeral key are done (the PSK,
      // `key`, is the key store's and is left alone).
      handshake.wipe();
    }
    const username = preamble.username;
    const channel: Channel = new Channel(transport, {
      maxMessageSize: opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
      rekeyInterval: opts.rekeyInterval,
      onFirstFrame: (confirmed) => this.confirm(channel, confirmed),
    });
    this.state = { kind: "responseSent", username, channel };
    out.push({ type: "send", data: encodeFramed(message2) });
  }

  /**
   * Message 2 sent and the client silent, gone, or failed before its first frame: the channel's keys
   * are zeroed at once (nothing is sealed or opened in the pool before key confirmation). Earlier
   * states hold only what the driver handed in (the PSK) and public bytes.
   */
  protected override discard(state: ServerState): void {
    if (state.kind === "responseSent") state.channel.wipe();
  }

  /** The client's first frame authenticated: it holds the session keys, so it is live, not a replay. */
  private confirm(channel: Channel, out: Output[]): void {
    const s = this.state;
    if (s.kind !== "responseSent" || s.channel !== channel) throw new ProtocolError(`key confirmation in state ${s.kind}`);
    this.state = { kind: "established", username: s.username, channel };
    out.push({ type: "established", username: s.username });
  }
}
