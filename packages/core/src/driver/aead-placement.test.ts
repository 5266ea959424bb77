// The inline-or-pool choice: which path a batch takes, and that both give the peer the same messages.
import { test } from "node:test";
import assert from "node:assert/strict";
import { utf8 } from "../bytes.ts";
import { nativeBackend as crypto } from "../crypto/native.ts";
import type { Output } from "../events.ts";
import type { DeferredAead, SealOptions } from "../machine.ts";
import { PROTOCOLS } from "../registry.ts";
import { establishedPair } from "../testing/pair.ts";
import { AeadPlacement, type PooledAead } from "./aead-placement.ts";
import { AEAD_POOL_MIN_BATCH, aeadInPool, aeadMayUsePool } from "../crypto/placement.ts";
import { BACKENDS } from "../crypto/index.ts";
import type { CryptoPool } from "../pool/index.ts";
import { OrderedAead } from "../pool/ordered-aead.ts";

const never = (e: unknown) => assert.fail(`unexpected failure: ${String(e)}`);

/** A pool that runs the deferred AEAD inline, synchronously, and records that it was used. */
function fakePool(wants: boolean) {
  const used: string[] = [];
  const pool: PooledAead = {
    pendingOut: 0,
    pendingInBytes: 0,
    wantsIn: () => wants,
    wantsOut: () => wants,
    receive(endpoint: DeferredAead, chunk: Uint8Array, deliver: (o: Output[]) => void) {
      used.push("open");
      const jobs = endpoint.splitFrames(chunk);
      deliver(endpoint.acceptFrames(jobs.map((j) => crypto.aesGcmOpen(j.key, j.nonce, j.data))));
    },
    send(endpoint: DeferredAead, messages: readonly Uint8Array[], opts: SealOptions, write: (b: Uint8Array) => void) {
      used.push("seal");
      const prepared = endpoint.prepare(messages, opts);
      write(prepared.assemble(prepared.items.map((j) => crypto.aesGcmSeal(j.key, j.nonce, j.data))));
    },
    writesDone: () => Promise.resolve(),
    settled: () => undefined,
  };
  return { pool, used };
}

// Each version with deferred AEAD, both paths; the others inline only (their machines offer none).
for (const entry of PROTOCOLS) for (const inPool of [false, true]) {
  test(`aead placement, ${entry.name} (${inPool ? "pool" : "inline"}): the batch takes its path and the peer reads the same messages`, () => {
    const { client, server } = establishedPair(entry, crypto);
    const pooled = inPool && client.deferred !== undefined;
    const { pool, used } = fakePool(inPool);
    const tx = new AeadPlacement(client, pool);
    const rx = new AeadPlacement(server, pool);
    const wire: Uint8Array[] = [];
    const batch = [utf8("one"), utf8("two")];
    tx.seal(batch, 6, {}, (b) => wire.push(b), never);
    const delivered: Output[] = [];
    const now = rx.receive(wire[0]!, (later) => delivered.push(...later), never);
    if (pooled) {
      assert.equal(now, undefined, "handed to the pool");
      assert.deepEqual(used, ["seal", "open"]);
    } else {
      delivered.push(...now!);
      assert.deepEqual(used, [], "inline: the pool is not asked");
    }
    assert.deepEqual(delivered, batch.map((data) => ({ type: "message", data })));
    // A close: the version's close chunk where it has one (what may push has one), nothing otherwise.
    tx.seal([], 0, { close: true }, (b) => wire.push(b), never);
    if (!client.capabilities.mayPush) assert.equal(wire.length, 1, "nothing written for a close");
    else assert.deepEqual(rx.receive(wire[1]!, (later) => delivered.push(...later), never) ?? delivered.slice(-1), [{ type: "closed" }]);
  });
}

