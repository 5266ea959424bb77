/**
 * @nstp/core/node: what a server or client process needs from its runtime, on Node and on Bun alike
 * (both implement these `node:` modules): the node:net transport and the choice of transport by
 * runtime, the backends by name (the CLIs' `--crypto`), the logger, and the CLI's password prompt.
 */
export * from "./transport/index.ts";
export { BACKENDS, getBackend } from "./crypto/index.ts";
export * from "./log.ts";
export * from "./runtime.ts";
export { readPassword } from "./cli/prompt.ts";
export { CollectionNudge, type CollectionKind, runtimeCollection, youngCollection } from "./collection.ts";
