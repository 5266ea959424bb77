// Key lookups beyond the store's cache, per source (lookup-gate.ts): a stranger who sends only
// preambles naming random users, and hangs up, holds at most its source's share of the store's
// pending lookups, so a known user's first login from elsewhere is not refused busy; a source at its
// cap is refused whatever name it claims; a source where a session was established is exempt.
import { test } from "node:test";
import assert from "node:assert/strict";
import { derivePsk } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import { Reader, dial, v2Handshake, within } from "@nstp/testkit";
import { PasswordKeyStore } from "./credentials.ts";
import { DEFAULT_UNCACHED_LOOKUPS_PER_SOURCE, LookupGate, defaultUncachedLookupsPerSource, defaultUncachedLookupsUnproven } from "./lookup-gate.ts";
import { startServer } from "./server.ts";

const A = "127.0.0.1";
const B = "127.0.0.2";

test("lookup gate: counts per budget source (IPv6 per /64) until each place is given back, once; a source at its cap is refused", () => {
  const gate = new LookupGate({ maxPerSource: 2, trustMs: 1000, maxProvenSources: 2 });
  const admit = gate.admitFor("2001:db8:1:2::1")!;
  const [r1, r2] = [admit(), gate.admitFor("2001:db8:1:2:ffff::9")!()]; // the same /64
  assert.ok(r1 && r2);
  assert.equal(admit(), undefined, "the /64's third lookup is over the cap");
  assert.equal(gate.admitFor("2001:db8:1:2::77"), undefined, "and its next connection is refused before the store is asked");
  assert.equal(gate.refused, 2);
  assert.ok(gate.admitFor("2001:db8:1:3::1")!(), "the next /64 is another source");
  r1();
  r1(); // given back once only
  assert.equal(gate.underWayFrom("2001:db8:1:2::1"), 1);
  r2();
  assert.equal(gate.underWayFrom("2001:db8:1:2::1"), 0);
  assert.equal(gate.sources, 1, "a source with nothing under way is not held");
  assert.throws(() => new LookupGate({ maxPerSource: 0, trustMs: 1, maxProvenSources: 1 }), RangeError);
});

test("lookup gate: a source where a session was established is exempt for trustMs; proven sources are bounded", () => {
  let now = 0;
  const gate = new LookupGate({ maxPerSource: 1, trustMs: 1000, maxProvenSources: 2, now: () => now });
  const take = (a: string) => gate.admitFor(a)?.();
  assert.ok(take("10.0.0.1"));
  assert.equal(take("10.0.0.1"), undefined);
  gate.confirmed("10.0.0.1");
  for (let i = 0; i < 20; i++) assert.ok(take("10.0.0.1"), "proven: no cap");
  now = 1001;
  assert.equal(take("10.0.0.1"), undefined, "the exemption ran out (its one counted lookup is still under way)");
  gate.confirmed("10.0.0.2");
  gate.confirmed("10.0.0.3");
  gate.confirmed("10.0.0.4"); // 10.0.0.2 forgotten: the oldest
  assert.ok(take("10.0.0.2") && take("10.0.0.2") === undefined, "forgotten: capped again");
  assert.ok(take("10.0.0.4") && take("10.0.0.4"));
});

test("lookup gate: the default is an eighth of the store's pending bound, at least 1", () => {
  assert.equal(defaultUncachedLookupsPerSource(130), 16); // PasswordKeyStore with a 2-thread pool
  assert.equal(defaultUncachedLookupsPerSource(256), 32); // PostgreSQL
  assert.equal(defaultUncachedLookupsPerSource(7), 1);
  assert.equal(defaultUncachedLookupsPerSource(undefined), DEFAULT_UNCACHED_LOOKUPS_PER_SOURCE);
});

test("lookup gate: sources not proven share one cap however many there are, refused before the store is asked; places go back to it once", () => {
  let now = 0;
  const gate = new LookupGate({ maxPerSource: 2, maxUnproven: 3, trustMs: 1000, maxProvenSources: 8, now: () => now });
  gate.confirmed("10.0.0.9");
  const places = ["10.0.0.1", "10.0.0.2", "2001:db8:0:1::1"].map((a) => gate.admitFor(a)!()!);
  assert.equal(gate.unprovenLookups, 3);
  assert.equal(gate.admitFor("2001:db8:0:2::1"), undefined, "a fourth source is refused before the store is asked: the shared cap");
  assert.equal(gate.admitFor("10.0.0.1"), undefined, "and so is a source under its own cap");
  assert.equal(gate.refusedUnproven, 2);
  assert.equal(gate.refused, 0);
  for (let i = 0; i < 10; i++) assert.ok(gate.admitFor("10.0.0.9")!(), "a proven source is outside it");
  places[0]!();
  places[0]!(); // once only
  assert.equal(gate.unprovenLookups, 2);
  assert.ok(gate.admitFor("10.0.0.5")!(), "a place came back");
  now = 2000;
  assert.equal(gate.admitFor("10.0.0.9"), undefined, "proof lapsed: a stranger again, and the strangers are at their cap");
  assert.equal(defaultUncachedLookupsUnproven(130), 65);
  assert.equal(defaultUncachedLookupsUnproven(undefined), Number.POSITIVE_INFINITY);
  assert.throws(() => new LookupGate({ maxPerSource: 1, maxUnproven: 0, trustMs: 1, maxProvenSources: 1 }), RangeError);
});

