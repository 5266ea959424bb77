/**
 * Tests' v3 server with a stand-in worker pool (a test decides when its curve steps run, or whether
 * its queue is full): one user, alice, with a fixed key and salt, echoing what it receives.
 */
import type { CryptoPool } from "@nstp/core/pool";
import { type ServerOptions, StaticKeyStore, startServer } from "../index.ts";

export const DEVICE_SALT = Buffer.from("00112233445566778899aabbccddeeff", "hex");
export const PSK = Buffer.alloc(32, 0x5a);
export const ALICE = { username: "alice", deviceSalt: DEVICE_SALT, psk: PSK };

export function startPoolServer(pool: unknown, opts: Partial<ServerOptions> = {}) {
  return startServer({
    keys: new StaticKeyStore(new Map([["alice", PSK]])),
    port: 0,
    deviceSalt: DEVICE_SALT,
    handler: (m) => m,
    pool: pool as CryptoPool,
    ...opts,
  });
}
