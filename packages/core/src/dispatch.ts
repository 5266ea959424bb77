/**
 * One port, both protocols: the server reads the first byte and hands the connection to the machine
 * it names. The reference never sends a first byte of 0 (its usernames are 1..255 bytes), and v2
 * always does (docs/PROTOCOL.md, "Version dispatch").
 */
import type { CryptoBackend } from "./crypto/backend.ts";
import { ProtocolError } from "./errors.ts";
import type { Output, Random } from "./events.ts";
import { LegacyServer } from "./legacy/server.ts";
import { V2Server } from "./v2/server.ts";
import { BUSY_SIGNAL, V2_MARKER } from "./v2/wire.ts";

export type ProtocolName = "legacy" | "v2";

/** What the server driver needs from either protocol machine. */
export interface ServerMachine {
  readonly protocol: ProtocolName | undefined;
  receive(chunk: Uint8Array): Output[];
  provideKey(psk: Uint8Array): Output[];
  /** Seals messages to the client; `close` adds v2's close chunk (the reference has none). */
  seal(messages: readonly Uint8Array[], close?: boolean): Uint8Array;
  /** Bytes to send before closing when refusing for load (nothing for the reference). */
  busySignal(): Uint8Array | undefined;
  readonly hasPartialInput: boolean;
  /** Records or frames completed so far; a partial-input deadline checks that it advances. */
  readonly inputProgress: number;
  /** Handshake steps taken so far (0 before the protocol's first message parses). */
  readonly handshakeStep: number;
  /** The client's proof (legacy) or message 1 (v2) is here and only the key is missing. */
  readonly judgeable: boolean;
  /** The password was found right (legacy: proof verified; v2: message 1 verified). */
  readonly passwordVerified: boolean;
  /** A v2 session, established: its AEAD may run elsewhere (prepare, splitFrames, acceptFrames). */
  readonly deferrable: V2Server | undefined;
}

export interface ServerDispatchOptions {
  crypto: CryptoBackend;
  /** Serve the reference protocol too (default true). */
  legacy?: boolean;
  /** Per protocol: the reference's default is 64 KiB, v2's 16 MiB. */
  maxMessageSize?: { legacy?: number; v2?: number };
  random?: Random;
}

export class ServerDispatch implements ServerMachine {
  private machine: LegacyServer | V2Server | undefined;
  private readonly opts: ServerDispatchOptions;

  constructor(opts: ServerDispatchOptions) {
    this.opts = opts;
  }

  get protocol(): ProtocolName | undefined {
    return this.machine?.protocol;
  }

  get hasPartialInput(): boolean {
    return this.machine?.hasPartialInput ?? false;
  }

  get deferrable(): V2Server | undefined {
    return this.machine instanceof V2Server && this.machine.stateName === "established" ? this.machine : undefined;
  }

  get handshakeStep(): number {
    return this.machine?.handshakeStep ?? 0;
  }

  get judgeable(): boolean {
    return this.machine?.judgeable ?? false;
  }

  get passwordVerified(): boolean {
    return this.machine?.passwordVerified ?? false;
  }

  get inputProgress(): number {
    return this.machine?.inputProgress ?? 0;
  }

  receive(chunk: Uint8Array): Output[] {
    if (!this.machine) {
      if (chunk.length === 0) return [];
      this.machine = this.select(chunk[0]!);
    }
    return this.machine.receive(chunk);
  }

  provideKey(psk: Uint8Array): Output[] {
    if (!this.machine) throw new ProtocolError("key provided before the protocol is known");
    return this.machine.provideKey(psk);
  }

  seal(messages: readonly Uint8Array[], close = false): Uint8Array {
    if (!this.machine) throw new ProtocolError("send before the protocol is known");
    return this.machine instanceof V2Server ? this.machine.seal(messages, close) : this.machine.seal(messages);
  }

  busySignal(): Uint8Array | undefined {
    return this.machine instanceof V2Server ? BUSY_SIGNAL : undefined;
  }

  private select(first: number): LegacyServer | V2Server {
    const { crypto, random } = this.opts;
    if (first === V2_MARKER) return new V2Server({ crypto, maxMessageSize: this.opts.maxMessageSize?.v2 });
    if (this.opts.legacy === false) throw new ProtocolError("the reference protocol is disabled on this server");
    return new LegacyServer({ crypto, maxMessageSize: this.opts.maxMessageSize?.legacy, random });
  }
}
