/**
 * The client derives its PSK once per (user, device salt, password) for the life of the process, so a
 * reconnect costs no second 600,000-iteration PBKDF2. Concurrent connects share one derivation. The
 * cache is keyed by a hash, so no password is held as a map key; it is bounded (oldest evicted).
 */
import { type CryptoBackend, type PskParams, concat, derivePsk, toHex, utf8 } from "@nstp/core";

const MAX_ENTRIES = 256;
const cache = new Map<string, Promise<Uint8Array>>();

function lengthPrefixed(b: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(b.length >>> 24, b.length >>> 16, b.length >>> 8, b.length), b);
}

export function cachedPsk(crypto: CryptoBackend, p: PskParams): Promise<Uint8Array> {
  const id = toHex(crypto.sha256(concat(lengthPrefixed(utf8(p.username)), lengthPrefixed(p.deviceSalt), lengthPrefixed(utf8(p.password)))));
  let hit = cache.get(id);
  if (!hit) {
    hit = derivePsk(crypto, p);
    hit.catch(() => cache.delete(id));
    cache.set(id, hit);
    if (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value!);
  }
  return hit;
}

/** Forgets every cached key (tests, or an application that rotates passwords). */
export function clearKeyCache(): void {
  cache.clear();
}
