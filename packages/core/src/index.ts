/**
 * @nstp/core's root: the sans-IO protocol machines, wire formats, errors and types, with no runtime
 * import (no `node:` module, no worker pool), so a bundler or a browser can load it. Sockets, the
 * pool, the crypto backends, the logger and the CLI prompt are in the subpaths: `./node`, `./bun`,
 * `./pool`, `./crypto/native`, `./crypto/noble` (package.json "exports").
 */
export * from "./errors.ts";
export * from "./bytes.ts";
export * from "./events.ts";
export * from "./crypto/backend.ts";
export { hkdfSha256 } from "./crypto/hkdf.ts";
export { AEAD_POOL_MIN_BATCH, aeadInPool, aeadMayUsePool } from "./crypto/placement.ts";
export * as legacy from "./legacy/index.ts";
export * as v2 from "./v2/index.ts";
export * as v3 from "./v3/index.ts";
export * as noise from "./noise/index.ts";
export * from "./dispatch.ts";
export * from "./machine.ts";
export * from "./registry.ts";
export * from "./driver/index.ts";
export * from "./keys/password.ts";
export * as proxy from "./proxy/index.ts";
export * from "./transport/wire.ts";
export type { LogFields, LogFormat, LogLevel, Logger } from "./log.ts";
export type { RuntimeName } from "./runtime.ts";
export { Fifo } from "./fifo.ts";