test("aead placement: before establishment, and without a pool, everything is inline", () => {
  const psk = crypto.sha256(utf8("psk"));
  const entry = PROTOCOLS.at(-1)!;
  const client = entry.client({ crypto, username: "alice", deviceSalt: new Uint8Array(8), psk });
  const { pool, used } = fakePool(true);
  const placement = new AeadPlacement(client, pool);
  assert.throws(() => placement.seal([utf8("early")], 5, {}, () => {}, () => {}), { code: "ERR_PROTOCOL" });
  assert.deepEqual(used, [], "no deferred AEAD before establishment");
  const alone = new AeadPlacement(establishedPair(entry, crypto).client, undefined);
  assert.equal(alone.pendingOut, 0);
  assert.equal(alone.pendingInBytes, 0);
});

test("only a backend whose AEAD may run in the pool gets a per-connection OrderedAead (native never does)", () => {
  assert.equal(aeadMayUsePool("native"), false);
  assert.equal(aeadMayUsePool("noble"), true);
  // The rule agrees with the placement of every batch size.
  for (const bytes of [0, 64, 1024, 65536, 2 ** 30]) assert.equal(aeadInPool("native", bytes), false);
  assert.equal(aeadInPool("noble", AEAD_POOL_MIN_BATCH.noble), true);
});

test("aead placement: the machine is disposed only once every batch handed to the pool is back, after its write", async () => {
  // The noble backend's AEAD runs in the pool for a batch this large (crypto/placement.ts).
  const noble = BACKENDS.noble;
  const { client } = establishedPair(PROTOCOLS.at(-1)!, noble);
  const held: { key: Uint8Array; liveAtRelease?: boolean; release(): void }[] = [];
  const fakeCryptoPool = {
    bulkSaturated: false,
    seal: (key: Uint8Array, items: { nonce: Uint8Array; data: Uint8Array }[]) =>
      new Promise<Uint8Array[]>((resolve) => {
        const job = {
          key,
          release: () => {
            job.liveAtRelease = key.some((b) => b !== 0);
            resolve(items.map((i) => noble.aesGcmSeal(key, i.nonce, i.data)));
          },
        } as (typeof held)[number];
        held.push(job);
      }),
  } as unknown as CryptoPool;
  const placement = new AeadPlacement(client, new OrderedAead(fakeCryptoPool, noble));
  const big = new Uint8Array(AEAD_POOL_MIN_BATCH.noble + 1024).fill(1);
  const written: Uint8Array[] = [];
  placement.seal([big], big.length, { close: true }, (b) => written.push(b), never);
  assert.equal(held.length, 1, "the batch went to the pool");
  let disposed = false;
  placement.afterPending(() => {
    client.dispose();
    disposed = true;
  });
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(disposed, false, "not while a batch is out");
  held[0]!.release();
  for (let i = 0; i < 100 && !disposed; i++) await new Promise((r) => setTimeout(r, 1));
  assert.equal(disposed, true);
  assert.equal(held[0]!.liveAtRelease, true, "the batch was sealed under the live key");
  assert.equal(written.length, 1, "and written before the machine was disposed");
  assert.ok(held[0]!.key.every((b) => b === 0), "then the key was zeroed");
  // Nothing out: at once.
  let now = 0;
  new AeadPlacement(client, undefined).afterPending(() => now++);
  new AeadPlacement(client, new OrderedAead(fakeCryptoPool, noble)).afterPending(() => now++);
  assert.equal(now, 2);
});

test("aead placement: a pool chain that rejects still disposes the machine (session 7's review)", async () => {
  const { client } = establishedPair(PROTOCOLS.find((p) => p.name === "v2")!, crypto);
  const failing = { settled: () => Promise.reject(new Error("a driver's fail() threw in the chain")) } as unknown as PooledAead;
  let disposed = 0;
  new AeadPlacement(client, failing).afterPending(() => disposed++);
  for (let i = 0; i < 100 && disposed === 0; i++) await new Promise((r) => setTimeout(r, 1));
  assert.equal(disposed, 1);
});
