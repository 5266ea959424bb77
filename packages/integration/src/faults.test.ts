// Faults with real processes: clients killed mid-handshake, mid-message and mid-reply; a server
// killed and restarted under connected clients (a clear error, then reconnect with backoff); and a
// graceful SIGTERM. Spawns both runtimes itself, so it runs under Bun only.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { legacy } from "@nstp/core";
import { detectRuntime } from "@nstp/core/node";
import { connect, connectWithBackoff } from "@nstp/client";
import { BIN, exited, referencePsk, ROOT, scrapeMetrics, spawnUntil, startServerProcess, v2Handshake } from "@nstp/testkit";

const DOOMED = join(ROOT, "packages", "integration", "src", "doomed-client.ts");
const onBun = detectRuntime() === "bun";
const psk = referencePsk(legacy.DEMO_PASSWORD, Buffer.from(legacy.DEMO_DEVICE_SALT), legacy.DEMO_USERNAME);
const login = { username: "alice", psk: new Uint8Array(psk), deviceSalt: legacy.DEMO_DEVICE_SALT };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const startServer = (runtime: "bun" | "node", port = 0) =>
  startServerProcess(runtime, ["--port", String(port), "--log-level", "error", "--metrics", "127.0.0.1:0", "--summary-interval", "0", "--shutdown-grace", "2"]);

async function connections(metricsPort: number): Promise<number> {
  return (await scrapeMetrics(metricsPort)).get("nstp_connections")!;
}

for (const runtime of ["bun", "node"] as const) {
  describe(`faults with the ${runtime} server process`, { skip: !onBun && "spawned from the Bun run" }, () => {
    test("clients killed mid-handshake, mid-message and mid-reply leave nothing behind; others are served", async () => {
      const { child: server, port, metricsPort } = await startServer(runtime);
      try {
        const good = await connect({ port, ...login });
        for (const mode of ["mid-handshake", "mid-message", "mid-reply"]) {
          const { child } = await spawnUntil(BIN.bun, [DOOMED, String(port), mode], /ready/);
          await sleep(100);
          child.kill("SIGKILL");
          await exited(child, 5000);
          assert.equal(new TextDecoder().decode(await good.request(mode)), `Server received: ${mode}`);
        }
        let open = await connections(metricsPort!);
        for (let i = 0; i < 50 && open !== 1; i++) {
          await sleep(100);
          open = await connections(metricsPort!);
        }
        assert.equal(open, 1, "only the well-behaved client is left");
        await good.close();
      } finally {
        server.kill("SIGKILL");
      }
    });

    test("a server killed under connected clients: a clear error, then reconnect with backoff to its restart", async () => {
      const first = await startServer(runtime);
      const port = first.port;
      const session = await connect({ port, ...login, limits: { replyTimeoutMs: 10_000 } });
      assert.equal(new TextDecoder().decode(await session.request("before")), "Server received: before");
      first.child.kill("SIGKILL");
      await exited(first.child, 5000);
      await assert.rejects(session.request("during"), (e: Error & { code?: string }) => e.code === "ERR_CLOSED" && /server closed the connection/.test(e.message));
      let restarted: ChildProcess | undefined;
      const retries: string[] = [];
      try {
        const again = await connectWithBackoff({ port, ...login }, {
          initialDelayMs: 100,
          attempts: 30,
          onRetry: (e, n) => {
            retries.push(e.code);
            if (n === 1) void startServer(runtime, port).then((s) => (restarted = s.child));
          },
        });
        assert.ok(retries.length >= 1 && retries.every((c) => c === "ERR_CONNECT"));
        assert.equal(new TextDecoder().decode(await again.request("after")), "Server received: after");
        await again.close();
      } finally {
        for (let i = 0; i < 100 && !restarted; i++) await sleep(50);
        restarted?.kill("SIGKILL");
      }
    });

    test("SIGTERM: replies due are sent, v2 sessions get a close chunk, the process exits 0 within the deadline", async () => {
      const { child, port } = await startServer(runtime);
      const peer = await v2Handshake(port, { username: "alice", psk });
      peer.send([Buffer.from("last")]);
      assert.equal((await peer.receive()).toString(), "Server received: last");
      const t = Date.now();
      child.kill("SIGTERM");
      await assert.rejects(peer.receive(), /server closed the session/);
      assert.equal(await exited(child, 5000), 0);
      assert.ok(Date.now() - t < 4500);
    });
  });
}
