// Credentials: the users file, the password-lookup key store (single flight, no PBKDF2 for unknown
// users, bounded cache, busy refusal), and the failure limiter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NstpError, legacy, toHex, utf8 } from "@nstp/core";
import { CryptoPool } from "@nstp/core/pool";
import { nativeBackend } from "@nstp/core/crypto/native";
import { LeakyBuckets } from "./limiter.ts";
import { DummyKeys, PasswordKeyStore, StaticKeyStore, USERS_FILE_FORMAT, parseUsersFile, userRecord } from "./credentials.ts";

const salt = legacy.DEMO_DEVICE_SALT;

test("users file: records are checked against the device salt and the protocol's iterations", () => {
  const key = nativeBackend.randomBytes(32);
  const good = JSON.stringify({ format: USERS_FILE_FORMAT, users: { bob: userRecord(salt, "bob", key) } });
  assert.deepEqual(parseUsersFile(good, salt).get("bob"), key);
  assert.throws(() => parseUsersFile(good, Uint8Array.of(9)), /salt does not match/);
  const fewer = JSON.stringify({ format: USERS_FILE_FORMAT, users: { bob: { ...userRecord(salt, "bob", key), iterations: 1000 } } });
  assert.throws(() => parseUsersFile(fewer, salt), /iterations/);
  assert.throws(() => parseUsersFile("{}", salt), /format/);
});

test("password lookup: one derivation per user however many ask at once, none for unknown users, cached", async () => {
  const pool = new CryptoPool({ threads: 2 });
  try {
    let lookups = 0;
    const store = new PasswordKeyStore({
      deviceSalt: salt,
      crypto: nativeBackend,
      pool,
      lookup: async (u) => (lookups++, u === "alice" ? "userpassword" : undefined),
      maxCached: 2,
    });
    const keys = await Promise.all(Array.from({ length: 10 }, () => store.lookup("alice")));
    assert.equal(store.derivations, 1);
    assert.equal(lookups, 1);
    const expected = "4fa5e3dbcc1c2d279d731ab0276fce54060546c6be232e5f124d3a1eca423636"; // legacy-dart-reference.json
    for (const k of keys) assert.equal(toHex(k!), expected);
    assert.equal(toHex((await store.lookup("alice"))!), expected);
    assert.equal(store.derivations, 1, "served from the cache");
    assert.equal(await store.lookup("mallory"), undefined);
    assert.equal(store.derivations, 1, "no PBKDF2 for an unknown user");
  } finally {
    await pool.destroy();
  }
});

test("password lookup: refuses synchronously with ERR_BUSY when the pool queue is full", async () => {
  const pool = new CryptoPool({ threads: 1, maxQueue: 1 });
  try {
    await pool.pbkdf2(utf8("warm"), salt, 1, 32); // the thread is up
    const store = new PasswordKeyStore({ deviceSalt: salt, crypto: nativeBackend, pool, lookup: (u) => "pw-" + u });
    const a = store.lookup("a"); // runs
    await new Promise((r) => setTimeout(r, 30));
    const b = store.lookup("b"); // queued: the queue is now full
    await new Promise((r) => setTimeout(r, 10));
    assert.ok(pool.saturated);
    assert.throws(() => store.lookup("c"), (e: unknown) => e instanceof NstpError && e.code === "ERR_BUSY");
    await Promise.all([a, b]);
  } finally {
    await pool.destroy();
  }
});

