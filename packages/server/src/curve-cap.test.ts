// v3's curve steps in flight per source (curve-cap.ts, handshake.ts curve()): one source at its cap is
// refused with the busy signal, exactly as a full pool queue refuses, while another source's step
// still runs; and the source's place comes back on every path (the step done, refused by the pool,
// the connection gone mid-wait), or the source would be locked out for ever.
import { test } from "node:test";
import assert from "node:assert/strict";
import { curvePlacement } from "@nstp/core/pool";
import { dial, Reader, V3PeerHandshake, v3Handshake, within } from "@nstp/testkit";
import { CurveStepCap, defaultCurveStepsPerSource, defaultCurveStepsUnproven } from "./curve-cap.ts";
import { ProvenSources } from "./proven-sources.ts";
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

/** Opens a v3 hello from `from` (kept in `open`) and waits until its curve step reaches the held pool. */
function reacher(pool: ReturnType<typeof heldPool>, port: number, open: Reader[]) {
  return async (from: string, what: string) => {
    const n = pool.held.length;
    const r = await hello(port, from);
    open.push(r);
    assert.ok(await within(5000, () => pool.held.length === n + 1), `${what}: its curve step reached the pool`);
    return r;
  };
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
  const reachPool = reacher(pool, server.port, open);
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

test("curve cap: sources not proven share one cap however many there are; a proven source is outside it; places come back to the cap they were taken from", () => {
  let now = 0;
  const proven = new ProvenSources({ trustMs: 1000, max: 8, now: () => now });
  const cap = new CurveStepCap(2, { proven, maxUnproven: 3 });
  proven.confirmed("10.0.0.9");
  const strangers = ["10.0.0.1", "10.0.0.2", "2001:db8:0:1::1"].map((a) => cap.take(a)!);
  assert.ok(strangers.every((p) => p?.unproven), "three strangers, each from a source of its own");
  assert.equal(cap.take("2001:db8:0:2::1"), undefined, "a fourth source is refused: the strangers' cap, not its own");
  assert.equal(cap.refusedUnproven, 1);
  assert.equal(cap.refused, 0);
  const known = cap.take("10.0.0.9");
  assert.equal(known?.unproven, false, "a proven source is not counted with them");
  assert.ok(cap.take("10.0.0.9") !== undefined);
  assert.equal(cap.take("10.0.0.9"), undefined, "but still has its own cap");
  assert.equal(cap.refused, 1);
  // A stranger's source proven while its step is out: its place still goes back to the strangers' cap.
  proven.confirmed("10.0.0.1");
  cap.release(strangers[0]!);
  assert.equal(cap.unprovenSteps, 2);
  assert.ok(cap.take("10.0.0.1")?.unproven === false, "proven now");
  assert.ok(cap.take("10.0.0.3")?.unproven, "the strangers' place came back");
  assert.equal(cap.take("10.0.0.4"), undefined);
  // Proof lapses after trustMs.
  now = 2000;
  assert.equal(cap.take("10.0.0.9"), undefined, "10.0.0.9 is a stranger again, and the strangers are at their cap");
  assert.throws(() => new CurveStepCap(2, { proven, maxUnproven: 0 }), RangeError);
  assert.equal(defaultCurveStepsUnproven(64), 32);
  assert.equal(defaultCurveStepsUnproven(1), 1);
});

test("v3: strangers from many sources fill only their share of the queue; a device from a source where a session was established still gets its curve step run", async () => {
  const pool = heldPool();
  const server = await startPoolServer(pool, { maxCurveStepsPerSource: 2, maxCurveStepsUnproven: 3 });
  const quiet = curvePlacement.inlineQuietUntilMs;
  const open: Reader[] = [];
  try {
    // A device logs in from A (127.0.0.1): A is proven from then on.
    const device = await v3Handshake(server.port, ALICE);
    device.send([Buffer.from("hello")]);
    assert.deepEqual(await device.receive(), Buffer.from("hello"), "established");
    device.destroy();
    pool.hold = true;
    curvePlacement.inlineQuietUntilMs = Number.POSITIVE_INFINITY;
    const reachPool = reacher(pool, server.port, open);
    // Strangers, one step from each of three sources: their shared cap.
    const first = await reachPool("127.0.0.2", "stranger 2");
    await reachPool("127.0.0.3", "stranger 3");
    await reachPool("127.0.0.4", "stranger 4");
    await refusedBusy(await hello(server.port, "127.0.0.5"), "a fourth stranger's source, under its own cap");
    await reachPool(A, "the device's source, while strangers are at their cap");
    // A stranger's step done: its place is the strangers' again.
    pool.held.shift()!();
    assert.equal((await first.read(99)).readUInt16BE(0), 97, "the first stranger's message 2");
    await reachPool("127.0.0.5", "a stranger, once a place came back");
    const series = defenceSeries(server.stats.defence!).find((d) => d.name === "nstp_curve_steps_over_unproven_cap_total");
    assert.deepEqual(series?.samples, [[1]]);
  } finally {
    curvePlacement.inlineQuietUntilMs = quiet;
    pool.hold = false;
    while (pool.held.length > 0) pool.held.shift()!();
    for (const r of open) r.socket.destroy();
    await server.close({ graceMs: 0 });
  }
});
