// Keepalive and dead peers (docs/PROTOCOL.md §v2 "Ping"), on every transport of the runtime running
// the test: the client's pings keep an idle session past the server's idle timeout, the server
// answers them so that the client hears it, and a peer that vanishes silently (a proxy that stops
// forwarding and reading, no FIN, no RST) is noticed on both sides: the client by its keepalive
// deadline (ERR_TIMEOUT), the server by its idle timeout. Waits are bounded; no timing is asserted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NstpError, type Transport, legacy } from "@nstp/core";
import { detectRuntime, nodeTransport, transportByName } from "@nstp/core/node";
import { connect } from "@nstp/client";
import { StaticKeyStore, startServer } from "@nstp/server";
import { referencePsk, startFreezingProxy } from "@nstp/testkit";

const deviceSalt = Buffer.from(legacy.DEMO_DEVICE_SALT);
const alice = new Uint8Array(referencePsk("userpassword", deviceSalt, "alice"));
const keys = () => new StaticKeyStore(new Map([["alice", alice]]));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const transports: Transport[] = [nodeTransport];
if (detectRuntime() === "bun") transports.unshift(await transportByName("bun"));

async function until(ms: number, cond: () => boolean): Promise<boolean> {
  for (const end = Date.now() + ms; !cond() && Date.now() < end; ) await sleep(20);
  return cond();
}

for (const transport of transports) {
  test(`${transport.name}: pings keep an idle v2 session alive past the idle timeout, and the server's answers keep the client's deadline met`, async () => {
    const server = await startServer({ keys: keys(), port: 0, transport, limits: { idleTimeoutMs: 500 } });
    try {
      const s = await connect({ port: server.port, username: "alice", psk: alice, transport, limits: { keepaliveMs: 150 } });
      // Idle for three idle timeouts and ten keepalive intervals: only pings and their answers flow.
      await sleep(1500);
      assert.equal(s.closed, false, "the client still has its session");
      assert.equal(new TextDecoder().decode(await s.request("still here")), "Server received: still here");
      assert.equal(server.stats.sessionsEnded.idle_timeout ?? 0, 0);
      await s.close();
    } finally {
      await server.close();
    }
  });

  test(`${transport.name}: without keepalive the idle timeout ends the session (the test above can fail)`, async () => {
    const server = await startServer({ keys: keys(), port: 0, transport, limits: { idleTimeoutMs: 300 } });
    try {
      const s = await connect({ port: server.port, username: "alice", psk: alice, transport, limits: { keepaliveMs: 0 } });
      assert.ok(await until(3000, () => s.closed), "the idle session ended");
      assert.equal(server.stats.sessionsEnded.idle_timeout, 1);
    } finally {
      await server.close();
    }
  });

  test(`${transport.name}: a silently vanished peer is noticed on both sides`, async () => {
    const server = await startServer({ keys: keys(), port: 0, transport, limits: { idleTimeoutMs: 800 } });
    const proxy = await startFreezingProxy(server.port);
    try {
      const s = await connect({ port: proxy.port, username: "alice", psk: alice, transport, limits: { keepaliveMs: 150 } });
      assert.equal(new TextDecoder().decode(await s.request("through")), "Server received: through");
      let failure: unknown;
      void s.messages().next().catch((e: unknown) => (failure = e));
      // Alive through the proxy for several intervals first: what follows is the freeze's doing.
      await sleep(600);
      assert.equal(s.closed, false);
      proxy.freeze();
      assert.ok(await until(5000, () => failure !== undefined), "the client noticed");
      assert.ok(failure instanceof NstpError && failure.code === "ERR_TIMEOUT", `client failed with ${String(failure)}`);
      assert.ok(await until(5000, () => server.stats.sessionsEnded.idle_timeout === 1), "the server's idle timeout ended its side");
    } finally {
      await proxy.close();
      await server.close({ graceMs: 0 });
    }
  });
}
