/**
 * Noise HandshakeState (spec rev. 34, §5.3) with the psk modifier (§9). Sans-IO: it turns payloads
 * into handshake messages and back; the caller frames and sends them.
 *
 * readMessage works on a copy of the symmetric state and commits it only when every token and the
 * payload authenticated, so a forged message leaves the state as it was.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { GCM_TAG_SIZE, X25519_KEY_SIZE } from "../crypto/backend.ts";
import { DecryptError, NstpError, ProtocolError } from "../errors.ts";
import { concat } from "../bytes.ts";
import { CipherState } from "./cipher-state.ts";
import { type HandshakePattern, type Token, parseProtocolName } from "./patterns.ts";
import { SymmetricState } from "./symmetric-state.ts";

export const PSK_SIZE = 32;
/** §4.1: DHLEN for 25519; the AEAD tag is 16 bytes (§5.1: ENCRYPT adds 16). */
export const DH_SIZE = X25519_KEY_SIZE;
const TAG_SIZE = GCM_TAG_SIZE;

export interface KeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

export interface HandshakeOptions {
  crypto: CryptoBackend;
  protocolName: string;
  initiator: boolean;
  prologue: Uint8Array;
  psks?: Uint8Array[];
  /** Static key pair (patterns with "s"). */
  s?: Uint8Array;
  /** Remote static public key known in advance (pre-messages). */
  rs?: Uint8Array;
  /** Ephemeral private key: only tests inject one; otherwise it is random. */
  e?: Uint8Array;
}

export interface TransportKeys {
  /** Initiator-to-responder and responder-to-initiator CipherStates (§5.2 Split). */
  send: CipherState;
  receive: CipherState;
  /** The handshake hash h, for channel binding. */
  handshakeHash: Uint8Array;
}

export class HandshakeState {
  private readonly crypto: CryptoBackend;
  private readonly pattern: HandshakePattern;
  private readonly initiator: boolean;
  private readonly isPsk: boolean;
  private ss: SymmetricState;
  private s: KeyPair | undefined;
  private e: KeyPair | undefined;
  private rs: Uint8Array | undefined;
  private re: Uint8Array | undefined;
  private readonly psks: Uint8Array[];
  private psksUsed = 0;
  private readonly injectedE: Uint8Array | undefined;
  private index = 0;

  constructor(opts: HandshakeOptions) {
    this.crypto = opts.crypto;
    this.pattern = parseProtocolName(opts.protocolName);
    this.initiator = opts.initiator;
    this.psks = opts.psks ?? [];
    for (const p of this.psks) if (p.length !== PSK_SIZE) throw new RangeError(`Noise PSK must be ${PSK_SIZE} bytes`);
    this.isPsk = this.pattern.messages.some((m) => m.includes("psk"));
    if (this.isPsk && this.psks.length === 0) throw new RangeError("psk pattern needs a PSK");
    this.s = opts.s ? this.keyPair(opts.s) : undefined;
    this.rs = opts.rs;
    this.injectedE = opts.e;
    this.ss = new SymmetricState(this.crypto, opts.protocolName);
    this.ss.mixHash(opts.prologue);
    // §5.3 Initialize: pre-message public keys are hashed, initiator's first.
    for (const [tokens, mine] of [[this.pattern.initiatorPre, this.initiator], [this.pattern.responderPre, !this.initiator]] as const) {
      for (const t of tokens) {
        if (t !== "s") throw new RangeError(`unsupported pre-message token ${t}`);
        const key = mine ? this.s?.publicKey : this.rs;
        if (!key) throw new RangeError("pre-message static key missing");
        this.ss.mixHash(key);
      }
    }
  }

  /** True once every handshake message was written or read. */
  get finished(): boolean {
    return this.index === this.pattern.messages.length;
  }

  /** True when the next handshake message is ours to write. */
  get myTurn(): boolean {
    return !this.finished && (this.index % 2 === 0) === this.initiator;
  }

  get handshakeHash(): Uint8Array {
    return this.ss.h;
  }

  writeMessage(payload: Uint8Array): Uint8Array {
    if (!this.myTurn) throw new ProtocolError("not our turn to write a handshake message");
    const parts: Uint8Array[] = [];
    for (const t of this.pattern.messages[this.index]!) {
      if (t === "e") {
        this.e = this.keyPair(this.injectedE ?? this.crypto.randomBytes(DH_SIZE));
        parts.push(this.e.publicKey);
        this.ss.mixHash(this.e.publicKey);
        // §9.2: in a psk handshake "e" also calls MixKey(e.public_key).
        if (this.isPsk) this.ss.mixKey(this.e.publicKey);
      } else if (t === "s") {
        if (!this.s) throw new RangeError("static key missing");
        parts.push(this.ss.encryptAndHash(this.s.publicKey));
      } else {
        this.psksUsed = this.mix(t, this.ss, this.re, this.rs, this.psksUsed);
      }
    }
    parts.push(this.ss.encryptAndHash(payload));
    this.index++;
    return concat(...parts);
  }

