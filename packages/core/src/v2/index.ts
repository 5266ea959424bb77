export * from "./wire.ts";
export * from "./cipher.ts";
export * from "./writer.ts";
export * from "./reader.ts";
export * from "./channel.ts";
export * from "./endpoint.ts";
export * from "./client.ts";
export * from "./server.ts";
export { retainedLimit } from "./assembly.ts";