/** Waits (bounded) until the store has nothing pending: abandoned lookups run to their end. */
async function settled(store: PasswordKeyStore): Promise<void> {
  for (let i = 0; i < 500 && store.pending > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(store.pending, 0, "pending lookups ended within 10 s");
}

/** Whether a lookup answers within the current turn (microtasks only, no timer, no derivation). */
async function answersAtOnce(answer: ReturnType<PasswordKeyStore["lookup"]>): Promise<boolean> {
  let done = false;
  void Promise.resolve(answer).then(() => (done = true));
  await new Promise((r) => setTimeout(r, 0));
  return done;
}

test("password lookup: a probe abandoned early still ends, known and unknown alike: the key is cached, the name seen", async () => {
  const pool = new CryptoPool({ threads: 1 });
  try {
    await pool.pbkdf2(utf8("warm"), salt, 1, 32);
    const store = new PasswordKeyStore({ deviceSalt: salt, crypto: nativeBackend, pool, lookup: (u) => (u === "alice" ? "pw-alice" : undefined), unknownDelayMs: 100 });
    for (const name of ["alice", "zed"]) {
      // Connect, name the user, hang up after 20 ms: the lookup is still pending, not dropped.
      const caller = new AbortController();
      const first = Promise.resolve(store.lookup(name, caller.signal));
      await new Promise((r) => setTimeout(r, 20));
      caller.abort();
      assert.equal(store.pending, 1, `${name}: pending after its caller went`);
      await settled(store);
      assert.equal(await first, name === "alice" ? store.lookup("alice") : undefined);
      // The second probe finds what the first left: no derivation, no delay.
      assert.equal(await answersAtOnce(store.lookup(name)), true, `${name}: the second probe answers at once`);
    }
    assert.equal(store.derivations, 1, "one derivation, for the known name");
    assert.equal(store.cachedNames, 2, "the known name's key and the unknown name's mark");
    // Connect, name, hang up, again and again: no more derivations while the key is cached.
    for (let i = 0; i < 10; i++) {
      const caller = new AbortController();
      void store.lookup("alice", caller.signal);
      caller.abort();
    }
    assert.equal(store.derivations, 1);
    assert.equal(store.pending, 0);
  } finally {
    await pool.destroy();
  }
});

test("password lookup: pending lookups, derivations and unknown names' delays alike, are bounded (ERR_BUSY)", async () => {
  const store = new PasswordKeyStore({ deviceSalt: salt, crypto: nativeBackend, lookup: () => undefined, unknownDelayMs: 50, maxPending: 1 });
  const first = store.lookup("ghost1");
  void store.lookup("ghost1");
  assert.equal(store.pending, 1, "a second probe of a pending name joins it");
  assert.throws(() => store.lookup("ghost2"), (e: unknown) => e instanceof NstpError && e.code === "ERR_BUSY");
  assert.equal(await first, undefined);
  await settled(store);
  assert.equal(await store.lookup("ghost2"), undefined, "room again once the first has ended");
});

test("leaky buckets: levels drain at their rate, never below 0 nor above the maximum; the table is bounded", () => {
  let now = 0;
  const l = new LeakyBuckets({ leakPerSecond: 1, maxKeys: 2, maxLevel: 5, now: () => now });
  for (let i = 0; i < 3; i++) l.add("10.0.0.1", 1);
  assert.equal(l.level("10.0.0.1"), 3);
  assert.equal(l.level("10.0.0.2"), 0, "other keys unaffected");
  now += 1000;
  assert.equal(l.level("10.0.0.1"), 2, "one drained in a second");
  assert.equal(l.add("10.0.0.1", 10), 5, "capped at maxLevel");
  assert.equal(l.add("10.0.0.1", -9), 0, "never below 0");
  assert.equal(l.size, 0, "a key at 0 is dropped");
  l.add("a", 1);
  l.add("b", 1);
  l.add("c", 1);
  assert.equal(l.size, 2, "the table is bounded");
  assert.equal(l.level("a"), 0, "the least recently touched key went");
});

test("password lookup: a first-seen unknown user waits like a cold derivation; a repeat answers at once", async () => {
  const store = new PasswordKeyStore({ deviceSalt: salt, crypto: nativeBackend, lookup: () => undefined, unknownDelayMs: 200 });
  let done = false;
  const first = Promise.resolve(store.lookup("ghost")).then((k) => ((done = true), k));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(done, false, "still waiting, as a derivation would");
  assert.equal(await first, undefined);
  // Seen once: now answered like a cached key, with no wait.
  assert.equal(await answersAtOnce(store.lookup("ghost")), true);
  assert.equal(store.derivations, 0, "no PBKDF2 for an unknown user");
});

test("password lookup: a repeat probe of an unknown name does not ask the application again (its lookup time would tell names apart)", async () => {
  let lookups = 0;
  // An application lookup that takes time, as a database query does.
  const lookup = async (name: string) => (lookups++, await new Promise((r) => setTimeout(r, 30)), name === "alice" ? "pw" : undefined);
  const store = new PasswordKeyStore({ deviceSalt: salt, crypto: nativeBackend, lookup, unknownDelayMs: 0 });
  assert.equal(await store.lookup("ghost"), undefined);
  assert.equal(lookups, 1);
  assert.equal(await answersAtOnce(store.lookup("ghost")), true, "answered like a cached key");
  assert.equal(lookups, 1, "the application was not asked again");
  // A user added later: forget() makes the next handshake ask again.
  store.forget("ghost");
  assert.equal(await store.lookup("ghost"), undefined);
  assert.equal(lookups, 2);
});

test("password lookup: lookupCredential answers a seen unknown name at once with undefined, as lookup does", async () => {
  const store = new PasswordKeyStore({ deviceSalt: salt, crypto: nativeBackend, lookup: () => undefined, unknownDelayMs: 0 });
  assert.equal(await store.lookupCredential("ghost"), undefined);
  assert.equal(store.lookupCredential("ghost"), undefined, "synchronously, not a throw");
});

/** Known user "alice" (password "pw") and nobody else; counts the application's lookups. */
function countingStore(opts: { maxCached?: number; maxAgeMs?: number } = {}) {
  const calls = { n: 0 };
  const store = new PasswordKeyStore({
    deviceSalt: salt,
    crypto: nativeBackend,
    lookup: (name) => (calls.n++, name === "alice" ? "pw" : undefined),
    unknownDelayMs: 0,
    ...opts,
  });
  return { store, calls };
}

test("password lookup: known keys and unknown marks share probation, so a flood of random names makes both first probes again", async () => {
  const { store, calls } = countingStore({ maxCached: 8 }); // 2 on probation
  await store.lookup("alice");
  await store.lookup("ghost");
  assert.equal(await answersAtOnce(store.lookup("alice")), true);
  assert.equal(await answersAtOnce(store.lookup("ghost")), true);
  for (let i = 0; i < 2; i++) await store.lookup(`random-${i}`);
  const before = calls.n;
  // Neither answers from the cache any more: both ask the application again (a separate table of
  // unknown marks was flushed alone, so "ghost" asked and "alice" did not: existence told apart).
  await Promise.all([store.lookup("alice"), store.lookup("ghost")]);
  assert.equal(calls.n - before, 2);
  assert.equal(store.derivations, 2, "alice derived again, as on her first probe");
});

test("password lookup: a key proven by a login stays through a flood of random names; an unknown mark is never proven", async () => {
  const { store, calls } = countingStore({ maxCached: 8 }); // 2 on probation, 6 proven
  await store.lookup("alice");
  store.confirmed("alice"); // the server: a peer proved alice's key
  await store.lookup("ghost");
  store.confirmed("ghost"); // cannot happen through the server; and does nothing here
  for (let i = 0; i < 100; i++) await store.lookup(`random-${i}`);
  const before = calls.n;
  assert.equal(await answersAtOnce(store.lookup("alice")), true, "alice's key is still cached");
  await store.lookup("ghost");
  assert.equal(calls.n - before, 1, "ghost was asked again: it went with the flood");
  assert.equal(store.derivations, 1, "alice derived once");
});

test("password lookup: admit is asked before a lookup starts (not for a cached or pending name), refuses it busy at once, and gets its place back when the lookup is over, not before", async () => {
  const store = new PasswordKeyStore({ deviceSalt: salt, crypto: nativeBackend, lookup: () => undefined, unknownDelayMs: 100 });
  let places = 1;
  let asked = 0;
  const admit = () => (asked++, places > 0 ? (places--, () => void places++) : undefined);
  const first = store.lookup("ghost", undefined, admit);
  assert.equal(places, 0, "the lookup took the source's place");
  void store.lookup("ghost", undefined, admit);
  assert.equal(asked, 1, "joining a pending lookup asks nothing");
  assert.throws(() => store.lookup("other", undefined, admit), (e: unknown) => e instanceof NstpError && e.code === "ERR_BUSY", "no place: busy at once");
  assert.equal(store.pending, 1, "and nothing started for it");
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(places, 0, "the unknown name's delay still holds the place (its connection may be gone: it runs on)");
  assert.equal(await first, undefined);
  await settled(store);
  assert.equal(places, 1, "given back once the lookup is over");
  assert.equal(await answersAtOnce(store.lookup("ghost", undefined, admit)), true);
  assert.equal(asked, 2, "a cached name asks nothing");
});

test("password lookup: a known key and an unknown mark expire together after maxAgeMs", async () => {
  const { store, calls } = countingStore({ maxAgeMs: 300 });
  await store.lookup("alice");
  await store.lookup("ghost");
  await store.lookup("alice");
  await store.lookup("ghost");
  assert.equal(calls.n, 2, "cached while young");
  await new Promise((r) => setTimeout(r, 400));
  await store.lookup("alice");
  await store.lookup("ghost");
  assert.equal(calls.n, 4, "both asked again once expired");
});

test("password lookup: forget() during a lookup keeps its (possibly stale) answer out of the cache", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let calls = 0;
  const store = new PasswordKeyStore({
    deviceSalt: salt,
    crypto: nativeBackend,
    lookup: async () => (calls++, await gate, undefined),
    unknownDelayMs: 0,
  });
  const first = store.lookup("newcomer");
  store.forget("newcomer"); // the application adds the user while the first probe's lookup runs
  release();
  assert.equal(await first, undefined);
  assert.equal(await store.lookup("newcomer"), undefined);
  assert.equal(calls, 2, "asked again: the answer from before forget() was not cached");
  assert.equal(store.pending, 0);
});

