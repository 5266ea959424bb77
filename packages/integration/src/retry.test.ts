// Reconnect with backoff against a real server: retries what waiting can cure, never a wrong password.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { legacy } from "@nstp/core";
import { StaticKeyStore, startServer } from "@nstp/server";
import { referencePsk } from "@nstp/testkit";
import { connectWithBackoff } from "@nstp/client";

const deviceSalt = legacy.DEMO_DEVICE_SALT;
const psk = new Uint8Array(referencePsk("userpassword", Buffer.from(deviceSalt), "alice"));

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

test("a server that comes up later is reached; each failed attempt is reported", async () => {
  const port = await freePort();
  const failures: string[] = [];
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  const session = connectWithBackoff(
    { port, username: "alice", psk, deviceSalt },
    {
      initialDelayMs: 50,
      attempts: 40,
      onRetry: (e, n) => {
        failures.push(e.code);
        // The server starts after the second failure.
        if (n === 2) void startServer({ keys: new StaticKeyStore(new Map([["alice", psk]])), port }).then((s) => (server = s));
      },
    },
  );
  const s = await session;
  try {
    assert.ok(failures.length >= 2);
    assert.ok(failures.every((c) => c === "ERR_CONNECT"));
    assert.equal(new TextDecoder().decode(await s.request("x")), "Server received: x");
    await s.close();
  } finally {
    await server?.close();
  }
});

test("a wrong password is not retried", async () => {
  const server = await startServer({ keys: new StaticKeyStore(new Map([["alice", psk]])), port: 0 });
  try {
    let retries = 0;
    await assert.rejects(
      connectWithBackoff({ port: server.port, username: "alice", psk: new Uint8Array(32), deviceSalt }, { onRetry: () => retries++ }),
      { code: "ERR_AUTH" },
    );
    assert.equal(retries, 0);
  } finally {
    await server.close();
  }
});

test("giving up after the attempts, and cancelling, end with an error", async () => {
  const port = await freePort();
  await assert.rejects(connectWithBackoff({ port, username: "alice", psk, deviceSalt }, { attempts: 2, initialDelayMs: 10 }), { code: "ERR_CONNECT" });
  const c = new AbortController();
  const p = connectWithBackoff({ port, username: "alice", psk, deviceSalt }, { attempts: Infinity, initialDelayMs: 10_000, signal: c.signal, onRetry: () => c.abort() });
  await assert.rejects(p, { code: "ERR_CLOSED" });
});
