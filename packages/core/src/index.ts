export * from "./errors.ts";
export * from "./bytes.ts";
export * from "./events.ts";
export * from "./runtime.ts";
export * from "./crypto/index.ts";
export * as legacy from "./legacy/index.ts";

export * from "./transport/index.ts";
export * from "./log.ts";
export * from "./pool/index.ts";
export { readPassword } from "./cli/prompt.ts";
