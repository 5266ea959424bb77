// An overloaded server sheds v3 handshakes instead of stalling its event loop (pool/curve.ts,
// crypto/placement.ts curvePlace): with the pool's queue full the curve step is not run (not inline
// either), the client gets the busy signal (00 00) in place of message 2 and
// a close, and its guess is refunded: refusals never use up the guessing budget.
import { test } from "node:test";
import assert from "node:assert/strict";
import { v3 } from "@nstp/core";
import { curvePlacement } from "@nstp/core/pool";
import { dial, Reader, V3PeerHandshake, v3Handshake } from "@nstp/testkit";
import { ALICE, startPoolServer } from "./testing/v3-pool-server.ts";

const BURST = 2;

test("v3: a curve step refused in overload is the busy signal, and its guess is refunded", async () => {
  const pool = { threads: 1, maxQueue: 64, saturated: true, verifierShares: (job: v3.VerifierCurveInput) => Promise.resolve(v3.verifierShares(job)) };
  const server = await startPoolServer(pool, {
    // Tiny budgets that do not refill within the test: charged refusals would use them up.
    failureLimit: { burst: BURST, refillPerSecond: 0.001 },
    userBudget: { burst: BURST, refillPerSecond: 0.001 },
  });
  // Every step is refused while the queue is full, on an idle loop too.
  try {
    const refusedBefore = curvePlacement.ran.refused;
    const inlineBefore = curvePlacement.ran.inline;
    for (let i = 0; i < BURST * 3; i++) {
      const socket = await dial(server.port);
      const reader = new Reader(socket);
      socket.write(new V3PeerHandshake(ALICE).hello());
      assert.deepEqual(await reader.read(2), Buffer.from([0, 0]), `attempt ${i}: the busy signal in place of message 2`);
      assert.deepEqual(await reader.closedWithin(5000), { closed: true, extra: 0 }, `attempt ${i}: then the close`);
      socket.destroy();
    }
    assert.equal(curvePlacement.ran.refused - refusedBefore, BURST * 3);
    assert.equal(curvePlacement.ran.inline - inlineBefore, 0, "nothing ran on the loop");

    // The queue drains: the same user from the same address still has all of its guesses.
    pool.saturated = false;
    const s = await v3Handshake(server.port, ALICE);
    s.send([Buffer.from("ping")]);
    assert.deepEqual(await s.receive(), Buffer.from("ping"));
    s.destroy();
  } finally {
    await server.close({ graceMs: 0 });
  }
});
