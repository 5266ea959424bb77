export * from "./errors.ts";
export * from "./bytes.ts";
export * from "./events.ts";
export * from "./runtime.ts";
export * from "./crypto/index.ts";
export * from "./keys/password.ts";
export * as legacy from "./legacy/index.ts";
export * as v2 from "./v2/index.ts";
export * as v3 from "./v3/index.ts";
export * as noise from "./noise/index.ts";
export * from "./dispatch.ts";
export * as proxy from "./proxy/index.ts";

export * from "./transport/index.ts";
export * from "./log.ts";
export * from "./pool/index.ts";
export { readPassword } from "./cli/prompt.ts";
export { Fifo } from "./fifo.ts";
