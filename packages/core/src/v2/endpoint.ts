/**
 * What both v2 roles do once established, in one place: seal, and the split/accept and prepare pair
 * that lets the driver run the AEAD in the worker pool. Any error marks the machine failed.
 */
import type { ByteQueue } from "../bytes.ts";
import { ProtocolError } from "../errors.ts";
import type { Output } from "../events.ts";
import type { Capabilities, DeferredAead, SealOptions } from "../machine.ts";
import type { Channel } from "./channel.ts";
import type { AeadJob } from "./cipher.ts";
import type { PreparedFrames } from "./writer.ts";

/** v2's transport (and v3's, which reuses it): pushes both ways, pings, frames sealable in the pool. */
export const STREAM_CAPABILITIES: Capabilities = { mayPush: true, oneReplyPerMessage: false, peerPings: true };

/**
 * Failed: nothing can be sealed or opened. A channel that was established when the failure came is
 * kept only until dispose() wipes it: an AEAD batch handed to the worker pool holds its key, and the
 * driver disposes once every batch is back (machine.ts dispose).
 */
export type EndpointFailed = { kind: "failed"; channel?: Channel };

/**
 * The states every endpoint on this transport ends in: its role's own handshake states come first
 * (each machine names its own), then these two.
 */
export type EndpointEnd = { kind: "established"; channel: Channel } | EndpointFailed;

/** Failed, holding nothing: shared by every endpoint. */
const FAILED: EndpointFailed = Object.freeze({ kind: "failed" });

export abstract class V2Endpoint<S extends { kind: string }> implements DeferredAead {
  /** The role's state: its handshake states, then EndpointEnd's. */
  protected abstract state: S;
  readonly capabilities = STREAM_CAPABILITIES;

  get stateName(): S["kind"] {
    return this.state.kind;
  }

  /** The established channel, or undefined before (and after failure). */
  protected channel(): Channel | undefined {
    // S includes EndpointEnd's established state (each role's union lists it); only it has a channel.
    const s = this.state as unknown as { kind: string; channel?: Channel };
    return s.kind === "established" ? s.channel : undefined;
  }

  /**
   * Any error: the machine is failed from now on. Its handshake's secrets are wiped at once (discard);
   * each role keeps its handshake's input and options in its handshake states, so they go with the
   * state. An established channel stays referenced, unusable, until dispose() wipes it.
   */
  protected markFailed(): void {
    const channel = this.heldChannel();
    this.discard(this.state);
    this.state = (channel ? { kind: "failed", channel } : FAILED) as EndpointEnd as unknown as S;
  }

  /**
   * The connection is over (machine.ts dispose): the handshake's secrets and the channel's transport
   * keys are zeroed, and the machine is failed, holding nothing. Idempotent.
   */
  dispose(): void {
    const channel = this.heldChannel();
    if (this.state.kind !== "failed") this.discard(this.state);
    channel?.wipe();
    this.state = FAILED as EndpointEnd as unknown as S;
  }

  /**
   * Wipes what a role's handshake state owns of its secrets (key hygiene), when the machine fails or
   * is disposed in it; nothing by default. Never what the role was handed (machine.ts dispose).
   */
  protected discard(_state: S): void {}

  /** The channel established, or kept by a failure until dispose(). */
  private heldChannel(): Channel | undefined {
    const s = this.state as unknown as { kind: string; channel?: Channel };
    return s.kind === "established" || s.kind === "failed" ? s.channel : undefined;
  }

  get hasPartialInput(): boolean {
    return this.channel()?.reader.hasPartialInput ?? false;
  }

  get hasPartialMessage(): boolean {
    return this.channel()?.reader.hasPartialMessage ?? false;
  }

  get messagesStarted(): number {
    return this.channel()?.reader.messagesStarted ?? 0;
  }

  get partialMessageBytes(): number {
    return this.channel()?.reader.partialMessageBytes ?? 0;
  }

