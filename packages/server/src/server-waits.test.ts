// The server's own waits do not age a handshake (handshake.ts waitBegins; admission.ts serverWaiting):
// while the server looks its key up (the judge delay and v3's curve step take the same path), the
// handshake is not stalled, so at the cap a newcomer is refused busy rather than admitted in its
// place; and the handshake deadline does not count that time (up to the deadline again), while the
// peer's own silence still counts. Both failed before: the lookup aged the handshake like silence.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NstpError } from "@nstp/core";
import { Reader, codeOf, dial, v2Handshake, within } from "@nstp/testkit";
import { type KeyStore, StaticKeyStore, startServer } from "./index.ts";

const PSK = Buffer.alloc(32, 0x5a);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A key store whose lookups, while `hold`, wait until the test answers them (alice's key; anyone else unknown). */
function heldKeys(): KeyStore & { waiting: (() => void)[]; hold: boolean } {
  const waiting: (() => void)[] = [];
  const keyOf = (name: string) => (name === "alice" ? PSK : undefined);
  const keys = {
    waiting,
    hold: true,
    lookup: (name: string) => (keys.hold ? new Promise<Uint8Array | undefined>((r) => waiting.push(() => r(keyOf(name)))) : keyOf(name)),
  };
  return keys;
}

test("a handshake waiting for its key lookup is not stalled: at the cap a newcomer is refused busy, and the handshake completes", async () => {
  const keys = heldKeys();
  const server = await startServer({ keys, port: 0, maxHandshaking: 1, admission: { stallMs: 100 }, handler: (m) => m });
  const sockets: import("node:net").Socket[] = [];
  try {
    const first = v2Handshake(server.port, { username: "alice", psk: PSK });
    first.catch(() => {});
    assert.ok(await within(5000, () => keys.waiting.length === 1), "its key lookup began");
    await sleep(400); // four stall thresholds since message 1, all of it the server's own lookup
    const { evictions, busyRefusals } = server.stats.defence!.admission;
    const newcomer = await dial(server.port);
    sockets.push(newcomer);
    newcomer.on("error", () => {});
    const reader = new Reader(newcomer);
    assert.deepEqual(await reader.read(2), Buffer.from([0, 0]), "the newcomer is told busy");
    assert.equal(server.stats.defence!.admission.evictions, evictions, "nothing evicted for it");
    assert.equal(server.stats.defence!.admission.busyRefusals, busyRefusals + 1);
    keys.waiting.shift()!();
    const session = await first;
    session.send([Buffer.from("still here")]);
    assert.deepEqual(await session.receive(), Buffer.from("still here"));
    session.destroy();

    // Once the lookup has answered, the peer's own silence counts again: a preamble alone (step 1) is
    // stalled after stallMs and goes for the next newcomer.
    await within(5000, () => server.stats.handshaking === 0);
    keys.hold = false;
    const silent = await dial(server.port);
    sockets.push(silent);
    silent.on("error", () => {});
    const silentReader = new Reader(silent);
    silent.write(Buffer.from([0x00, 0x4e, 0x53, 0x54, 0x50, 0x02, 5, ...Buffer.from("alice")]));
    assert.ok(await within(5000, () => server.stats.handshaking === 1));
    await sleep(300);
    const late = await dial(server.port);
    sockets.push(late);
    late.on("error", () => {});
    assert.deepEqual(await silentReader.read(2), Buffer.from([0, 0]), "the stalled one evicted, with the busy signal");
    assert.equal(server.stats.defence!.admission.evictions, evictions + 1);
  } finally {
    for (const s of sockets) s.destroy();
    await server.close({ graceMs: 0 });
  }
});

test("the handshake deadline does not count the server's key lookup (up to the deadline again); the peer's silence still counts", async () => {
  // Long enough that a loaded host's timer overshoot stays well inside the excuse's cap (2 × the deadline):
  // 1.9 s of margin (at 1 s held 1.3 s it was 0.7 s, less the handshake's own time).
  const DEADLINE_MS = 2000;
  const keys = heldKeys();
  const server = await startServer({ keys, port: 0, limits: { handshakeTimeoutMs: DEADLINE_MS }, handler: (m) => m });
  try {
    const first = v2Handshake(server.port, { username: "alice", psk: PSK });
    first.catch(() => {});
    assert.ok(await within(5000, () => keys.waiting.length === 1), "its key lookup began");
    await sleep(DEADLINE_MS + 100); // past the deadline (accept came before this wait), within its cap: the server's lookup
    keys.waiting.shift()!();
    const session = await first;
    session.send([Buffer.from("in time")]);
    assert.deepEqual(await session.receive(), Buffer.from("in time"));
    session.destroy();

    // A lookup that never answers: excused up to the deadline, then refused with the busy signal.
    const held = v2Handshake(server.port, { username: "alice", psk: PSK });
    const t0 = Date.now();
    assert.match(await codeOf(held), /message 2 of 0 bytes/, "the busy signal in place of message 2");
    assert.ok(Date.now() - t0 >= 2 * DEADLINE_MS - 100, `refused after ${Date.now() - t0} ms: the excuse is capped at the deadline, not void`);
  } finally {
    await server.close({ graceMs: 0 });
  }
});

test("a handshake the server ends for its own reasons before answering gets the busy signal: a shutdown, a store that fails busy or too slow", async () => {
  // Each was a bare close after message 1, which a client reads as a wrong password (ERR_AUTH, never
  // retried): a device mid-handshake when its server restarts would stay out for good.
  const keys = heldKeys();
  const server = await startServer({ keys, port: 0, handler: (m) => m });
  const pending = v2Handshake(server.port, { username: "alice", psk: PSK });
  pending.catch(() => {});
  assert.ok(await within(5000, () => keys.waiting.length === 1), "its key lookup began");
  await server.close({ graceMs: 1000 });
  assert.match(await codeOf(pending), /message 2 of 0 bytes/, "shutdown: the busy signal in place of message 2");

  for (const code of ["ERR_BUSY", "ERR_TIMEOUT"] as const) {
    const failing: KeyStore = { lookup: () => Promise.reject(new NstpError(code, "store unavailable")) };
    const s = await startServer({ keys: failing, port: 0, handler: (m) => m });
    try {
      assert.match(await codeOf(v2Handshake(s.port, { username: "alice", psk: PSK })), /message 2 of 0 bytes/, `a lookup failing with ${code}`);
    } finally {
      await s.close({ graceMs: 0 });
    }
  }
});

test("a handshake waiting out the guessing budget's judge delay stays evictable as stalled: the delay is a penalty on guesses at that user, not the server's load", async () => {
  // Were its stall clock stopped, a guesser keeping one name over its budget would pin a slot per
  // wrong guess for the whole delay (1-5 s), and hanging up refunds the guess (the review of session 5).
  const keys = new StaticKeyStore(new Map([["alice", new Uint8Array(PSK)], ["bob", new Uint8Array(PSK)]]));
  const server = await startServer({
    keys,
    port: 0,
    maxHandshaking: 1,
    admission: { stallMs: 100 },
    failureLimit: { burst: 1000 },
    userBudget: { burst: 1, refillPerSecond: 0.5 },
    handler: (m) => m,
  });
  try {
    const WRONG = Buffer.alloc(32, 1);
    assert.notEqual(await codeOf(v2Handshake(server.port, { username: "alice", psk: WRONG })), "ok", "the first wrong guess, judged at once");
    const budget = server.stats.defence!.budget;
    const delayed = v2Handshake(server.port, { username: "alice", psk: WRONG });
    delayed.catch(() => {});
    assert.ok(await within(5000, () => budget.counts.waited === 1), "the second waits out alice's backoff (2 s)");
    await sleep(300); // three stall thresholds: its client has sent everything it can
    const newcomer = await v2Handshake(server.port, { username: "bob", psk: PSK });
    newcomer.destroy();
    assert.match(await codeOf(delayed), /message 2 of 0 bytes/, "the delayed one evicted for the newcomer, with the busy signal");
  } finally {
    await server.close({ graceMs: 0 });
  }
});
