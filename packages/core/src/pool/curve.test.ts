// v3's server curve step in the worker pool: the same function as inline (same shares for the same
// y), invalid points come back as errors and never kill a thread, a whole handshake runs through
// runCurveJob, and the placement rule sends work to the pool when the loop is busy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { p256 } from "@noble/curves/nist.js";
import { nativeBackend } from "../crypto/index.ts";
import { NstpError } from "../errors.ts";
import { curveInline, curveQuietUntil } from "../crypto/placement.ts";
import { concat, utf8 } from "../bytes.ts";
import type { Output } from "../events.ts";
import { V3Client, V3Server } from "../v3/index.ts";
import { FakeVerifiers, proverKeysFromPsk, verifierFromProverKeys } from "../v3/keys.ts";
import { InvalidPointError, proverShare, randomScalar, scalarFromBytes, verifierShares } from "../v3/spake2plus.ts";
import { CurvePlacement, runCurveJob, warmCurve } from "./curve.ts";
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
    assert.deepEqual(placement.ran, { inline: 0, pool: 1 });
    const message3 = sends(client.receive(sends(server.provideCurve(result))));
    assert.deepEqual(server.receive(message3), [{ type: "established", username: "alice" }]);
  } finally {
    await pool.destroy();
  }
});

test("placement: inline when idle; the pool while curve jobs are out there or the loop's share of curve time is spent", async () => {
  const base = { pool: true, poolSaturated: false, poolOutstanding: 0, nowMs: 100, inlineQuietUntilMs: 0 };
  assert.equal(curveInline(base), true, "idle");
  assert.equal(curveInline({ ...base, poolOutstanding: 1 }), false, "a burst under way");
  assert.equal(curveInline({ ...base, inlineQuietUntilMs: 101 }), false, "the loop's share spent");
  assert.equal(curveInline({ ...base, pool: false, poolOutstanding: 3, inlineQuietUntilMs: 1e9 }), true, "no pool");
  assert.equal(curveInline({ ...base, poolSaturated: true, poolOutstanding: 3 }), true, "a full queue: message 2 is owed, so here");
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
  // the job runs here.
  const failing = { saturated: false, verifierShares: () => Promise.reject(new NstpError("ERR_BUSY", "crypto pool refused the task")) } as unknown as CryptoPool;
  const busy = new CurvePlacement();
  busy.inlineQuietUntilMs = Number.POSITIVE_INFINITY;
  const job = { ...record, shareP, y: 7n };
  assert.deepEqual(await runCurveJob(job, failing, { placement: busy }), verifierShares(job));
  assert.deepEqual(busy.ran, { inline: 1, pool: 1 });
  assert.ok((await runCurveJob({ ...job, shareP: new Uint8Array(65) })) instanceof InvalidPointError, "inline errors come back too");
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
