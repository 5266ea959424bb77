// v3's server curve step in the worker pool: the same function as inline (same shares for the same
// y), invalid points come back as errors and never kill a thread, a whole handshake runs through
// runCurveJob, and the placement rule sends work to the pool when the loop is busy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { p256 } from "@noble/curves/nist.js";
import { nativeBackend } from "../crypto/index.ts";
import { NstpError } from "../errors.ts";
import { CURVE_INLINE_PER_TURN, curvePlace, curveQuietUntil } from "../crypto/placement.ts";
import { concat, utf8 } from "../bytes.ts";
import type { Output } from "../events.ts";
import { V3Client, V3Server } from "../v3/index.ts";
import { FakeVerifiers, proverKeysFromPsk, verifierFromProverKeys } from "../v3/keys.ts";
import { InvalidPointError, proverShare, randomScalar, scalarFromBytes, verifierShares } from "../v3/spake2plus.ts";
import { CurvePlacement, CurveRefusal, runCurveJob, warmCurve } from "./curve.ts";
import { CryptoPool } from "./index.ts";

const crypto = nativeBackend;
const salt = utf8("device-salt-0001");
const keys = proverKeysFromPsk(crypto, crypto.sha256(utf8("pw")), salt, utf8("alice"));
const record = verifierFromProverKeys(keys);
const shareP = proverShare(scalarFromBytes(keys.w0), randomScalar(crypto));
const sends = (outs: Output[]) => concat(...outs.flatMap((o) => (o.type === "send" ? [o.data] : [])));
const G = p256.Point.BASE.toBytes(false);
const M = p256.Point.fromHex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f");

test("in the pool, verifierShares gives what it gives inline; bad points come back as errors and the threads live on", async () => {
  const pool = new CryptoPool({ threads: 1 });
  try {
    for (const rec of [record, new FakeVerifiers(crypto).record(utf8("mallory"))]) {
      const job = { ...rec, shareP, y: randomScalar(crypto) };
      assert.deepEqual(await pool.verifierShares(job), verifierShares(job));
    }
    const bad: [string, Uint8Array][] = [
      ["compressed prefix", Uint8Array.of(2, ...G.subarray(1))],
      ["off the curve", Uint8Array.of(...G.subarray(0, 64), G[64]! ^ 1)],
      ["all zeros", new Uint8Array(65)],
      ["64 bytes", G.subarray(0, 64)],
      ["X - w0·M the identity", M.multiply(scalarFromBytes(record.w0)).toBytes(false)],
    ];
    for (const [name, share] of bad) {
      const r = await pool.verifierShares({ ...record, shareP: share, y: randomScalar(crypto) });
      assert.ok(r instanceof InvalidPointError, name);
    }
    const r = await pool.verifierShares({ ...record, L: new Uint8Array(65), shareP, y: randomScalar(crypto) });
    assert.ok(r instanceof InvalidPointError, "a record whose L is not a point");
    const after = await pool.verifierShares({ ...record, shareP, y: 5n });
    assert.deepEqual(after, verifierShares({ ...record, shareP, y: 5n }), "the thread still works");
  } finally {
    await pool.destroy();
  }
});

test("a whole v3 handshake with the server's curve step run by runCurveJob in the pool", async () => {
  const pool = new CryptoPool({ threads: 1 });
  const placement = new CurvePlacement();
  placement.inlineQuietUntilMs = Number.POSITIVE_INFINITY; // the loop counts as busy: the pool runs it
  try {
    const client = new V3Client({ crypto, username: "alice", deviceSalt: salt, keys });
    const server = new V3Server({ crypto, deviceSalt: salt, deferCurve: true });
    server.receive(sends(client.start()));
    const [need] = server.provideVerifier(record);
    assert.ok(need?.type === "need-curve");
    const result = await runCurveJob(need.job, pool, { placement });
    assert.deepEqual(placement.ran, { inline: 0, pool: 1, refused: 0 });
    const message3 = sends(client.receive(sends(server.provideCurve(result))));
    assert.deepEqual(server.receive(message3), [{ type: "established", username: "alice" }]);
  } finally {
    await pool.destroy();
  }
});