  /** Returns the payload; throws DecryptError (forged or wrong key) or ProtocolError (malformed). */
  readMessage(message: Uint8Array): Uint8Array {
    if (this.finished || this.myTurn) throw new ProtocolError("not expecting a handshake message");
    const ss = this.ss.clone();
    let re = this.re;
    let rs = this.rs;
    let psksUsed = this.psksUsed;
    let off = 0;
    const take = (n: number): Uint8Array => {
      if (message.length - off < n) throw new ProtocolError("handshake message too short");
      const out = message.subarray(off, off + n);
      off += n;
      return out;
    };
    for (const t of this.pattern.messages[this.index]!) {
      if (t === "e") {
        re = take(DH_SIZE).slice();
        ss.mixHash(re);
        if (this.isPsk) ss.mixKey(re);
      } else if (t === "s") {
        rs = ss.decryptAndHash(take(ss.cipher.hasKey() ? DH_SIZE + TAG_SIZE : DH_SIZE)).slice();
      } else {
        psksUsed = this.mix(t, ss, re, rs, psksUsed);
      }
    }
    const payload = ss.decryptAndHash(message.subarray(off));
    // Commit: everything authenticated.
    this.ss = ss;
    this.re = re;
    this.rs = rs;
    this.psksUsed = psksUsed;
    this.index++;
    return payload;
  }

  /** §5.3: after the last message, Split into the two transport CipherStates. */
  split(cipherLimit?: number): TransportKeys {
    if (!this.finished) throw new ProtocolError("handshake not finished");
    const [k1, k2] = this.ss.split();
    const c1 = new CipherState(this.crypto, k1, cipherLimit);
    const c2 = new CipherState(this.crypto, k2, cipherLimit);
    return this.initiator
      ? { send: c1, receive: c2, handshakeHash: this.ss.h }
      : { send: c2, receive: c1, handshakeHash: this.ss.h };
  }

  /**
   * Zeroes what this handshake derived or generated: the chaining key, the handshake cipher's key
   * and the ephemeral private key (unless a test injected it: then it is the caller's). The PSKs are
   * the caller's (a key store, the client's key cache) and are left alone. Call it once the
   * handshake is over (after split(), or abandoned): nothing works after it. The chaining keys that
   * MixKey replaced during the handshake were dropped unwiped (a message is read on a clone that may
   * fail, and the original still holds what the clone shares), and go with the collector.
   */
  wipe(): void {
    this.ss.wipe();
    if (this.e && this.e.privateKey !== this.injectedE) this.e.privateKey.fill(0);
    this.e = undefined;
  }

  /** Runs a psk or DH token on `ss`; returns the number of PSKs used so far. */
  private mix(t: Token, ss: SymmetricState, re: Uint8Array | undefined, rs: Uint8Array | undefined, psksUsed: number): number {
    if (t === "psk") {
      const psk = this.psks[psksUsed];
      if (!psk) throw new RangeError("not enough PSKs for the pattern");
      ss.mixKeyAndHash(psk);
      return psksUsed + 1;
    }
    // DH tokens: the first letter is the initiator's key, the second the responder's (§7.1).
    const [a, b] = [t[0] as "e" | "s", t[1] as "e" | "s"];
    const [local, remote] = this.initiator ? [a, b] : [b, a];
    const priv = (local === "e" ? this.e : this.s)?.privateKey;
    const pub = remote === "e" ? re : rs;
    if (!priv || !pub) throw new ProtocolError(`key missing for token ${t}`);
    let shared: Uint8Array;
    try {
      shared = this.crypto.x25519(priv, pub);
    } catch (e) {
      // A small-order public key: treated like any forged message.
      throw new DecryptError("invalid public key", { cause: e });
    }
    ss.mixKey(shared);
    // Mixed in: the DH output is of no further use.
    shared.fill(0);
    return psksUsed;
  }

  private keyPair(privateKey: Uint8Array): KeyPair {
    if (privateKey.length !== DH_SIZE) throw new NstpError("ERR_INVALID_ARG", "X25519 private key must be 32 bytes");
    return { privateKey, publicKey: this.crypto.x25519PublicKey(privateKey) };
  }
}