test("password lookup: a lookup that throws at once fails that probe and leaves nothing pending", async () => {
  const store = new PasswordKeyStore({
    deviceSalt: salt,
    crypto: nativeBackend,
    lookup: () => {
      throw new Error("database down");
    },
  });
  await assert.rejects(Promise.resolve(store.lookup("alice")), /database down/);
  assert.equal(store.pending, 0);
  await assert.rejects(Promise.resolve(store.lookup("alice")), /database down/, "asked again, not a stuck failure");
});

test("password lookup: a pool that fills during the application's lookup refuses known and unknown names alike (ERR_BUSY), caching neither", async () => {
  // Only the known name's derivation used to meet the full pool (busy signal) while the unknown name
  // went on to its silent close: a first probe told them apart (the review of session 5).
  const pool = { saturated: false, threads: 1, maxQueue: 1, pbkdf2: async () => new Uint8Array(32) } as unknown as CryptoPool;
  const store = new PasswordKeyStore({
    deviceSalt: salt,
    crypto: nativeBackend,
    pool,
    unknownDelayMs: 0,
    lookup: async (name) => {
      (pool as unknown as { saturated: boolean }).saturated = true; // the attacker's curve steps fill it meanwhile
      await new Promise((r) => setTimeout(r, 5));
      return name === "alice" ? "pw" : undefined;
    },
  });
  for (const name of ["alice", "ghost"]) {
    (pool as unknown as { saturated: boolean }).saturated = false;
    await assert.rejects(Promise.resolve(store.lookup(name)), (e: unknown) => e instanceof NstpError && e.code === "ERR_BUSY", name);
  }
  assert.equal(store.cachedNames, 0);
  assert.equal(store.derivations, 0);
});

