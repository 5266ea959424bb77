// The Bun adapter's write contract (Wire.copiesWrites): once write() returns, the caller may reuse its
// buffer, even when the socket took only part of it (the rest is queued as a copy).
import { test } from "node:test";
import assert from "node:assert/strict";
import { detectRuntime } from "../runtime.ts";
import type { Wire } from "./wire.ts";

const onBun = detectRuntime() === "bun";

test("bun wire: bytes left queued by a partial write are a copy; overwriting the caller's buffer changes nothing", { skip: !onBun && "Bun.listen only" }, async () => {
  const { bunTransport } = await import("./bun.ts");
  const received: Uint8Array[] = [];
  let receivedBytes = 0;
  let serverWire: Wire | undefined;
  const listener = await bunTransport.listen({ host: "127.0.0.1", port: 0, maxConnections: 1 }, (wire) => {
    serverWire = wire;
    wire.pause(); // the kernel's buffers fill, so the client's write cannot all go at once
    return { data: (c) => { received.push(c.slice()); receivedBytes += c.length; }, drain() {}, close() {} };
  });
  const size = 32 << 20;
  const sent = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) sent[i] = (i >> 12) & 0xff;
  const scratch = sent.slice();
  const client = await bunTransport.dial({ host: "127.0.0.1", port: listener.port, timeoutMs: 5000 }, () => ({ data() {}, drain() {}, close() {} }));
  try {
    assert.equal(client.copiesWrites, true);
    client.write(scratch);
    assert.ok(client.bufferedAmount > 0, "the socket took only part of the write (a larger write is needed on this host)");
    scratch.fill(0xee); // what a reused output buffer would do before the rest has gone
    for (let i = 0; i < 100 && !serverWire; i++) await new Promise((r) => setTimeout(r, 10));
    serverWire!.resume();
    for (let i = 0; i < 1000 && receivedBytes < size; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(receivedBytes, size);
    const got = new Uint8Array(size);
    let off = 0;
    for (const c of received) {
      got.set(c, off);
      off += c.length;
    }
    assert.ok(Buffer.compare(got, sent) === 0, "the peer received what was written, not what the buffer held later");
  } finally {
    client.destroy();
    await listener.close();
  }
});

test("bun wire: an accepted socket's data is its wire, no separate slot object per connection", { skip: !onBun && "Bun.listen only" }, async () => {
  const { bunTransport } = await import("./bun.ts");
  let serverWire: Wire | undefined;
  const events = { data() {}, drain() {}, close() {} };
  const listener = await bunTransport.listen({ host: "127.0.0.1", port: 0, maxConnections: 1 }, (wire) => {
    serverWire = wire;
    return events;
  });
  const client = await bunTransport.dial({ host: "127.0.0.1", port: listener.port, timeoutMs: 5000 }, () => ({ data() {}, drain() {}, close() {} }));
  try {
    for (let i = 0; i < 100 && !serverWire; i++) await new Promise((r) => setTimeout(r, 10));
    const socket = Reflect.get(serverWire!, "socket") as { data: unknown };
    assert.equal(socket.data, serverWire);
    assert.equal(Reflect.get(serverWire!, "events"), events);
  } finally {
    client.destroy();
    await listener.close();
  }
});
