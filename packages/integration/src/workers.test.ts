// The server CLI as a fleet server, as real processes on the runtime running the test: --workers 2
// serves one port from two processes, survives one being killed (the supervisor restarts it), and
// merges their metrics; --max-connections refuses with the busy signal. Every wait is bounded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NstpError, legacy } from "@nstp/core";
import { detectRuntime } from "@nstp/core/node";
import { connect, connectWithBackoff, type Session } from "@nstp/client";
import { BIN, exited, referencePsk, scrapeMetrics, SERVER_CLI, spawnUntil, startServerProcess } from "@nstp/testkit";

const runtime = detectRuntime() === "bun" ? "bun" : "node";
const psk = new Uint8Array(referencePsk(legacy.DEMO_PASSWORD, Buffer.from(legacy.DEMO_DEVICE_SALT), legacy.DEMO_USERNAME));
const login = (port: number) => connect({ port, username: "alice", psk });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Per worker, handshakes completed (from the supervisor's merged metrics). */
async function handshakesByWorker(metricsPort: number): Promise<number[]> {
  const m = await scrapeMetrics(metricsPort);
  const sum = (w: number) => [...m].filter(([k]) => k.startsWith(`nstp_handshakes_total{worker="${w}",`)).reduce((n, [, v]) => n + v, 0);
  return [sum(0), sum(1)];
}

test(`${runtime}: --workers 2 serves one port from two processes, and survives one being killed`, { timeout: 60_000 }, async () => {
  const { child, match } = await spawnUntil(
    BIN[runtime],
    [SERVER_CLI[runtime], "--port", "0", "--workers", "2", "--metrics", "127.0.0.1:0", "--log-level", "error", "--shutdown-grace", "1"],
    /listening on [^:]+:(\d+)\nworker 0 pid (\d+)\nworker 1 pid (\d+)\nmetrics on [^:]+:(\d+)/,
    30_000,
  );
  const [port, pid0, pid1, metricsPort] = [1, 2, 3, 4].map((i) => Number(match[i])) as [number, number, number, number];
  const sessions: Session[] = [];
  try {
    assert.notEqual(pid0, pid1);
    // The kernel spreads connections by their addresses: 24 land on one worker only with odds of 2^-23,
    // so more are made (up to 100) until both have served.
    let served = [0, 0];
    for (let i = 0; i < 100 && !(served[0]! > 0 && served[1]! > 0); i++) {
      sessions.push(await login(port));
      if (i >= 23) served = await handshakesByWorker(metricsPort);
    }
    assert.ok(served[0]! > 0 && served[1]! > 0, `both workers served: ${served}`);
    process.kill(pid0, "SIGKILL");
    // Gone (and reaped by the supervisor) before new clients come: until then the kernel may still hand
    // a connection to its socket, and a worker killed after reading a v3 share and before answering it
    // closes like a refused guess (ERR_AUTH at the client, not retried), which is a crash mid-handshake,
    // not what this test is about.
    for (const end = Date.now() + 10_000; alive(pid0) && Date.now() < end; ) await sleep(20);
    assert.equal(alive(pid0), false, "worker 0 is gone");
    // Sessions on the survivor go on; new clients get in (the dead one's share retries, then lands).
    const replies = await Promise.allSettled(sessions.map((s) => s.request("after the kill")));
    assert.ok(replies.some((r) => r.status === "fulfilled"), "the survivor's sessions still answer");
    for (let i = 0; i < 8; i++) {
      const s = await connectWithBackoff({ port, username: "alice", psk }, { attempts: 20, initialDelayMs: 50, maxDelayMs: 500 });
      assert.equal(new TextDecoder().decode(await s.request("hi")), "Server received: hi");
      await s.close();
    }
    // The supervisor restarts worker 0: its series come back in the merged metrics.
    let back = false;
    for (const end = Date.now() + 20_000; !back && Date.now() < end; await sleep(200)) {
      back = (await scrapeMetrics(metricsPort)).has('nstp_connections{worker="0"}');
    }
    assert.ok(back, "worker 0 was restarted");
    assert.equal(alive(pid0), false);
  } finally {
    for (const s of sessions) s.closed || (await s.close().catch(() => {}));
    child.kill("SIGTERM");
    assert.equal(await exited(child, 15_000), 0, "the supervisor drains its workers and exits");
  }
  assert.equal(alive(pid1), false, "worker 1 exited with the supervisor");
});

test(`${runtime}: --max-connections refuses beyond the cap with the busy signal (ERR_BUSY)`, { timeout: 30_000 }, async () => {
  const p = await startServerProcess(runtime, ["--port", "0", "--max-connections", "2", "--log-level", "error", "--summary-interval", "0"]);
  try {
    const a = await login(p.port);
    const b = await login(p.port);
    await assert.rejects(login(p.port), (e: unknown) => e instanceof NstpError && e.code === "ERR_BUSY");
    await a.close();
    // Room again once a session has gone (the server sees the close within a moment).
    let c: Session | undefined;
    for (const end = Date.now() + 5000; !c && Date.now() < end; await sleep(50)) c = await login(p.port).catch(() => undefined);
    assert.ok(c, "admitted once there was room");
    await Promise.all([b.close(), c.close()]);
  } finally {
    p.child.kill("SIGKILL");
  }
});

test(`${runtime}: a SIGTERM as soon as the supervisor says it listens stops its workers too`, { timeout: 60_000 }, async () => {
  // The supervisor printed "listening on" and its workers' pids, then awaited its metrics listener
  // before it took SIGTERM: a signal in between ended it with the default action and left both
  // workers running. It now holds its signals before any worker starts.
  const { child, match } = await spawnUntil(
    BIN[runtime],
    [SERVER_CLI[runtime], "--port", "0", "--workers", "2", "--metrics", "127.0.0.1:0", "--log-level", "error", "--shutdown-grace", "1"],
    /worker 0 pid (\d+)\nworker 1 pid (\d+)/,
    30_000,
  );
  child.kill("SIGTERM");
  const pids = [Number(match[1]), Number(match[2])];
  try {
    assert.equal(await exited(child, 15_000), 0, "the supervisor drained its workers and exited");
    for (const end = Date.now() + 10_000; pids.some(alive) && Date.now() < end; ) await sleep(20);
    assert.deepEqual(pids.filter(alive), [], "no worker left running");
  } finally {
    for (const pid of pids.filter(alive)) process.kill(pid, "SIGKILL");
  }
});
