// Session lifetime in process, on every transport of the runtime running the test: the maximum
// lifetime, and a key store that signals removed users (onUserRemoved) ending their sessions.
// The idle timeout and SIGHUP removal against real server processes are in hostile.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NstpError, type Transport, legacy } from "@nstp/core";
import { detectRuntime, nodeTransport, transportByName } from "@nstp/core/node";
import { connect } from "@nstp/client";
import { type KeyStore, StaticKeyStore, startServer } from "@nstp/server";
import { referenceHandshake, referencePsk } from "@nstp/testkit";

const deviceSalt = Buffer.from(legacy.DEMO_DEVICE_SALT);
const alice = new Uint8Array(referencePsk("userpassword", deviceSalt, "alice"));
const bob = new Uint8Array(referencePsk("bob's password", deviceSalt, "bob"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const transports: Transport[] = [nodeTransport];
if (detectRuntime() === "bun") transports.unshift(await transportByName("bun"));

/** What a database-backed store does: it knows its users and says when one is removed. */
class SignallingStore implements KeyStore {
  readonly keys = new Map<string, Uint8Array>();
  readonly listeners = new Set<(username: string) => void>();
  lookup(username: string): Uint8Array | undefined {
    return this.keys.get(username);
  }
  onUserRemoved(listener: (username: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  remove(username: string): void {
    this.keys.delete(username);
    for (const l of this.listeners) l(username);
  }
}

async function closedWithin(ms: number, isClosed: () => boolean): Promise<boolean> {
  for (const end = Date.now() + ms; !isClosed() && Date.now() < end; ) await sleep(20);
  return isClosed();
}

for (const transport of transports) {
  test(`${transport.name}: a session ends at the maximum lifetime however busy it is`, async () => {
    const server = await startServer({ keys: new StaticKeyStore(new Map([["alice", alice]])), port: 0, transport, limits: { maxSessionLifetimeMs: 400 } });
    try {
      const s = await connect({ port: server.port, username: "alice", psk: alice, transport });
      const started = Date.now();
      let replies = 0;
      let failure: unknown;
      while (Date.now() - started < 3000) {
        try {
          await s.request("busy");
          replies++;
        } catch (e) {
          failure = e;
          break;
        }
      }
      assert.ok(failure instanceof NstpError && failure.code === "ERR_CLOSED", `ended: ${String(failure)}`);
      assert.ok(Date.now() - started >= 350, `not before the lifetime (${Date.now() - started} ms)`);
      assert.ok(replies > 0);
      assert.equal(server.stats.sessionsEnded.max_lifetime, 1);
    } finally {
      await server.close();
    }
  });

  test(`${transport.name}: a store that signals a removed user ends that user's sessions (both protocols), and only those`, async () => {
    const store = new SignallingStore();
    store.keys.set("alice", alice).set("bob", bob);
    const server = await startServer({ keys: store, port: 0, transport });
    try {
      const a = await connect({ port: server.port, username: "alice", psk: alice, transport });
      const b = await connect({ port: server.port, username: "bob", psk: bob, transport });
      const bRef = await referenceHandshake(server.port, { username: "bob", psk: Buffer.from(bob) });
      bRef.socket.write(bRef.record(0, Buffer.from("hi")));
      await bRef.readReply();
      await b.request("hi");
      store.remove("bob");
      assert.ok(await closedWithin(2000, () => b.closed), "bob's v2 session ended");
      const { closed } = await bRef.reader.closedWithin(2000);
      assert.ok(closed, "bob's reference session ended");
      assert.equal(server.stats.sessionsEnded.user_removed, 2);
      assert.equal(new TextDecoder().decode(await a.request("still here")), "Server received: still here");
      await a.close();
    } finally {
      await server.close();
    }
    assert.equal(store.listeners.size, 0, "the server unsubscribed when it closed");
  });
}
