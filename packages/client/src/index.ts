export { connect, connectWire, type ConnectOptions, type Session } from "./connect.ts";
export { DEFAULT_SESSION_LIMITS, V2_WINDOW } from "./limits.ts";
export { cachedPsk, clearKeyCache } from "./key-cache.ts";
export type { SessionLimits } from "./session.ts";
export { connectWithBackoff, backoffDelay, RETRYABLE, type BackoffOptions } from "./retry.ts";