/** A v2 preamble naming `username` (docs/PROTOCOL.md §v2), and nothing after it. */
const preamble = (username: string) => {
  const user = Buffer.from(username, "utf8");
  return Buffer.concat([Buffer.from([0x00, 0x4e, 0x53, 0x54, 0x50, 0x02, user.length]), user]);
};

test("a flood of preambles with random names from one source does not get a known user's first login refused busy from another", async () => {
  const deviceSalt = new Uint8Array(16);
  // Each unknown name's delay holds its pending slot for 5 s, past its connection: the flood's
  // names would fill all 12 slots, and alice's derivation then be refused busy.
  const keys = new PasswordKeyStore({ deviceSalt, crypto: nativeBackend, lookup: (name) => (name === "alice" ? "the password" : undefined), unknownDelayMs: 5000, maxPending: 12 });
  const server = await startServer({ keys, port: 0, deviceSalt, maxUncachedLookupsPerSource: 4, handler: (m) => m });
  const open: Reader[] = [];
  try {
    for (let i = 0; i < 24; i++) {
      const socket = await dial(server.port, "127.0.0.1", B);
      socket.on("error", () => {});
      socket.write(preamble(`random-${i}-${Math.random().toString(36).slice(2)}`));
      socket.end();
      open.push(new Reader(socket));
    }
    assert.ok(await within(5000, () => server.stats.defence!.lookupGate!.refused >= 20), "B's lookups past its 4 were refused");
    assert.equal(keys.pending, 4, "B holds its share of the pending lookups, no more");

    const psk = Buffer.from(await derivePsk(nativeBackend, { username: "alice", password: "the password", deviceSalt }));
    const session = await v2Handshake(server.port, { username: "alice", psk, localAddress: A });
    session.send([Buffer.from("hello")]);
    assert.deepEqual(await session.receive(10_000), Buffer.from("hello"), "alice's first login, her key derived, went through");
    session.destroy();

    // B, still at its cap, is refused busy even for alice, now cached: busy tells it nothing about names.
    const socket = await dial(server.port, "127.0.0.1", B);
    const r = new Reader(socket);
    open.push(r);
    socket.write(Buffer.concat([preamble("alice"), Buffer.from([0, 48]), Buffer.alloc(48, 1)]));
    assert.deepEqual(await r.read(2), Buffer.from([0, 0]), "the busy signal in place of message 2");
    assert.deepEqual(await r.closedWithin(5000), { closed: true, extra: 0 });
  } finally {
    for (const r of open) r.socket.destroy();
    await server.close({ graceMs: 0 });
  }
});

test("strangers flooding preambles from many sources fill only their half of the store's lookups: a device from a source where a session was established still gets an uncached key", async () => {
  const deviceSalt = new Uint8Array(16);
  const passwords = new Map([["alice", "a"], ["bob", "b"]]);
  // maxPending 12: strangers together may have 6 under way (half), each source 4.
  const keys = new PasswordKeyStore({ deviceSalt, crypto: nativeBackend, lookup: (name) => passwords.get(name), unknownDelayMs: 5000, maxPending: 12 });
  const server = await startServer({ keys, port: 0, deviceSalt, maxUncachedLookupsPerSource: 4, handler: (m) => m });
  const open: Reader[] = [];
  const login = async (username: string) => {
    const psk = Buffer.from(await derivePsk(nativeBackend, { username, password: passwords.get(username)!, deviceSalt }));
    const session = await v2Handshake(server.port, { username, psk, localAddress: A });
    session.send([Buffer.from(username)]);
    assert.deepEqual(await session.receive(10_000), Buffer.from(username), `${username} logged in`);
    session.destroy();
  };
  try {
    await login("alice"); // A is proven from now on
    for (const from of ["127.0.0.2", "127.0.0.3", "127.0.0.4"]) {
      for (let i = 0; i < 4; i++) {
        const socket = await dial(server.port, "127.0.0.1", from);
        socket.on("error", () => {});
        socket.write(preamble(`random-${from}-${i}-${Math.random().toString(36).slice(2)}`));
        socket.end();
        open.push(new Reader(socket));
      }
    }
    const gate = server.stats.defence!.lookupGate!;
    assert.ok(await within(5000, () => gate.refusedUnproven >= 6), "past their six together, strangers were refused");
    assert.equal(keys.pending, 6, "three sources hold the strangers' half of the pending lookups, no more");
    await login("bob"); // uncached: a derivation, from a proven source, while strangers hold their half
  } finally {
    for (const r of open) r.socket.destroy();
    await server.close({ graceMs: 0 });
  }
});
