// The worker pool: it runs the crypto interface (same results as inline), refuses work when its queue
// is full, cancels queued work whose caller has gone, and shuts down without leaving threads behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { nativeBackend } from "../crypto/index.ts";
import { NstpError } from "../errors.ts";
import { CryptoPool, pooledBackend } from "./index.ts";

const enc = new TextEncoder();

test("PBKDF2 and AES-GCM batches in the pool match the inline backend", async () => {
  const pool = new CryptoPool({ threads: 2 });
  try {
    const salt = nativeBackend.randomBytes(16);
    assert.deepEqual(await pool.pbkdf2(enc.encode("pw"), salt, 1000, 32), await nativeBackend.pbkdf2Sha256(enc.encode("pw"), salt, 1000, 32));
    const key = nativeBackend.randomBytes(32);
    const items = Array.from({ length: 8 }, (_, i) => ({ nonce: nativeBackend.randomBytes(12), data: nativeBackend.randomBytes(i * 100) }));
    const sealed = await pool.seal(key, items);
    sealed.forEach((s, i) => assert.deepEqual(s, nativeBackend.aesGcmSeal(key, items[i]!.nonce, items[i]!.data)));
    const forged = sealed.map((s, i) => (i === 3 ? Uint8Array.from(s, (b, j) => (j === 0 ? b ^ 1 : b)) : s));
    const opened = await pool.open(key, items.map((it, i) => ({ nonce: it.nonce, data: forged[i]! })));
    opened.forEach((o, i) => (i === 3 ? assert.equal(o, null) : assert.deepEqual(o, items[i]!.data)));
    const before = pool.completed;
    const backend = pooledBackend(nativeBackend, pool);
    await backend.pbkdf2Sha256(enc.encode("x"), salt, 10, 32);
    assert.equal(pool.completed, before + 1, "the pooled backend's PBKDF2 ran in the pool");
  } finally {
    await pool.destroy();
  }
});

test("a full queue refuses at once with ERR_BUSY; cancelled work is dropped", async () => {
  const pool = new CryptoPool({ threads: 1, maxQueue: 2 });
  try {
    await pool.pbkdf2(enc.encode("warm"), new Uint8Array(8), 1, 32); // the thread is up
    await new Promise((r) => setImmediate(r)); // and free: the gate counts a task done a few microtasks after its result
    const slow = () => pool.pbkdf2(enc.encode("pw"), new Uint8Array(8), 200_000, 32);
    const running = slow();
    // No sleep: the gate counts it running at submission (gate.ts start()); a sleep near PBKDF2-200k's own
    // time let it finish first, and the queue was no longer full.
    const controller = new AbortController();
    const queued = [pool.pbkdf2(enc.encode("pw"), new Uint8Array(8), 200_000, 32, controller.signal), slow()];
    assert.equal(pool.saturated, true);
    await assert.rejects(slow(), (e: unknown) => e instanceof NstpError && e.code === "ERR_BUSY");
    controller.abort();
    await assert.rejects(queued[0]!, (e: unknown) => e instanceof NstpError && e.code === "ERR_CLOSED");
    assert.equal(pool.saturated, false);
    await Promise.all([running, queued[1]]);
  } finally {
    await pool.destroy();
  }
});

test("AEAD batches leave the queue's last places to handshake work: bulk traffic cannot refuse every curve step or derivation", async () => {
  const pool = new CryptoPool({ threads: 1, maxQueue: 4 });
  try {
    assert.equal(pool.handshakeReserve, 1);
    await pool.pbkdf2(enc.encode("warm"), new Uint8Array(8), 1, 32); // the thread is up
    await new Promise((r) => setImmediate(r)); // and free: the gate counts a task done a few microtasks after its result
    const running = pool.pbkdf2(enc.encode("pw"), new Uint8Array(8), 200_000, 32);
    // Running from submission on (gate.ts start()): no sleep, which could outlast it.
    const key = nativeBackend.randomBytes(32);
    const batch = () => pool.seal(key, [{ nonce: nativeBackend.randomBytes(12), data: nativeBackend.randomBytes(1024) }]);
    const bulk = [batch(), batch(), batch()];
    assert.equal(pool.bulkSaturated, true, "three of four places taken by AEAD: no more AEAD");
    assert.equal(pool.saturated, false, "the last place is still there for handshake work");
    await assert.rejects(batch(), (e: unknown) => e instanceof NstpError && e.code === "ERR_BUSY");
    const derivation = pool.pbkdf2(enc.encode("pw"), new Uint8Array(8), 10, 32);
    assert.equal(pool.saturated, true);
    await Promise.all([running, ...bulk, derivation]);
    assert.equal(pool.bulkSaturated, false);
  } finally {
    await pool.destroy();
  }
});

test("tasks start in the order they were submitted, with or without a cancellation signal", async () => {
  // piscina 5 re-queues a task it shifted but could not place at the tail of its queue (and puts
  // tasks with an AbortSignal in a second queue; with stricterFIFO, at its head: newest first), so
  // under a burst an early task was passed over again and again: a v3 handshake's curve step queued
  // at 0.4 s ran at 10 s, past its deadline (the Node soak). One thread: completion order is start order.
  const pool = new CryptoPool({ threads: 1 });
  try {
    await pool.pbkdf2(enc.encode("warm"), new Uint8Array(8), 1, 32); // the thread is up
    await new Promise((r) => setImmediate(r)); // and free: the gate counts a task done a few microtasks after its result
    const done: number[] = [];
    const tasks = Array.from({ length: 12 }, (_, i) =>
      pool.pbkdf2(enc.encode("pw"), new Uint8Array(8), 2000, 32, i % 2 ? new AbortController().signal : undefined).then(() => done.push(i)),
    );
    await Promise.all(tasks);
    assert.deepEqual(done, Array.from({ length: 12 }, (_, i) => i));
  } finally {
    await pool.destroy();
  }
});

test("a pool thread zeroes its own copy of a key, a password and w0 once the job is done (session 7's review)", async () => {
  // The worker's task function, called on this thread: the task's arrays are what a thread receives
  // (its own structured-clone copies), so they must be zero after, and the results still right.
  const { default: run } = await import("./worker.ts");
  const key = new Uint8Array(32).fill(7);
  const nonce = new Uint8Array(12);
  const sealKey = key.slice();
  const sealed = (await run({ op: "seal", backend: "native", key: sealKey, items: [{ nonce, data: enc.encode("hello") }] })) as Uint8Array[];
  assert.ok(sealKey.every((b) => b === 0), "seal: key copy zeroed");
  assert.deepEqual(sealed[0], nativeBackend.aesGcmSeal(key, nonce, enc.encode("hello")));
  const openKey = key.slice();
  const opened = (await run({ op: "open", backend: "native", key: openKey, items: [{ nonce, data: sealed[0]! }] })) as Uint8Array[];
  assert.ok(openKey.every((b) => b === 0), "open: key copy zeroed");
  assert.deepEqual(opened[0], enc.encode("hello"));
  const password = enc.encode("correct horse");
  await run({ op: "pbkdf2", backend: "native", password, salt: new Uint8Array(16), iterations: 1, length: 32 });
  assert.ok(password.every((b) => b === 0), "pbkdf2: password copy zeroed");
  const w0 = new Uint8Array(32).fill(1);
  await run({ op: "verifierShares", backend: "native", job: { w0, L: new Uint8Array(65), shareP: new Uint8Array(65), y: 1n } });
  assert.ok(w0.every((b) => b === 0), "curve: w0 copy zeroed");
});