test("password lookup: an application lookup that never answers is given up after lookupTimeoutMs (ERR_TIMEOUT), leaving nothing pending", async () => {
  const store = new PasswordKeyStore({ deviceSalt: salt, crypto: nativeBackend, lookup: () => new Promise(() => {}), lookupTimeoutMs: 50 });
  await assert.rejects(Promise.resolve(store.lookup("alice")), (e: unknown) => e instanceof NstpError && e.code === "ERR_TIMEOUT");
  assert.equal(store.pending, 0);
  assert.equal(store.cachedNames, 0);
});

test("password lookup: forget() of one name does not keep another name's lookup from caching", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let calls = 0;
  const store = new PasswordKeyStore({ deviceSalt: salt, crypto: nativeBackend, unknownDelayMs: 0, lookup: async () => (calls++, await gate, undefined) });
  const y = store.lookup("y");
  store.forget("x");
  release();
  await y;
  assert.equal(await answersAtOnce(store.lookup("y")), true, "y was cached");
  assert.equal(calls, 1);
});

test("dummy keys: one stable array per unknown name while cached, as a known user's key is; bounded", () => {
  const dummy = new DummyKeys(nativeBackend, { maxCached: 2 });
  const a = dummy.key("mallory");
  assert.equal(dummy.key("mallory"), a, "the same object: the KeyObject cache is hit as for a known user");
  assert.notDeepEqual(dummy.key("eve"), a);
  dummy.key("trent"); // evicts mallory, the least recently used
  const again = dummy.key("mallory");
  assert.notEqual(again, a);
  assert.deepEqual(again, a, "re-derived the same, deterministically");
  assert.notDeepEqual(new DummyKeys(nativeBackend).key("mallory"), a, "keyed by a per-process secret");
});

const filled = (n: number) => new Uint8Array(32).fill(n);

test("StaticKeyStore.replace tells listeners of removed and re-keyed users, not of kept ones", () => {
  const store = new StaticKeyStore(new Map([["alice", filled(1)], ["bob", filled(2)], ["carol", filled(1)]]));
  const told: string[] = [];
  const unsubscribe = store.onUserRemoved((u) => told.push(u));
  store.replace(new Map([["alice", filled(1)], ["carol", filled(2)], ["dave", filled(2)]]));
  assert.deepEqual(told.sort(), ["bob", "carol"]);
  unsubscribe();
  store.replace(new Map());
  assert.deepEqual(told.sort(), ["bob", "carol"]);
});
