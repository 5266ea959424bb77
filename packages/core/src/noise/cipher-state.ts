/**
 * Noise CipherState (Noise spec rev. 34, §5.1) for AESGCM (§12.3): key k, counter n, and the nonce
 * laid out as 32 zero bits followed by n big-endian. Rekey() is §4.2's default.
 *
 * n is a JS number: the counter limit is 2^53 - 1, stricter than the spec's 2^64 - 1 (reserved) and
 * out of reach in practice (285 years at a million frames a second). Reaching it is ERR_EXHAUSTED.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { AES_KEY_SIZE, GCM_NONCE_SIZE } from "../crypto/backend.ts";
import { DecryptError, NstpError } from "../errors.ts";
import { writeU32BE } from "../bytes.ts";

export const NONCE_LIMIT = Number.MAX_SAFE_INTEGER;
const EMPTY = new Uint8Array(0);
const ZERO_KEY = new Uint8Array(AES_KEY_SIZE);
/** §4.2: REKEY(k) = ENCRYPT(k, maxnonce, zerolen, zeros)[0:32], with maxnonce = 2^64 - 1. */
const MAX_NONCE = new Uint8Array([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/**
 * The nonce of the AEAD call in progress, one per thread: both backends read it synchronously and
 * keep no reference (the transport cipher, v2/cipher.ts, has its own), and a buffer per CipherState was two of an idle
 * session's few dozen objects (the fleet bench).
 */
const NONCE_SCRATCH = new Uint8Array(GCM_NONCE_SIZE);

export function aesGcmNonce(n: number, out: Uint8Array = new Uint8Array(GCM_NONCE_SIZE)): Uint8Array {
  // §12.3: 32 bits of zeros, then the 64-bit counter big-endian.
  writeU32BE(out, 4, Math.floor(n / 0x1_0000_0000));
  writeU32BE(out, 8, n >>> 0);
  return out;
}

export class CipherState {
  private k: Uint8Array | null;
  private counter = 0;
  readonly crypto: CryptoBackend;
  /** The counter's bound; -1 once wiped, so that every later use throws (wipe). */
  private limit: number;

  constructor(crypto: CryptoBackend, key: Uint8Array | null = null, limit = NONCE_LIMIT) {
    this.crypto = crypto;
    this.k = key;
    this.limit = limit;
  }

  /** The next nonce to be used (frames carried so far in this direction). */
  get n(): number {
    return this.counter;
  }

  hasKey(): boolean {
    return this.k !== null;
  }

  initializeKey(key: Uint8Array): void {
    this.k = key;
    this.counter = 0;
  }

  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    // The limit first: a wiped state (no key) must throw, not pass plaintext through as §5.1 does
    // before a key is set.
    this.checkLimit();
    if (!this.k) return plaintext;
    const out = this.crypto.aesGcmSeal(this.k, aesGcmNonce(this.counter, NONCE_SCRATCH), plaintext, ad);
    this.counter++;
    return out;
  }

  /**
   * Takes the key for the next message and writes its nonce into `nonce`, without encrypting, for an
   * AEAD run by the caller (v2/cipher.ts, inline or in the worker pool). The counter advances now; a
   * frame that then fails its tag ends the session anyway.
   */
  next(nonce: Uint8Array): Uint8Array {
    this.checkLimit();
    if (!this.k) throw new NstpError("ERR_PROTOCOL", "transport encryption without a key");
    aesGcmNonce(this.counter++, nonce);
    return this.k;
  }

  /** Throws DecryptError on a failed tag; n advances only on success (§5.1). */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    this.checkLimit();
    if (!this.k) return ciphertext;
    const out = this.crypto.aesGcmOpen(this.k, aesGcmNonce(this.counter, NONCE_SCRATCH), ciphertext, ad);
    if (!out) throw new DecryptError();
    this.counter++;
    return out;
  }

  rekey(): void {
    if (!this.k) throw new NstpError("ERR_PROTOCOL", "rekey without a key");
    this.k = this.crypto.aesGcmSeal(this.k, MAX_NONCE, ZERO_KEY, EMPTY).subarray(0, AES_KEY_SIZE);
  }

  clone(): CipherState {
    const c = new CipherState(this.crypto, this.k, this.limit);
    c.counter = this.counter;
    return c;
  }

  /**
   * Zeroes the key in place and ends this state (machine.ts dispose): every later encrypt, decrypt
   * or next throws ERR_CLOSED, a rekey ERR_PROTOCOL. The array may be shared with a clone
   * (SymmetricState.clone) or an AEAD job handed to the worker pool (v2/cipher.ts reserve): the
   * owner wipes only once neither can use it again. Keys an earlier rekey replaced are not reachable
   * from here (a pooled job may still hold one), and go with the collector.
   */
  wipe(): void {
    this.k?.fill(0);
    this.k = null;
    this.limit = -1;
  }

  private checkLimit(): void {
    if (this.counter >= this.limit) {
      if (this.limit < 0) throw new NstpError("ERR_CLOSED", "cipher state wiped: the session is over");
      throw new NstpError("ERR_EXHAUSTED", "nonce counter exhausted: the session must be re-established");
    }
  }
}
