// Proven sources (proven-sources.ts): a source stays proven while a session established from it lives
// and for trustMs after the last one ends, so a fleet's long-lived sessions keep their addresses
// proven for the reconnect storm after their network drops (attacker review, session 8 round 2).
import { test } from "node:test";
import assert from "node:assert/strict";
import { v2Handshake, within } from "@nstp/testkit";
import { ProvenSources } from "./proven-sources.ts";
import { StaticKeyStore, startServer } from "./index.ts";

test("proven sources: proven while a session lives, then for trustMs after the last one ended; IPv6 per /64; bounded", () => {
  let now = 0;
  const p = new ProvenSources({ trustMs: 1000, max: 2, now: () => now });
  p.sessionStarted("10.0.0.1");
  p.sessionStarted("10.0.0.1");
  now = 5000;
  assert.ok(p.has("10.0.0.1"), "two sessions alive, long after they were established");
  p.sessionEnded("10.0.0.1");
  now = 9000;
  assert.ok(p.has("10.0.0.1"), "one still alive");
  p.sessionEnded("10.0.0.1");
  now = 9999;
  assert.ok(p.has("10.0.0.1"), "trustMs after the last one ended");
  now = 10_001;
  assert.ok(!p.has("10.0.0.1"), "and no longer");
  p.sessionEnded("10.0.0.1"); // not counted: ignored
  assert.ok(!p.has("10.0.0.1"));
  p.confirmed("2001:db8:0:1::5");
  assert.ok(p.has("2001:db8:0:1::/64"));
  p.confirmed("10.0.0.2");
  p.confirmed("10.0.0.3"); // the oldest confirmation (the /64) forgotten
  assert.ok(!p.has("2001:db8:0:1::/64") && p.has("10.0.0.2") && p.has("10.0.0.3"));
});

test("the server keeps a source proven while its session lives past trustSeconds, and for trustSeconds after it ends", async () => {
  const psk = Buffer.alloc(32, 7);
  const server = await startServer({ keys: new StaticKeyStore(new Map([["alice", psk]])), port: 0, userBudget: { trustSeconds: 0.3 }, handler: (m) => m });
  const proven = server.stats.defence!.lookupGate!.proven;
  try {
    const session = await v2Handshake(server.port, { username: "alice", psk });
    session.send([Buffer.from("hi")]);
    assert.deepEqual(await session.receive(), Buffer.from("hi"));
    await new Promise((r) => setTimeout(r, 600));
    assert.ok(proven.has("127.0.0.1"), "its session is alive: still proven, twice trustSeconds after it was established");
    session.destroy();
    assert.ok(await within(5000, () => server.stats.connections === 0), "the server saw it end");
    assert.ok(proven.has("127.0.0.1"), "proven for trustSeconds after it ended");
    assert.ok(await within(5000, () => !proven.has("127.0.0.1")), "then no longer");
  } finally {
    await server.close({ graceMs: 0 });
  }
});
