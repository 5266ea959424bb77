// v3's curve steps in flight per source (curve-cap.ts, handshake.ts curve()): one source at its cap is
// refused with the busy signal, exactly as a full pool queue refuses, while another source's step
// still runs; and the source's place comes back on every path (the step done, refused by the pool,
// the connection gone mid-wait), or the source would be locked out for ever.
import { test } from "node:test";
import assert from "node:assert/strict";
import { curvePlacement } from "@nstp/core/pool";
import { dial, Reader, V3PeerHandshake, within } from "@nstp/testkit";
import { CurveStepCap, defaultCurveStepsPerSource } from "./curve-cap.ts";
import { defenceSeries } from "./defence-metrics.ts";
import { ALICE, heldPool, startPoolServer } from "./testing/v3-pool-server.ts";

const CAP = 2;
const A = "127.0.0.1";
const B = "127.0.0.2";

test("curve cap: counts per budget source (IPv6 per /64), refuses at the cap, holds only sources in flight", () => {
  const cap = new CurveStepCap(2);
  const a1 = cap.take("2001:db8:1:2::1");
  const a2 = cap.take("2001:db8:1:2:ffff::9"); // the same /64
  assert.ok(a1 !== undefined && a2 !== undefined);
  assert.equal(cap.take("2001:db8:1:2::77"), undefined, "the /64's third step is over the cap");
  assert.equal(cap.refused, 1);
  assert.ok(cap.take("2001:db8:1:3::1") !== undefined, "the next /64 is another source");
  assert.ok(cap.take("10.0.0.1") !== undefined);
  assert.equal(cap.sources, 3);
  cap.release(a1);
  assert.equal(cap.inFlightFrom("2001:db8:1:2::1"), 1);
  assert.ok(cap.take("2001:db8:1:2::1") !== undefined, "a place given back is taken again");
  cap.release(a1);
  cap.release(a2);
  assert.equal(cap.inFlightFrom("2001:db8:1:2::5"), 0);
  cap.release(cap.take("10.0.0.2")!);
  assert.equal(cap.sources, 2, "a source with nothing in flight is not held");
  assert.throws(() => new CurveStepCap(0), RangeError);
});

test("curve cap: the default is an eighth of the pool's queue, at least one", () => {
  assert.equal(defaultCurveStepsPerSource(64), 8); // the pool's default queue for one thread
  assert.equal(defaultCurveStepsPerSource(128), 16);
  assert.equal(defaultCurveStepsPerSource(7), 1);
  assert.equal(defaultCurveStepsPerSource(0), 1);
});

/** A v3 client from `from` that has sent message 1. */
async function hello(port: number, from: string): Promise<Reader> {
  const socket = await dial(port, "127.0.0.1", from);
  const reader = new Reader(socket);
  socket.write(new V3PeerHandshake(ALICE).hello());
  return reader;
}

async function refusedBusy(r: Reader, what: string): Promise<void> {
  assert.deepEqual(await r.read(2), Buffer.from([0, 0]), `${what}: the busy signal in place of message 2`);
  assert.deepEqual(await r.closedWithin(5000), { closed: true, extra: 0 }, `${what}: then the close`);
  r.socket.destroy();
}

test("v3: a source at its cap of curve steps in flight is refused busy, another's runs; its places come back on every path", async () => {
  const pool = heldPool();
  const server = await startPoolServer(pool, { maxCurveStepsPerSource: CAP });
  pool.hold = true; // after the server's warm-up (warmCurve), which runs steps in the pool
  // Every curve step to the pool, none inline: as when a burst has it busy (pool/curve.ts).
  const quiet = curvePlacement.inlineQuietUntilMs;
  curvePlacement.inlineQuietUntilMs = Number.POSITIVE_INFINITY;
  const open: Reader[] = [];
  const reachPool = async (from: string, what: string) => {
    const n = pool.held.length;
    const r = await hello(server.port, from);
    open.push(r);
    assert.ok(await within(5000, () => pool.held.length === n + 1), `${what}: its curve step reached the pool`);
    return r;
  };
  try {
    const a1 = await reachPool(A, "A's first");
    await reachPool(A, "A's second");
    const refusedBefore = curvePlacement.ran.refused;
    await refusedBusy(await hello(server.port, A), "A's third, over the cap");
    assert.equal(curvePlacement.ran.refused, refusedBefore, "refused by the cap, before the pool was asked");
    await reachPool(B, "B's, while A is at its cap");

    // Completion gives A's place back: its first step comes back (message 2), and a new one runs.
    pool.held.shift()!();
    assert.equal((await a1.read(99)).readUInt16BE(0), 97, "A's first gets message 2");
    await reachPool(A, "A's next, after one completed");
    await refusedBusy(await hello(server.port, A), "A again at its cap");

    // The rest complete; then the pool's own refusals (its queue full) give their places back too.
    while (pool.held.length > 0) pool.held.shift()!();
    pool.saturated = true;
    for (let i = 0; i < CAP + 1; i++) await refusedBusy(await hello(server.port, A), `A with the queue full, ${i}`);
    pool.saturated = false;
    await reachPool(A, "A after the queue's refusals (1)");
    await reachPool(A, "A after the queue's refusals (2)");

    // A's clients go away mid-wait. The pool holds their steps on (it ignores the signal, as a step
    // running on a thread does), but the places come back with the connections.
    const connections = server.stats.connections;
    for (const r of open.splice(-CAP)) r.socket.destroy();
    assert.ok(await within(5000, () => server.stats.connections === connections - CAP), "the server saw both go");
    await reachPool(A, "A after its waiting clients left (1)");
    await reachPool(A, "A after its waiting clients left (2)");
    await refusedBusy(await hello(server.port, A), "A at its cap once more");
    const series = defenceSeries(server.stats.defence!).find((d) => d.name === "nstp_curve_steps_over_source_cap_total");
    assert.deepEqual(series?.samples, [[3]], "the cap's three refusals, in the metrics (the queue's not among them)");
  } finally {
    curvePlacement.inlineQuietUntilMs = quiet;
    pool.hold = false;
    while (pool.held.length > 0) pool.held.shift()!();
    for (const r of open) r.socket.destroy();
    await server.close({ graceMs: 0 });
  }
});
