// Finding 6 (username timing on the Node build), every version: an unknown user's handshake takes the same path,
// caches and object lifetimes as a known user's with a wrong password. Asserted as shape, not time:
// per repeat probe, the number of key objects the native backend must import (its KeyObject cache is
// keyed by the key array, crypto/native.ts) and the number of HMACs are the same for both.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as nodeCrypto from "node:crypto";
import { type CryptoBackend, legacy } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import { type RunningServer, StaticKeyStore, startServer } from "./index.ts";
import { referenceHandshake, referencePsk, v2Handshake, v3Handshake } from "@nstp/testkit";

/** The native backend, counting what its KeyObject cache would import and every HMAC. */
function counting(): { backend: CryptoBackend; counts: { imports: number; hmacs: number } } {
  const seen = new WeakSet<Uint8Array>();
  const counts = { imports: 0, hmacs: 0 };
  const use = (key: Uint8Array) => {
    if (key.length && !seen.has(key)) (seen.add(key), counts.imports++);
  };
  const n = nativeBackend;
  const backend: CryptoBackend = {
    ...n,
    hmacSha256: (key, data) => (counts.hmacs++, use(key), n.hmacSha256(key, data)),
    aesGcmSeal: (key, ...rest) => (use(key), n.aesGcmSeal(key, ...rest)),
    aesGcmSealInto: (key, ...rest) => (use(key), n.aesGcmSealInto(key, ...rest)),
    aesGcmOpen: (key, ...rest) => (use(key), n.aesGcmOpen(key, ...rest)),
  };
  return { backend, counts };
}

const psk = referencePsk(legacy.DEMO_PASSWORD, Buffer.from(legacy.DEMO_DEVICE_SALT), legacy.DEMO_USERNAME);
const wrong = nodeCrypto.randomBytes(32);

describe("an unknown user and a known user with a wrong password cost the same, probe after probe", () => {
  const { backend, counts } = counting();
  let server: RunningServer;
  before(async () => {
    server = await startServer({
      keys: new StaticKeyStore(new Map([["alice", new Uint8Array(psk)]])),
      crypto: backend,
      port: 0,
      failureLimit: { burst: 1000 },
    });
  });
  after(() => server.close());

  /** What one failed probe cost the server. */
  async function probe(run: () => Promise<unknown>): Promise<{ imports: number; hmacs: number }> {
    const before = { ...counts };
    await assert.rejects(run());
    return { imports: counts.imports - before.imports, hmacs: counts.hmacs - before.hmacs };
  }

  const protocols = {
    legacy: (username: string) => () => referenceHandshake(server.port, { username, psk: wrong }),
    v2: (username: string) => () => v2Handshake(server.port, { username, psk: wrong }),
    // v3: the server answers an unknown name from a fake record on the same path (docs/PROTOCOL.md
    // §v3 "Unknown users"); the probe ends when confirmV fails at the client.
    v3: (username: string) => () => v3Handshake(server.port, { username, psk: wrong, deviceSalt: Buffer.from(legacy.DEMO_DEVICE_SALT) }),
  };
  for (const [name, attempt] of Object.entries(protocols)) {
    test(name, async () => {
      // The first probe of each name may differ (a first use); every later one must not.
      await probe(attempt("alice"));
      await probe(attempt("mallory"));
      for (let i = 0; i < 3; i++) {
        const known = await probe(attempt("alice"));
        const unknown = await probe(attempt("mallory"));
        assert.deepEqual(unknown, known, `probe ${i}: unknown ${JSON.stringify(unknown)} vs known ${JSON.stringify(known)}`);
      }
    });
  }
});