  /** Records or frames completed so far (the driver's partial-input deadline watches it). */
  get inputProgress(): number {
    return this.channel()?.reader.frames ?? 0;
  }

  /** Frames sealed so far towards the peer (a keepalive pings only when this stands still). */
  get framesSent(): number {
    return this.channel()?.writer.frames ?? 0;
  }

  /** Ping chunks received so far (the server answers them while established: docs/PROTOCOL.md §v2 "Ping"). */
  get pingsReceived(): number {
    return this.channel()?.reader.pings ?? 0;
  }

  /** Established: the frames' AEAD may run in the worker pool (pool/ordered-aead.ts). */
  get deferred(): DeferredAead | undefined {
    return this.channel() ? this : undefined;
  }

  /** Handshake done: messages may be sealed. */
  get established(): boolean {
    return this.channel() !== undefined;
  }

  /** The Noise handshake hash once established (channel binding). */
  get handshakeHash(): Uint8Array | undefined {
    return this.channel()?.handshakeHash;
  }

  /** Packs messages (and a close chunk if asked) into as few frames as fit. */
  seal(messages: readonly Uint8Array[], opts?: SealOptions): Uint8Array {
    return this.requireChannel("send").writer.seal(messages, opts?.close ?? false, opts?.transient ?? false);
  }

  /** One frame holding one empty ping chunk: the client's key confirmation, or a keepalive. */
  ping(): Uint8Array {
    return this.requireChannel("send").writer.sealPing();
  }

  /** Frames laid out with their nonces taken, to seal in the worker pool. */
  prepare(messages: readonly Uint8Array[], opts?: SealOptions): PreparedFrames {
    return this.requireChannel("send").writer.prepare(messages, opts?.close ?? false);
  }

  /** The frames `chunk` completes, to open in the worker pool; then acceptFrames(). */
  splitFrames(chunk: Uint8Array): AeadJob[] {
    return this.guard(() => this.requireChannel("data").reader.split(chunk));
  }

  /** The opened frames from splitFrames(), in order: outputs as receive() would give them. */
  acceptFrames(plaintexts: readonly (Uint8Array | null)[]): Output[] {
    return this.collect((out) => {
      this.requireChannel("data").reader.accept(plaintexts, out);
    });
  }

  /**
   * Bytes that first finish the handshake's last message, then are frames: `handshake` (while one is
   * still due) consumes what it needs from the front of `chunk` and returns how many bytes it used;
   * the rest goes to the established channel.
   */
  protected receiveAfterHandshake(chunk: Uint8Array, handshake: ((chunk: Uint8Array, out: Output[]) => number) | undefined): Output[] {
    return this.collect((out) => {
      const used = handshake ? handshake(chunk, out) : 0;
      if (used < chunk.length) this.requireChannel("data").receive(chunk.subarray(used), out);
    });
  }

  /** Runs `f` with a fresh output list under guard(), and returns the list. */
  protected collect(f: (out: Output[]) => void): Output[] {
    return this.guard(() => {
      const out: Output[] = [];
      f(out);
      return out;
    });
  }

  /**
   * A server's first step: the preamble `parse` finds at the front of `inbox`, consumed, and the
   * driver asked for the user's key ("need-key"); undefined while it is incomplete.
   */
  protected takePreamble<P extends { bytes: Uint8Array; username: string }>(inbox: ByteQueue, parse: (head: Uint8Array) => P | undefined, out: Output[]): P | undefined {
    const preamble = parse(inbox.view());
    if (!preamble) return undefined;
    inbox.consume(preamble.bytes.length);
    out.push({ type: "need-key", username: preamble.username });
    return preamble;
  }

  /** Runs `f`; a thrown error fails the machine before it propagates. */
  protected guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      this.markFailed();
      throw e;
    }
  }

  private requireChannel(what: string): Channel {
    const c = this.channel();
    if (!c) throw new ProtocolError(`${what} in state ${this.stateName}`);
    return c;
  }
}