test("placement: inline when idle; the pool while curve jobs are out there or the loop's share of curve time is spent", async () => {
  const base = { pool: true, poolSaturated: false, poolOutstanding: 0, inlineThisTurn: 0, nowMs: 100, inlineQuietUntilMs: 0 };
  assert.equal(curvePlace(base), "inline", "idle");
  assert.equal(curvePlace({ ...base, poolOutstanding: 1 }), "pool", "a burst under way");
  assert.equal(curvePlace({ ...base, inlineQuietUntilMs: 101 }), "pool", "the loop's share spent");
  assert.equal(curvePlace({ ...base, inlineThisTurn: CURVE_INLINE_PER_TURN }), "pool", "this turn's budget spent");
  assert.equal(curvePlace({ ...base, pool: false, poolOutstanding: 3, inlineThisTurn: 9, inlineQuietUntilMs: 1e9 }), "inline", "no pool");
  const full = { ...base, poolSaturated: true, poolOutstanding: 3, inlineQuietUntilMs: 1e9 };
  assert.equal(curvePlace(full), "refuse", "a full queue: refused, nothing inline");
  assert.equal(curvePlace({ ...full, poolOutstanding: 0, inlineQuietUntilMs: 0 }), "refuse", "a full queue: refused on an idle loop too");
  assert.equal(curveQuietUntil(10, 15), 15 + 45, "a 5 ms job: the next inline one no sooner than 45 ms later (10% share)");

  const pool = new CryptoPool({ threads: 1 });
  const placement = new CurvePlacement();
  try {
    const job = () => ({ ...record, shareP, y: randomScalar(crypto) });
    await pool.verifierShares(job()); // the thread is up
    const results = await Promise.all(Array.from({ length: 6 }, () => runCurveJob(job(), pool, { placement })));
    assert.ok(results.every((r) => !(r instanceof Error)));
    assert.equal(placement.ran.inline, 1, "the first of a burst runs inline, on an idle loop");
    assert.equal(placement.ran.pool, 5, "the rest go to the pool");
    assert.equal(placement.outstanding, 0);
    // After the quiet time, idle again: inline.
    placement.inlineQuietUntilMs = 0;
    await runCurveJob(job(), pool, { placement });
    assert.equal(placement.ran.inline, 2);
  } finally {
    await pool.destroy();
  }
  // A pool that fails (its queue filled since the check, a thread lost) is no fault of the peer's:
  // refused busy (the client retries), as on a full queue, and nothing runs on the loop.
  const failing = { saturated: false, verifierShares: () => Promise.reject(new NstpError("ERR_BUSY", "crypto pool refused the task")) } as unknown as CryptoPool;
  const busy = new CurvePlacement();
  busy.inlineQuietUntilMs = Number.POSITIVE_INFINITY;
  const job = { ...record, shareP, y: 7n };
  assert.ok((await runCurveJob(job, failing, { placement: busy })) instanceof CurveRefusal);
  assert.deepEqual(busy.ran, { inline: 0, pool: 1, refused: 1 });
  assert.ok((await runCurveJob({ ...job, shareP: new Uint8Array(65) })) instanceof InvalidPointError, "inline errors come back too");
});

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

test("a burst with the pool's queue full: the first step of an idle loop inline, then the pool's queue, the rest refused (busy), and nothing inline while the queue is full", async () => {
  const pool = new CryptoPool({ threads: 1, maxQueue: 4 });
  const placement = new CurvePlacement();
  try {
    const job = () => ({ ...record, shareP, y: randomScalar(crypto) });
    await pool.verifierShares(job()); // the thread is up
    // 40 steps asked for in one turn (a burst of message 1s read together): the first runs inline on
    // the idle loop, the next five go to the pool (one running, four queued: maxQueue), and with the
    // queue full and this turn's inline step taken, the other 34 are refused at once.
    const burst = Array.from({ length: 40 }, () => runCurveJob(job(), pool, { placement }));
    assert.deepEqual(placement.ran, { inline: CURVE_INLINE_PER_TURN, pool: 5, refused: 40 - 5 - CURVE_INLINE_PER_TURN });
    assert.ok(pool.saturated);
    const results = await Promise.all(burst);
    assert.equal(results.filter((r) => r instanceof CurveRefusal).length, 40 - 5 - CURVE_INLINE_PER_TURN);
    assert.ok(results.filter((r) => !(r instanceof CurveRefusal)).every((r) => !(r instanceof Error)), "the ones run are shares");

    // Turn after turn with the queue full, even with the loop's share of curve time left (as after a
    // long pause), nothing runs inline: every step is refused.
    const full = { saturated: true } as unknown as CryptoPool;
    for (let turn = 0; turn < 3; turn++) {
      await nextTurn();
      placement.inlineQuietUntilMs = 0;
      const before = { ...placement.ran };
      const rs = await Promise.all(Array.from({ length: 10 }, () => runCurveJob(job(), full, { placement })));
      assert.equal(placement.ran.inline - before.inline, 0, `turn ${turn}: inline`);
      assert.equal(placement.ran.refused - before.refused, 10, `turn ${turn}: refused`);
      assert.equal(rs.filter((r) => r instanceof CurveRefusal).length, 10);
    }
  } finally {
    await pool.destroy();
  }
});

test("warmCurve runs the curve step here and twice per pool thread, before any handshake", async () => {
  const pool = new CryptoPool({ threads: 2 });
  try {
    const before = pool.completed;
    await warmCurve(pool);
    assert.equal(pool.completed - before, 4);
  } finally {
    await pool.destroy();
  }
});

test("a pool thread runs a full collection every CURVE_STEPS_PER_COLLECTION curve steps (its event loop does not turn between tasks)", async () => {
  // The worker's task function, called here on this thread: its counter is the one a pool thread keeps.
  const { default: run, curveCollections, CURVE_STEPS_PER_COLLECTION } = await import("./worker.ts");
  const before = curveCollections.collections;
  for (let i = 0; i < CURVE_STEPS_PER_COLLECTION; i++) await run({ op: "verifierShares", backend: "native", job: { w0: new Uint8Array(32), L: new Uint8Array(65), shareP: new Uint8Array(65), y: 1n } });
  assert.equal(curveCollections.collections, before + 1);
});
