export * from "./wire.ts";
export * from "./keys.ts";
export { LegacyServer, DEFAULT_MAX_MESSAGE_SIZE, type LegacyServerOptions } from "./server.ts";
export { LegacyClient, type LegacyClientOptions } from "./client.ts";
