/**
 * Protocol v3 (docs/PROTOCOL.md §v3): SPAKE2+ (RFC 9383) on P-256, then v2's transport.
 *
 * How a driver runs it:
 * - Server: `new V3Server({ crypto, deviceSalt, deferCurve? })`, chosen when the preamble's version
 *   byte (offset 5) is 3. On "need-key", answer `provideVerifier(record ?? fakes.record(usernameBytes))`
 *   with a per-process `new FakeVerifiers(crypto)` (or `provideKey(psk ?? dummyPsk)` for a store
 *   that holds only PSKs: the same kind of record for known and unknown users). With `deferCurve`,
 *   "need-curve" carries the job: run `verifierShares(job)` inline or in the pool and hand the result
 *   (or the Error) to `provideCurve`; message 2 follows, so charge guessing budgets there. "send"
 *   and "established" (only after confirmP verifies) and "message"/"closed" are as for V2Server;
 *   `seal`, `prepare`, `splitFrames`/`acceptFrames` and `busySignal()` likewise.
 * - Client: `new V3Client({ crypto, username, deviceSalt, keys })` with `keys = await
 *   deriveProverKeys(crypto, { password, username, deviceSalt })` (cache { w0, w1 }); then as
 *   V2Client. ERR_AUTH from it is final.
 * - Users store: `verifierFromPsk(crypto, psk, deviceSalt, usernameBytes)` converts a PSK record;
 *   `verifierToJson` / `verifierFromJson` read and write { w0, L } as hex.
 */
export * from "./wire.ts";
export * from "./spake2plus.ts";
export * from "./keys.ts";
export * from "./handshake.ts";
export * from "./client.ts";
export * from "./server.ts";
