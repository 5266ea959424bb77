// Observability and graceful shutdown through the server library, on the runtime running the test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { legacy } from "@nstp/core";
import { connect } from "@nstp/client";
import { StaticKeyStore, parseAddress, startMetrics, startServer } from "@nstp/server";
import { referencePsk, v2Handshake } from "@nstp/testkit";

const deviceSalt = legacy.DEMO_DEVICE_SALT;
const psk = referencePsk("userpassword", Buffer.from(deviceSalt), "alice");
const keys = () => new StaticKeyStore(new Map([["alice", new Uint8Array(psk)]]));

test("Prometheus metrics count handshakes by outcome, messages and bytes; nothing else is served", async () => {
  const server = await startServer({ keys: keys(), port: 0 });
  const metrics = await startMetrics("127.0.0.1:0", { stats: server.stats });
  try {
    const s = await connect({ port: server.port, username: "alice", psk: new Uint8Array(psk), deviceSalt, protocol: "v2" });
    for (const m of ["a", "bb", "ccc"]) await s.request(m);
    await s.close();
    await assert.rejects(connect({ port: server.port, username: "alice", psk: new Uint8Array(32), deviceSalt, protocol: "v2" }), { code: "ERR_AUTH" });
    await new Promise((r) => setTimeout(r, 50));
    const res = await fetch(`http://127.0.0.1:${metrics.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.match(text, /^nstp_handshakes_total\{protocol="v2"\} 1$/m);
    assert.match(text, /^nstp_handshakes_failed_total\{reason="ERR_AUTH"\} 1$/m);
    assert.match(text, /^nstp_messages_total\{direction="in"\} 3$/m);
    assert.match(text, /^nstp_payload_bytes_total\{direction="in"\} 6$/m);
    assert.match(text, /^nstp_event_loop_delay_seconds\{quantile="0.99"\} [0-9.e-]+$/m);
    assert.doesNotMatch(text, /alice/, "no usernames in metrics");
    assert.equal((await fetch(`http://127.0.0.1:${metrics.port}/other`)).status, 404);
  } finally {
    await metrics.close();
    await server.close();
  }
});

test("addresses: HOST:PORT and [IPv6]:PORT; anything else is refused", () => {
  assert.deepEqual(parseAddress("127.0.0.1:9464"), { host: "127.0.0.1", port: 9464 });
  assert.deepEqual(parseAddress("[::1]:0"), { host: "::1", port: 0 });
  for (const bad of ["9464", "host:", "host:70000", ":1"]) assert.throws(() => parseAddress(bad), RangeError, bad);
});

test("graceful close: replies already due are sent, v2 sessions end with a close chunk, then the server is gone", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const server = await startServer({
    keys: keys(),
    port: 0,
    handler: async (m) => {
      await gate;
      return m;
    },
  });
  const peer = await v2Handshake(server.port, { username: "alice", psk });
  peer.send([Buffer.from("in flight")]);
  await new Promise((r) => setTimeout(r, 50));
  const closing = server.close({ graceMs: 5000 });
  setTimeout(release, 100);
  assert.equal((await peer.receive()).toString(), "in flight");
  await assert.rejects(peer.receive(), /server closed the session/);
  await closing;
  assert.equal((await peer.reader.closedWithin(2000)).closed, true);
});

test("graceful close gives up at its deadline and closes what is left", async () => {
  const server = await startServer({ keys: keys(), port: 0, handler: () => new Promise<Uint8Array>(() => {}) });
  const peer = await v2Handshake(server.port, { username: "alice", psk });
  peer.send([Buffer.from("never answered")]);
  await new Promise((r) => setTimeout(r, 50));
  const t = Date.now();
  await server.close({ graceMs: 200 });
  assert.ok(Date.now() - t < 3000);
  assert.equal((await peer.reader.closedWithin(2000)).closed, true);
});
