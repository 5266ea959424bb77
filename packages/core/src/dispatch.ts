/**
 * One port, every version: the server reads at most CLAIM_BYTES from a new connection, and the first
 * enabled registry entry to claim them gets the connection (docs/PROTOCOL.md, "Version dispatch").
 * The reference never sends a first byte of 0 (its usernames are 1..255 bytes); later versions send
 * `00 'NSTP'` and their version byte.
 */
import type { CryptoBackend } from "./crypto/backend.ts";
import { concat } from "./bytes.ts";
import { ProtocolError } from "./errors.ts";
import type { Output, Random } from "./events.ts";
import { DEMO_DEVICE_SALT } from "./legacy/wire.ts";
import { LEGACY_CAPABILITIES } from "./legacy/server.ts";
import type { Capabilities, Credential, CredentialFakes, DeferredAead, SealOptions, ServerMachine } from "./machine.ts";
import { CLAIM_BYTES, PROTOCOLS, type ProtocolEntry, REFUSAL_SIGNAL } from "./registry.ts";
import type { VerifierCurveResult } from "./v3/spake2plus.ts";

/** A version's name, from the registry. */
export type ProtocolName = string;

export interface ServerDispatchOptions {
  crypto: CryptoBackend;
  /** Versions served (default: every registry entry). */
  protocols?: readonly ProtocolEntry[];
  /** Per version name; absent: the version's default. */
  maxMessageSize?: Readonly<Record<string, number | undefined>>;
  deviceSalt?: Uint8Array;
  /** Stand-ins for credentials the store lacks: the machine fails on them like a wrong password. */
  fakes?: CredentialFakes;
  random?: Random;
  /** Versions with a server curve step (v3) hand it to the driver as "need-curve". */
  deferCurve?: boolean;
}

/** Before a version is chosen nothing is established: the most restrictive capabilities (the reference's). */
const NOT_CHOSEN = LEGACY_CAPABILITIES;
/** No bytes held: shared, so a connection holds no array of its own once its version is chosen. */
const NO_HEAD = new Uint8Array(0);

export class ServerDispatch implements ServerMachine {
  private machine: ServerMachine | undefined;
  private head = NO_HEAD;
  /** dispose() came: no version may claim the connection after it. */
  private disposed = false;
  private readonly candidates: readonly ProtocolEntry[];
  private readonly opts: ServerDispatchOptions;

  constructor(opts: ServerDispatchOptions) {
    this.opts = opts;
    this.candidates = opts.protocols ?? PROTOCOLS;
  }

  get protocol(): ProtocolName | undefined {
    return this.machine?.protocol;
  }

  get capabilities(): Capabilities {
    return this.machine?.capabilities ?? NOT_CHOSEN;
  }

  get hasPartialInput(): boolean {
    return this.machine?.hasPartialInput ?? false;
  }

  get deferred(): DeferredAead | undefined {
    return this.machine?.deferred;
  }

  get hasPartialMessage(): boolean {
    return this.machine?.hasPartialMessage ?? false;
  }

  get messagesStarted(): number {
    return this.machine?.messagesStarted ?? 0;
  }

  get partialMessageBytes(): number {
    return this.machine?.partialMessageBytes ?? 0;
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

  get pingsReceived(): number {
    return this.machine?.pingsReceived ?? 0;
  }

  /** The chosen version's ping frame; absent before a version is chosen. */
  ping(): Uint8Array {
    if (!this.machine?.ping) throw new ProtocolError("ping before an established version that has one");
    return this.machine.ping();
  }

  receive(chunk: Uint8Array): Output[] {
    if (this.machine) return this.machine.receive(chunk);
    if (this.disposed) throw new ProtocolError("data after the connection ended");
    // Bounded: at most CLAIM_BYTES are held before a version claims them or none can.
    const head = this.head.length ? concat(this.head, chunk) : chunk;
    const entry = this.claim(head.subarray(0, CLAIM_BYTES));
    if (!entry) {
      this.head = head.slice(0, CLAIM_BYTES);
      return [];
    }
    this.head = NO_HEAD;
    this.machine = entry.server({
      crypto: this.opts.crypto,
      deviceSalt: this.opts.deviceSalt ?? DEMO_DEVICE_SALT,
      fakes: this.opts.fakes,
      maxMessageSize: this.opts.maxMessageSize?.[entry.name],
      random: this.opts.random,
      deferCurve: this.opts.deferCurve,
    });
    return this.machine.receive(head);
  }

  provideCredential(credential: Credential | undefined): Output[] {
    if (!this.machine) throw new ProtocolError("credential provided before the protocol is known");
    return this.machine.provideCredential(credential);
  }

  provideKey(psk: Uint8Array): Output[] {
    if (!this.machine) throw new ProtocolError("key provided before the protocol is known");
    return this.machine.provideKey(psk);
  }

  provideCurve(result: VerifierCurveResult | Error): Output[] {
    if (!this.machine?.provideCurve) throw new ProtocolError("curve result for a version without a curve step");
    return this.machine.provideCurve(result);
  }

  seal(messages: readonly Uint8Array[], opts?: SealOptions): Uint8Array {
    if (!this.machine) throw new ProtocolError("send before the protocol is known");
    return this.machine.seal(messages, opts);
  }

  /**
   * Before a version is chosen (nothing read yet, or a marker still incomplete), REFUSAL_SIGNAL, which
   * reads as busy to every version: nothing of the client's guess has been read. A bare close there
   * was what a client whose first flight left late (its host loaded) read as a wrong password when
   * admission evicted its silent connection: ERR_AUTH, never retried, in the fleet bench's storm.
   */
  busySignal(): Uint8Array | undefined {
    return this.machine ? this.machine.busySignal() : REFUSAL_SIGNAL;
  }

  /**
   * The connection is over (machine.ts dispose): the chosen version's machine wipes what it owns;
   * before a version is chosen only public bytes are held (at most CLAIM_BYTES), and are let go.
   */
  dispose(): void {
    this.disposed = true;
    this.head = NO_HEAD;
    this.machine?.dispose();
  }

  /** The entry that claims `head`; undefined while one still might; throws when none can. */
  private claim(head: Uint8Array): ProtocolEntry | undefined {
    let undecided = false;
    for (const p of this.candidates) {
      const c = p.claim(head);
      if (c === "yes") return p;
      if (c === "more") undecided = true;
    }
    if (undecided && head.length < CLAIM_BYTES) return undefined;
    throw new ProtocolError("no enabled protocol version claims the connection");
  }
}
