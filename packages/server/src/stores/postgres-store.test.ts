// The PostgreSQL credential store against a real PostgreSQL (Debian's package, started here in a
// temporary directory on a loopback port): two stores as two hosts see each other's changes through
// LISTEN/NOTIFY, removals are announced on both, and a database that goes down and comes back costs
// no established session, no cached user and no event-loop stall. Then a Bun and a Node server
// process sharing it, with the users CLI writing, and the database stopped and restarted under load.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NstpError, detectRuntime, legacy, nativeBackend, toHex } from "@nstp/core";
import { connect } from "../../../client/src/index.ts";
import { PostgresCredentialStore, PostgresUsersDb } from "./postgres-store.ts";
import { type RunningPostgres, postgresBinDir, startPostgres } from "../testing/postgres.ts";
import { type ServerProcess, runUsersCli, scrapeMetrics, startServerProcess } from "../testing/processes.ts";

const PG = postgresBinDir();
const skip = !PG && "PostgreSQL is not installed (.ci/run installs Debian's postgresql package)";
const deviceSalt = legacy.DEMO_DEVICE_SALT;
const key = (n: number) => new Uint8Array(32).fill(n);

async function within(ms: number, check: () => boolean | Promise<boolean>): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return e instanceof NstpError ? e.code : String(e);
  }
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

  test("database down: cached records serve, a miss fails within its timeout without stalling the loop, health says so; back up: catches up", async () => {
    const w = await PostgresUsersDb.open(pg.url, deviceSalt);
    await w.put({ username: "carol", psk: key(4) });
    const store = await PostgresCredentialStore.open({ url: pg.url, deviceSalt, lookupTimeoutMs: 500, pollMs: 200 });
    await w.close();
    try {
      assert.deepEqual(await store.lookup("carol"), key(4));
      pg.stop();
      assert.deepEqual(store.lookup("carol"), key(4), "cached: answered at once");
      let ticks = 0;
      const tick = setInterval(() => ticks++, 10);
      const t = Date.now();
      const code = await codeOf(Promise.resolve(store.lookup("nobody")));
      const elapsed = Date.now() - t;
      clearInterval(tick);
      assert.ok(code === "ERR_TIMEOUT" || code === "ERR_BUSY", code);
      assert.ok(elapsed < 1500, `failed after ${elapsed} ms`);
      assert.ok(ticks >= Math.floor(elapsed / 10 / 4), `the event loop ran (${ticks} ticks in ${elapsed} ms)`);
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

  const onBun = detectRuntime() === "bun";
  test("a Bun and a Node server share it: a user added through the CLI connects through both, a removal ends his sessions on both, a restart under load costs no session", { skip: !onBun && "spawned from the Bun run", timeout: 180_000 }, async () => {
    const url = pg.url;
    const derive = (u: string, p: string) => legacy.derivePsk(nativeBackend, { username: u, password: p, deviceSalt });
    await runUsersCli("node", ["add", "erin", "--file", url, "--device-salt", toHex(deviceSalt)], "erin-pw\n");
    const servers: ServerProcess[] = [];
    try {
      for (const rt of ["bun", "node"] as const) {
        servers.push(await startServerProcess(rt, ["--port", "0", "--users", url, "--metrics", "127.0.0.1:0", "--log-level", "warn", "--summary-interval", "0", "--shutdown-grace", "1"]));
      }
      const erin = await derive("erin", "erin-pw");
      const attempt = (port: number, u: string, psk: Uint8Array) => codeOf(connect({ port, username: u, psk, deviceSalt }).then((s) => s.close()));
      for (const s of servers) assert.equal(await attempt(s.port, "erin", erin), "ok");

      // Added on one side (the Bun CLI), it connects through both servers within a second.
      await runUsersCli("bun", ["add", "frank", "--file", url], "frank-pw\n");
      const frank = await derive("frank", "frank-pw");
      for (const s of servers) assert.ok(await within(1000, async () => (await attempt(s.port, "frank", frank)) === "ok"), `frank on ${s.port}`);
      // Removed on one side, his open sessions on both servers end within a second.
      const franks = await Promise.all(servers.map((s) => connect({ port: s.port, username: "frank", psk: frank, deviceSalt })));
      await runUsersCli("node", ["remove", "frank", "--file", url]);
      assert.ok(await within(1000, () => franks.every((f) => f.closed)), "frank's sessions ended on both");
      for (const s of servers) assert.equal((await scrapeMetrics(s.metricsPort!)).get('nstp_sessions_ended_total{reason="user_removed"}'), 1);
      for (const s of servers) assert.equal(await attempt(s.port, "frank", frank), "ERR_AUTH", `frank refused on ${s.port}`);

      // Under load: open sessions and handshakes of a cached user go on while the database is down.
      const sessions = await Promise.all(servers.map((s) => connect({ port: s.port, username: "erin", psk: erin, deviceSalt })));
      let stop = false;
      const results: string[] = [];
      const load = Promise.all(servers.map(async (s) => {
        while (!stop) results.push(await attempt(s.port, "erin", erin));
      }));
      await new Promise((r) => setTimeout(r, 200));
      pg.stop();
      for (const s of servers) assert.ok(await within(5000, async () => (await scrapeMetrics(s.metricsPort!)).get("nstp_store_up") === 0), "nstp_store_up 0");
      for (const [i, session] of sessions.entries()) assert.equal(new TextDecoder().decode(await session.request(`down ${i}`)), `Server received: down ${i}`);
      assert.equal(await attempt(servers[0]!.port, "stranger", key(9)), "ERR_AUTH", "a miss fails cleanly");
      pg.start();
      for (const s of servers) assert.ok(await within(10_000, async () => (await scrapeMetrics(s.metricsPort!)).get("nstp_store_up") === 1), "nstp_store_up 1");
      stop = true;
      await load;
      assert.ok(results.length >= 4 && results.every((r) => r === "ok"), `every handshake under load succeeded: ${results.filter((r) => r !== "ok")}`);
      for (const session of sessions) assert.equal(new TextDecoder().decode(await session.request("up")), "Server received: up");
      await Promise.all(sessions.map((s) => s.close()));
      // After the restart, changes flow again.
      await runUsersCli("node", ["add", "gina", "--file", url], "gina-pw\n");
      const gina = await derive("gina", "gina-pw");
      for (const s of servers) assert.ok(await within(2000, async () => (await attempt(s.port, "gina", gina)) === "ok"), `gina on ${s.port}`);
    } finally {
      for (const s of servers) s.child.kill("SIGTERM");
    }
  });
});
