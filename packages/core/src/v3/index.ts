export * from "./wire.ts";
export * from "./spake2plus.ts";
export * from "./keys.ts";
export * from "./handshake.ts";
export * from "./client.ts";
export * from "./server.ts";
