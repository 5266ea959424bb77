/** Noise SymmetricState (spec rev. 34, §5.2) over SHA-256 and the HKDF of §4.3. */
import type { CryptoBackend } from "../crypto/backend.ts";
import { SHA256_SIZE } from "../crypto/backend.ts";
import { hkdfSha256 } from "../crypto/hkdf.ts";
import { concat, utf8 } from "../bytes.ts";
import { CipherState } from "./cipher-state.ts";

const EMPTY = new Uint8Array(0);

export class SymmetricState {
  private readonly crypto: CryptoBackend;
  ck: Uint8Array;
  h: Uint8Array;
  cipher: CipherState;

  constructor(crypto: CryptoBackend, protocolName: string | SymmetricState) {
    this.crypto = crypto;
    if (protocolName instanceof SymmetricState) {
      this.ck = protocolName.ck;
      this.h = protocolName.h;
      this.cipher = protocolName.cipher.clone();
      return;
    }
    // §5.2 InitializeSymmetric: a name of at most HASHLEN bytes is zero-padded, a longer one hashed.
    const name = utf8(protocolName);
    this.h = name.length <= SHA256_SIZE ? concat(name, new Uint8Array(SHA256_SIZE - name.length)) : crypto.sha256(name);
    this.ck = this.h;
    this.cipher = new CipherState(crypto);
  }

  /** A copy to work on: a message is read into a copy, committed only if it authenticates. */
  clone(): SymmetricState {
    return new SymmetricState(this.crypto, this);
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, k] = this.hkdf(ikm, 2);
    this.ck = ck!;
    this.cipher.initializeKey(k!);
  }

  mixHash(data: Uint8Array): void {
    this.h = this.crypto.sha256(concat(this.h, data));
  }

  mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, h, k] = this.hkdf(ikm, 3);
    this.ck = ck!;
    this.mixHash(h!);
    this.cipher.initializeKey(k!);
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ct = this.cipher.encryptWithAd(this.h, plaintext);
    this.mixHash(ct);
    return ct;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const pt = this.cipher.decryptWithAd(this.h, ciphertext);
    this.mixHash(ciphertext);
    return pt;
  }

  /** §5.2 Split: the initiator-to-responder and responder-to-initiator keys. */
  split(): [Uint8Array, Uint8Array] {
    const [k1, k2] = this.hkdf(EMPTY, 2);
    return [k1!, k2!];
  }

  /**
   * Zeroes the chaining key and the handshake cipher's key (HandshakeState.wipe). h is the public
   * transcript hash (channel binding), not a secret: until the first MixKey ck is the same array as
   * h, and is then left alone.
   */
  wipe(): void {
    if (this.ck !== this.h) this.ck.fill(0);
    this.cipher.wipe();
  }

  private hkdf(ikm: Uint8Array, outputs: 2 | 3): Uint8Array[] {
    const okm = hkdfSha256(this.crypto, this.ck, ikm, EMPTY, outputs * SHA256_SIZE);
    const parts: Uint8Array[] = [];
    for (let i = 0; i < outputs; i++) parts.push(okm.slice(i * SHA256_SIZE, (i + 1) * SHA256_SIZE));
    // The outputs are copies: the joint output is of no further use.
    okm.fill(0);
    return parts;
  }
}
