export * from "./cipher-state.ts";
export * from "./symmetric-state.ts";
export * from "./handshake-state.ts";
export * from "./patterns.ts";
