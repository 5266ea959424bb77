// The PostgreSQL credential store against a real PostgreSQL (Debian's package, started here in a
// temporary directory on a loopback port): two stores as two hosts see each other's changes through
// LISTEN/NOTIFY, removals are announced on both, and a database that goes down and comes back costs
// no established session, no cached user and no event-loop stall. Then a Bun and a Node server
// process sharing it, with the users CLI writing, and the database stopped and restarted under load.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import postgres from "postgres";
import { legacy } from "@nstp/core";
import { PostgresCredentialStore, PostgresUsersDb } from "./postgres-store.ts";
import { PRUNE_EVERY, PRUNE_MAX_ROWS, pruneRows, unrefilledRows } from "./guess-budget.ts";
import { type RunningPostgres, codeOf, postgresBinDir, startPostgres, within } from "@nstp/testkit";

const PG = postgresBinDir();
const skip = !PG && "PostgreSQL is not installed (.ci/run installs Debian's postgresql package)";
const deviceSalt = legacy.DEMO_DEVICE_SALT;
const key = (n: number) => new Uint8Array(32).fill(n);

/** Holds nstp_users locked (every lookup's query waits behind it) until unlock(); done() also ends the connection. */
function lockUsersTable(url: string) {
  const raw = postgres(url, { max: 1, onnotice: () => {} });
  let unlock!: () => void;
  const held = new Promise<void>((r) => (unlock = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const locking = raw.begin(async (tx) => {
    await tx`LOCK TABLE nstp_users IN ACCESS EXCLUSIVE MODE`;
    locked();
    await held;
  });
  const done = async () => {
    unlock();
    await locking.catch(() => {});
    await raw.end({ timeout: 1 });
  };
  return { isLocked, unlock, done };
}

describe("PostgreSQL store", { skip }, () => {
  let pg: RunningPostgres;
  before(async () => {
    pg = await startPostgres(PG!);
  });
  after(() => pg?.destroy());

  test("two hosts: changes reach both through LISTEN/NOTIFY; removals, disabling and new keys are announced on both", async () => {
    const w = await PostgresUsersDb.open(pg.url, deviceSalt);
    await w.put({ username: "alice", psk: key(1) });
    const hosts = await Promise.all([0, 1].map(() => PostgresCredentialStore.open({ url: pg.url, deviceSalt, pollMs: 60_000 })));
    const removed: string[][] = [[], []];
    hosts.forEach((h, i) => h.onUserRemoved((u) => removed[i]!.push(u)));
    try {
      for (const h of hosts) assert.deepEqual(await h.lookup("alice"), key(1));
      for (const h of hosts) assert.equal(await h.lookup("bob"), undefined, "a miss, remembered");
      assert.equal(hosts[0]!.lookup("bob"), undefined, "answered from memory, like a cached user");
      // pollMs is a minute: only the notification can make these visible within a second.
      await w.put({ username: "alice", psk: key(2) });
      await w.put({ username: "bob", psk: key(3) });
      for (const h of hosts) {
        assert.ok(await within(1000, async () => (await h.lookup("alice"))?.[0] === 2), "alice's new key");
        assert.ok(await within(1000, async () => (await h.lookup("bob"))?.[0] === 3), "bob, a remembered miss, now found");
      }
      await w.setDisabled("bob", true);
      await w.remove("alice");
      // alice re-keyed (her sessions are revoked), bob disabled, alice removed; bob's arrival ends nothing.
      assert.ok(await within(1000, () => removed.every((r) => r.length === 3)), JSON.stringify(removed));
      for (const r of removed) assert.deepEqual(r, ["alice", "bob", "alice"]);
      for (const h of hosts) {
        assert.equal(await h.lookup("alice"), undefined);
        assert.equal(await h.lookup("bob"), undefined);
        assert.equal((await h.lookupRecord("bob"))?.disabled, true);
      }
      await assert.rejects(PostgresCredentialStore.open({ url: pg.url, deviceSalt: Uint8Array.of(7) }), /another device salt/);
    } finally {
      await Promise.all(hosts.map((h) => h.close()));
      await w.close();
    }
  });

  test("a change whose version was taken before a host opened, and committed after, still reaches it", async () => {
    const w = await PostgresUsersDb.open(pg.url, deviceSalt);
    await w.put({ username: "erin", psk: key(6) });
    await w.close();
    // A writer as `bun run users` runs one (lock, next version, change, NOTIFY), held open meanwhile.
    const raw = postgres(pg.url, { max: 1, onnotice: () => {} });
    let commit!: () => void;
    const gate = new Promise<void>((r) => (commit = r));
    let taken!: () => void;
    const versionTaken = new Promise<void>((r) => (taken = r));
    const writing = raw.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${0x6e737470})`;
      const [row] = await tx`SELECT nextval('nstp_version') AS v`;
      await tx`UPDATE nstp_users SET psk = ${Buffer.from(key(7))}, version = ${Number(row!.v)} WHERE username = ${Buffer.from("erin")}`;
      await tx`SELECT pg_notify('nstp_users', ${String(row!.v)})`;
      taken();
      await gate;
    });
    await versionTaken;
    const store = await PostgresCredentialStore.open({ url: pg.url, deviceSalt, pollMs: 200 });
    const removed: string[] = [];
    store.onUserRemoved((u) => removed.push(u));
    try {
      assert.deepEqual(await store.lookup("erin"), key(6), "the old key, cached before the change commits");
      commit();
      await writing;
      assert.ok(await within(2000, async () => (await store.lookup("erin"))?.[0] === 7), "erin's new key replaces the cached one");
      assert.deepEqual(removed, ["erin"], "and her sessions under the old key are ended");
    } finally {
      await store.close();
      await raw.end({ timeout: 1 });
    }
  });

  test("database down: cached records serve, a miss fails within its timeout without stalling the loop, health says so; back up: catches up", async () => {
    const w = await PostgresUsersDb.open(pg.url, deviceSalt);
    await w.put({ username: "carol", psk: key(4) });
    const store = await PostgresCredentialStore.open({ url: pg.url, deviceSalt, lookupTimeoutMs: 500, pollMs: 200 });
    await w.close();
    try {
      assert.deepEqual(await store.lookup("carol"), key(4));
      pg.stop();
      assert.deepEqual(store.lookup("carol"), key(4), "cached: answered at once");
      // The loop's longest gap, not a count of ticks: a loaded host delays each tick, but a lookup that
      // blocked the loop would hold it for its whole 500 ms timeout.
      let last = Date.now(), longest = 0;
      const tick = setInterval(() => {
        const now = Date.now();
        longest = Math.max(longest, now - last);
        last = now;
      }, 10);
      const t = Date.now();
      const code = await codeOf(Promise.resolve(store.lookup("nobody")));
      const elapsed = Date.now() - t;
      clearInterval(tick);
      assert.ok(code === "ERR_TIMEOUT" || code === "ERR_BUSY", code);
      assert.ok(elapsed < 5000, `failed after ${elapsed} ms`);
      assert.ok(longest < 400, `the event loop went ${longest} ms without a turn`);
      assert.ok(await within(3000, () => !store.health().ok), "health reports the outage");
      assert.deepEqual(store.lookup("carol"), key(4), "still served from the cache");
      pg.start();
      assert.ok(await within(10_000, () => store.health().ok), "health recovers");
      const w2 = await PostgresUsersDb.open(pg.url, deviceSalt);
      await w2.put({ username: "dan", psk: key(5) });
      await w2.remove("carol");
      await w2.close();
      assert.ok(await within(3000, async () => (await store.lookup("carol")) === undefined), "the removal after the restart arrives");
      assert.deepEqual(await store.lookup("dan"), key(5));
    } finally {
      await store.close();
    }
  });

  test("the per-user guessing budget is shared: hosts together allow one burst, and a host started later knows it", async () => {
    const w = await PostgresUsersDb.open(pg.url, deviceSalt);
    await w.close();
    const hosts = await Promise.all([0, 1].map(() => PostgresCredentialStore.open({ url: pg.url, deviceSalt })));
    const opts = { burst: 4, refillPerSecond: 0.001 };
    const budgets = await Promise.all(hosts.map((h) => h.openGuessBudget(opts)));
    try {
      budgets[0]!.failed("mallory");
      budgets[0]!.failed("mallory");
      assert.ok(budgets.every((b) => b.allows("mallory")), "two of four guesses used");
      await new Promise((r) => setTimeout(r, 100));
      budgets[1]!.failed("mallory");
      budgets[1]!.failed("mallory");
      // Each host alone has seen two failures of a burst of four: only the shared rows can refuse.
      assert.ok(await within(1000, () => budgets.every((b) => !b.allows("mallory"))), "both hosts refuse mallory");
      assert.ok(budgets.every((b) => b.allows("trent")), "another user is unaffected");
      const late = await hosts[0]!.openGuessBudget(opts);
      assert.equal(late.allows("mallory"), false, "a host started later knows the bucket is empty");
      await late.close();
    } finally {
      await Promise.all(budgets.map((b) => b.close()));
      await Promise.all(hosts.map((h) => h.close()));
    }
  });

  test("the guessing-budget table stays bounded: an at_ms index (added to an existing database), refilled rows pruned in bounded batches", async () => {
    const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
    const indexed = async () => (await sql`SELECT 1 FROM pg_indexes WHERE tablename = 'nstp_guesses' AND indexname = 'nstp_guesses_at_ms'`).length === 1;
    const host = await PostgresCredentialStore.open({ url: pg.url, deviceSalt });
    try {
      await (await PostgresUsersDb.open(pg.url, deviceSalt)).close();
      assert.equal(await indexed(), true, "a store bun run users opens has the index");
      await sql`DROP INDEX nstp_guesses_at_ms`;
      await (await PostgresUsersDb.open(pg.url, deviceSalt)).close();
      assert.equal(await indexed(), true, "an existing database gets it at its next bun run users");

      // burst 4 at 0.5/s: a bucket last touched more than 8 s ago has refilled (tokens 0 refill to 1 in 2 s).
      const opts = { burst: 4, refillPerSecond: 0.5 };
      const stale = 2 * PRUNE_MAX_ROWS + 10;
      await sql`DELETE FROM nstp_guesses WHERE username LIKE 'prune-%'`;
      await sql`INSERT INTO nstp_guesses (username, tokens, at_ms)
        SELECT convert_to('prune-old-' || i, 'UTF8'), 0, (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 3600000 - i FROM generate_series(1, ${stale}) AS i`;
      await sql`INSERT INTO nstp_guesses (username, tokens, at_ms) VALUES
        (convert_to('prune-recent', 'UTF8'), 0, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)`;
      const count = async (like: string) => Number((await sql`SELECT count(*) AS n FROM nstp_guesses WHERE convert_from(username, 'UTF8') LIKE ${like}`)[0]!.n);
      const budget = await host.openGuessBudget(opts);
      try {
        assert.equal(budget.allows("prune-recent"), false, "start-up still reads the bucket not yet refilled");
        assert.equal(budget.allows("prune-old-1"), true);
        assert.equal(await budget.prune(), PRUNE_MAX_ROWS, "one prune deletes a bounded batch");
        assert.equal(await count("prune-old-%"), stale - PRUNE_MAX_ROWS);
        assert.equal(await count("prune-recent"), 1, "a bucket not yet refilled is kept");
        // Recording failures prunes as it goes: one batch per PRUNE_EVERY failures.
        for (let i = 0; i < PRUNE_EVERY; i++) budget.failed(`prune-guess-${i % 4}`);
        assert.ok(await within(5000, async () => (await count("prune-old-%")) === stale - 2 * PRUNE_MAX_ROWS), "the failures' prune ran");
        assert.equal(await count("prune-recent"), 1);
      } finally {
        await budget.close();
      }
    } finally {
      await host.close();
      await sql.end({ timeout: 1 });
    }
  });


  test("the start-up read and the prune are bounded by the at_ms index (an Index Cond, not a filter over the whole index)", async () => {
    const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
    const opts = { burst: 4, refillPerSecond: 0.5 };
    // Plans as PostgreSQL prefers them for a table of many refilled rows and a few recent ones; with
    // sequential scans off so that a small table does not make the index not worth it. A cut-off the
    // planner cannot treat as a constant (clock_timestamp(), volatile) shows as a Filter instead.
    const plan = (q: (tx: postgres.Sql) => postgres.PendingQuery<postgres.Row[]>) =>
      sql.begin(async (tx) => {
        await tx`SET LOCAL enable_seqscan = off`;
        const rows = await tx`EXPLAIN ${q(tx as unknown as postgres.Sql)}`;
        return rows.map((r) => r["QUERY PLAN"] as string).join("\n");
      });
    try {
      await (await PostgresUsersDb.open(pg.url, deviceSalt)).close();
      await sql`DELETE FROM nstp_guesses WHERE username LIKE 'plan-%'`;
      await sql`INSERT INTO nstp_guesses (username, tokens, at_ms)
        SELECT convert_to('plan-old-' || i, 'UTF8'), 0, (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 3600000 - i FROM generate_series(1, 20000) AS i`;
      await sql`INSERT INTO nstp_guesses (username, tokens, at_ms)
        SELECT convert_to('plan-new-' || i, 'UTF8'), 0, (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM generate_series(1, 10) AS i`;
      await sql`ANALYZE nstp_guesses`;
      const bounded = /nstp_guesses_at_ms.*\n\s*Index Cond: \(at_ms (>=|<) /;
      const startup = await plan((tx) => unrefilledRows(tx, opts));
      assert.match(startup, bounded, startup);
      const prune = await plan((tx) => pruneRows(tx, opts));
      assert.match(prune, bounded, prune);
      assert.match(prune, /LockRows/, "the batch is locked as it is chosen (FOR UPDATE SKIP LOCKED)");
    } finally {
      await sql`DELETE FROM nstp_guesses WHERE username LIKE 'plan-%'`.catch(() => {});
      await sql.end({ timeout: 1 });
    }
  });

  test("hosts pruning at once take disjoint batches: a row locked by another is skipped, not waited for", async () => {
    const sql = postgres(pg.url, { max: 2, onnotice: () => {} });
    const opts = { burst: 4, refillPerSecond: 0.5 };
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    try {
      await (await PostgresUsersDb.open(pg.url, deviceSalt)).close();
      await sql`DELETE FROM nstp_guesses`;
      await sql`INSERT INTO nstp_guesses (username, tokens, at_ms)
        SELECT convert_to('skip-' || i, 'UTF8'), 0, (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 3600000 - i FROM generate_series(1, 10) AS i`;
      // Another host's prune (or failure) holds the oldest row's lock.
      const holding = sql.begin(async (tx) => {
        await tx`SELECT 1 FROM nstp_guesses WHERE username = convert_to('skip-10', 'UTF8') FOR UPDATE`;
        locked();
        await held;
      });
      await isLocked;
      const pruner = postgres(pg.url, { max: 1, onnotice: () => {} });
      try {
        const done = await Promise.race([pruneRows(pruner, opts), new Promise<"waited">((r) => setTimeout(() => r("waited"), 5000))]);
        assert.notEqual(done, "waited", "the prune did not wait for the locked row");
        assert.equal((done as postgres.RowList<postgres.Row[]>).count, 9, "every row but the locked one");
      } finally {
        release();
        await holding;
        await pruner.end({ timeout: 1 });
      }
      assert.equal(Number((await sql`SELECT count(*) AS n FROM nstp_guesses`)[0]!.n), 1, "the locked row is left for a later prune");
    } finally {
      release();
      await sql`DELETE FROM nstp_guesses`.catch(() => {});
      await sql.end({ timeout: 1 });
    }
  });


  test("lookups under way are bounded (busy beyond, and beyond a source's share); a gone connection's waiter is released at once, and the query's places come back when it ends", async () => {
    const w = await PostgresUsersDb.open(pg.url, deviceSalt);
    await w.put({ username: "frank", psk: key(8) });
    await w.close();
    const store = await PostgresCredentialStore.open({ url: pg.url, deviceSalt, pollMs: 60_000, lookupTimeoutMs: 30_000, maxPending: 2 });
    // Every lookup's query waits behind this lock until the test lets it go.
    const { isLocked, unlock, done: unlockAndEnd } = lockUsersTable(pg.url);
    const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;
    const busy = code("ERR_BUSY");
    try {
      await isLocked;
      // One source's share, as the server's lookup gate (lookup-gate.ts) gives it: here one place.
      let places = 1;
      const admit = () => (places > 0 ? (places--, () => void places++) : undefined);
      const gone = new AbortController();
      const first = store.lookup("frank", gone.signal, admit);
      assert.ok(first instanceof Promise, "a miss goes to the database");
      assert.equal(places, 0, "and takes the source's place");
      assert.throws(() => store.lookup("ghost-1", undefined, admit), busy, "the source's share is taken: busy at once");
      const joined = store.lookup("frank", undefined, admit) as Promise<Uint8Array | undefined>;
      const other = store.lookup("ghost-2") as Promise<Uint8Array | undefined>;
      assert.equal(store.pending, 2, "one query per name however many wait, and ghost-1 started none");
      assert.throws(() => store.lookup("ghost-3"), busy, "beyond maxPending: busy at once, nothing queued");

      const started = performance.now();
      gone.abort();
      await assert.rejects(first, code("ERR_CLOSED"), "the gone connection's waiter is released");
      assert.ok(performance.now() - started < 5000, "at once, not at its 30 s timeout");
      assert.throws(() => store.lookup("ghost-4", gone.signal), code("ERR_CLOSED"), "gone before asking: nothing started");
      assert.equal(store.pending, 2, "the queries already sent run on");
      assert.equal(places, 0, "and keep the source's place while they do");

      unlock();
      assert.deepEqual(await joined, key(8), "the query ended for the waiter still there");
      assert.equal(await other, undefined);
      assert.ok(await within(5000, () => store.pending === 0 && places === 1), "places come back when the queries end");
      assert.deepEqual(store.lookup("frank"), key(8), "and what they read is cached");
    } finally {
      await unlockAndEnd();
      await store.close();
    }
  });

  test("a query that hangs gives the source's place back at the lookup timeout; it keeps only its place in the store's own bound", async () => {
    await (await PostgresUsersDb.open(pg.url, deviceSalt)).close(); // the schema
    const store = await PostgresCredentialStore.open({ url: pg.url, deviceSalt, pollMs: 60_000, lookupTimeoutMs: 300, maxPending: 4 });
    const { isLocked, unlock, done: unlockAndEnd } = lockUsersTable(pg.url);
    try {
      await isLocked;
      let places = 1;
      const admit = () => (places > 0 ? (places--, () => void places++) : undefined);
      const hung = store.lookup("hung-user", undefined, admit) as Promise<unknown>;
      hung.catch(() => {});
      assert.equal(places, 0);
      assert.ok(await within(5000, () => places === 1), "the place came back at the timeout, the query still hung");
      assert.equal(store.pending, 1, "the query keeps its place in the store's bound until it ends");
      unlock();
      assert.ok(await within(5000, () => store.pending === 0), "then it ends");
      assert.equal(places, 1, "given back once");
    } finally {
      await unlockAndEnd();
      await store.close();
    }
  });
});
