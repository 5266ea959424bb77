/**
 * Tests' v3 server with a stand-in worker pool (a test decides when its curve steps run, or whether
 * its queue is full): one user, alice, with a fixed key and salt, echoing what it receives.
 */
import { v3 } from "@nstp/core";
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

/**
 * A pool whose curve steps wait until the test releases them (`held`, oldest first) while `hold` is
 * set; it ignores the connection's AbortSignal, so a step outlives its connection as one running on
 * a thread does. Its queue (maxQueue) is the real pool's default for one thread.
 */
export function heldPool() {
  const held: (() => void)[] = [];
  const pool = {
    hold: false,
    held,
    threads: 1,
    maxQueue: 64,
    saturated: false,
    verifierShares(job: v3.VerifierCurveInput) {
      if (!pool.hold) return Promise.resolve(v3.verifierShares(job));
      return new Promise((resolve) => held.push(() => resolve(v3.verifierShares(job))));
    },
  };
  return pool;
}
