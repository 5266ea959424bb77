/**
 * The server's advice about the reference's demo credentials: the demo device salt (0102030405060708),
 * which every copy of the reference and of this project's defaults shares, and the demo user
 * (alice/userpassword), which it refuses to serve beyond this host unless told to.
 */
import { legacy, toHex } from "@nstp/core";
import { TrustedProxies } from "./trusted-proxies.ts";

/** 127.0.0.0/8 and ::1 (an IPv4-mapped ::ffff:127.x matches as its IPv4 address). */
const LOOPBACK = new TrustedProxies(["127.0.0.0/8", "::1"]);

/** True for a --host only this machine can reach: a loopback address, or "localhost". */
export function isLoopbackHost(host: string): boolean {
  return host.toLowerCase() === "localhost" || LOOPBACK.has(host);
}

/**
 * Why the server must not start, or undefined: without a users store it serves the demo user, whose
 * password anyone who read the reference knows, so on a host others can reach (0.0.0.0, a LAN
 * address, a name that may resolve to one) it refuses unless --demo says that is meant. Behind a
 * load balancer (--trusted-proxies) a loopback --host is no protection: the proxy, itself reachable
 * from anywhere, forwards to it, so any trusted proxy counts as reachable from outside.
 */
export function demoUserRefusal(host: string, ctx: { usersStore: boolean; demo: boolean; trustedProxies: boolean }): string | undefined {
  if (ctx.usersStore || ctx.demo) return undefined;
  if (ctx.trustedProxies) {
    return "refusing to serve the reference demo user (alice/userpassword) behind --trusted-proxies, which forward " +
      "connections from other hosts: pass --users FILE (see bun run users), or --demo if a demo reachable from other hosts is really meant";
  }
  if (isLoopbackHost(host)) return undefined;
  return `refusing to serve the reference demo user (alice/userpassword) on ${host}, which is not a loopback address: ` +
    "pass --users FILE (see bun run users), or --demo if a demo reachable from other hosts is really meant";
}

export interface SaltAdviceContext {
  /** A users store (file or database) is served, rather than the built-in demo user. */
  usersStore: boolean;
  /** v3 is among the protocols served. */
  v3: boolean;
}

/** The warning to log at start, or undefined when the salt is not the demo one. */
export function demoSaltWarning(deviceSalt: Uint8Array, ctx: SaltAdviceContext): string | undefined {
  if (toHex(deviceSalt) !== toHex(legacy.DEMO_DEVICE_SALT)) return undefined;
  if (!ctx.v3 || !ctx.usersStore) return "using the reference demo device salt 0102030405060708";
  // docs/PROTOCOL.md §v3 "Keys": w0 and L depend only on (device salt, username, password), and so
  // does the PSK. Deployments sharing a salt share verifiers for common usernames: a guess tested
  // against one stolen store (one PBKDF2-600k each) is tested against all of them, and a dictionary
  // computed in advance for "admin" or "device" on this salt serves every such store.
  return "serving v3 with a users store on the reference demo device salt 0102030405060708: every deployment on this salt " +
    "holds the same verifier (w0, L) for the same username and password, so guesses tested against one stolen store, " +
    "or precomputed for common usernames, serve them all; recreate the store with `bun run users` (a random 16-byte " +
    "salt) and start the server with its --device-salt";
}
