import type { BackendName, CryptoBackend } from "./backend.ts";
import { nativeBackend } from "./native.ts";
import { nobleBackend } from "./noble.ts";

export * from "./backend.ts";
export { nativeBackend } from "./native.ts";
export { nobleBackend } from "./noble.ts";
export { hkdfSha256 } from "./hkdf.ts";
export { AEAD_POOL_MIN_BATCH, CURVE_INLINE_PER_TURN, CURVE_INLINE_SHARE, type CurvePlace, aeadInPool, aeadMayUsePool, curvePlace, curveQuietUntil } from "./placement.ts";

export const BACKENDS: Record<BackendName, CryptoBackend> = { native: nativeBackend, noble: nobleBackend };

export function getBackend(name: string): CryptoBackend {
  if (name !== "native" && name !== "noble") throw new RangeError(`unknown crypto backend "${name}" (native|noble)`);
  return BACKENDS[name];
}
