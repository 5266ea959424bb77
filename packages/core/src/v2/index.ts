export * from "./wire.ts";
export * from "./framing.ts";
export * from "./channel.ts";
export * from "./endpoint.ts";
export * from "./client.ts";
export * from "./server.ts";
