/**
 * An attacker's legacy record for tests: a peer that knows the session key chooses its ciphertext
 * freely (AES-GCM ciphertext is plaintext XOR keystream), so it can plant the session nonce every
 * 8 bytes and still send a record whose tag verifies (docs/PROTOCOL.md, legacy trial decryption).
 * Written with node:crypto alone, so the hostile-peer suite can use it against a real server.
 */
import * as nodeCrypto from "node:crypto";

const seal = (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Buffer => {
  const c = nodeCrypto.createCipheriv("aes-256-gcm", key, nonce);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
};

/** Record `counter` whose `length` bytes of ciphertext repeat `sessionNonce`, with a valid tag. */
export function plantedRecord(key: Uint8Array, sessionNonce: Uint8Array, counter: number, length: number): Uint8Array {
  const nonce = Buffer.alloc(12);
  nonce.set(sessionNonce, 0);
  nonce.writeUInt32BE(counter, 8);
  const keystream = seal(key, nonce, new Uint8Array(length)).subarray(0, length);
  const plaintext = new Uint8Array(length);
  for (let i = 0; i < length; i++) plaintext[i] = keystream[i]! ^ sessionNonce[i % sessionNonce.length]!;
  return Buffer.concat([nonce, seal(key, nonce, plaintext)]);
}
