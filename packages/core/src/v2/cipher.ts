/**
 * The v2 transport cipher of one direction: the only place that takes nonces and decides when to
 * rekey (docs/PROTOCOL.md §v2 "Transport"), for both ways the AEAD runs.
 *
 * Every frame's key and nonce come from reserve(), in wire order. The inline path (sealInto, open)
 * uses a per-thread nonce buffer and runs the AEAD at once; the pool path (reserve with a fresh nonce)
 * hands key and nonce to the worker pool (pool/ordered-aead.ts). Either way the nonce sequence and the
 * rekey boundary are the same, because both go through take().
 */
import { type CryptoBackend, GCM_NONCE_SIZE } from "../crypto/backend.ts";
import { DecryptError } from "../errors.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import { REKEY_INTERVAL } from "./wire.ts";

/** One AEAD operation to run elsewhere (the worker pool): key, nonce and the bytes to seal or open. */
export interface AeadJob {
  key: Uint8Array;
  nonce: Uint8Array;
  data: Uint8Array;
}

/**
 * The nonce of the inline AEAD call in progress, one per thread: the backends read it synchronously
 * and keep no reference to it.
 */
const NONCE_SCRATCH = new Uint8Array(GCM_NONCE_SIZE);

export class TransportCipher {
  private readonly state: CipherState;
  private readonly crypto: CryptoBackend;
  private readonly rekeyInterval: number;

  /** `state` is one of Split()'s CipherStates (Noise §5.2); only tests change the rekey interval. */
  constructor(state: CipherState, rekeyInterval = REKEY_INTERVAL) {
    this.state = state;
    this.crypto = state.crypto;
    this.rekeyInterval = rekeyInterval;
  }

  /** Frames carried so far in this direction (nonces taken). */
  get n(): number {
    return this.state.n;
  }

  /** Key and a fresh nonce for the next frame, for an AEAD run elsewhere. */
  reserve(data: Uint8Array): AeadJob {
    const nonce = new Uint8Array(GCM_NONCE_SIZE);
    return { key: this.take(nonce), nonce, data };
  }

  /** Seals the next frame's plaintext, the concatenation of `parts`, into `out` at `offset`. */
  sealInto(parts: readonly Uint8Array[], out: Uint8Array, offset: number): number {
    const key = this.take(NONCE_SCRATCH);
    return this.crypto.aesGcmSealInto(key, NONCE_SCRATCH, parts, out, offset);
  }

  /** Opens the next frame; a failed tag throws DecryptError and nothing of the frame is returned. */
  open(ciphertext: Uint8Array): Uint8Array {
    const key = this.take(NONCE_SCRATCH);
    const plaintext = this.crypto.aesGcmOpen(key, NONCE_SCRATCH, ciphertext);
    if (!plaintext) throw new DecryptError();
    return plaintext;
  }

  /** Zeroes this direction's key (Channel.wipe); every later frame throws. */
  wipe(): void {
    this.state.wipe();
  }

  /**
   * The next frame's key, its nonce written into `nonce`; then, after every rekeyInterval-th frame,
   * Noise Rekey() (§4.2, §11.3) so the following frame uses the new key.
   */
  private take(nonce: Uint8Array): Uint8Array {
    const key = this.state.next(nonce);
    if (this.state.n % this.rekeyInterval === 0) this.state.rekey();
    return key;
  }
}
