// The PROXY protocol on the server's listener, through the library on the runtime running the test:
// required from trusted proxies, refused from anyone else, the relayed address used for sessions and
// the per-address failure budget, and every bad header closing the connection, counted by reason.
import { test } from "node:test";
import assert from "node:assert/strict";
import { legacy } from "@nstp/core";
import { type ServerOptions, StaticKeyStore, TrustedProxies, renderPrometheus, startServer } from "./index.ts";
import { dial, Reader, referencePsk, v2Handshake } from "@nstp/testkit";
import { monitorEventLoopDelay } from "node:perf_hooks";

const deviceSalt = legacy.DEMO_DEVICE_SALT;
const psk = referencePsk("userpassword", Buffer.from(deviceSalt), "alice");
const keys = () => new StaticKeyStore(new Map([["alice", new Uint8Array(psk)]]));
const SIG = Buffer.from("0d0a0d0a000d0a515549540a", "hex");

/** A v2 PROXY header for TCP over IPv4 from `src`:`port` to 127.0.0.1:8080. */
function v2Header(src: string, port: number, verCmd = 0x21): Buffer {
  const b = Buffer.alloc(28);
  SIG.copy(b);
  b[12] = verCmd;
  b[13] = 0x11;
  b.writeUInt16BE(12, 14);
  src.split(".").forEach((x, i) => (b[16 + i] = Number(x)));
  b.set([127, 0, 0, 1], 20);
  b.writeUInt16BE(port, 24);
  b.writeUInt16BE(8080, 26);
  return b;
}

async function proxyServer(trustedProxies: string[], extra: Partial<ServerOptions> = {}) {
  const seen: string[] = [];
  const server = await startServer({
    keys: keys(),
    port: 0,
    trustedProxies,
    handler: (m, session) => {
      seen.push(session.remoteAddress);
      return m;
    },
    ...extra,
  });
  return { server, seen };
}

/** Sends `bytes` and reports whether the server closed the connection (having sent nothing). */
async function closedAfter(port: number, bytes: Buffer, opts: { localAddress?: string; end?: boolean } = {}): Promise<{ closed: boolean; extra: number }> {
  const s = await dial(port, "127.0.0.1", opts.localAddress);
  const reader = new Reader(s);
  s.write(bytes);
  if (opts.end) s.end();
  const r = await reader.closedWithin(3000);
  s.destroy();
  return r;
}

function failures(server: { stats: { proxyHeaderFailures: Record<string, number> } }): Record<string, number> {
  return { ...server.stats.proxyHeaderFailures };
}

test("trusted proxy: v1 and v2 headers are required; the session sees the client address they carry", async () => {
  const { server, seen } = await proxyServer(["127.0.0.0/8"]);
  try {
    const a = await v2Handshake(server.port, { username: "alice", psk, prefix: v2Header("203.0.113.7", 40000) });
    a.send([Buffer.from("one")]);
    assert.equal((await a.receive()).toString(), "one");
    a.destroy();
    const b = await v2Handshake(server.port, { username: "alice", psk, prefix: Buffer.from("PROXY TCP6 2001:db8::5 ::1 5555 8080\r\n") });
    b.send([Buffer.from("two")]);
    assert.equal((await b.receive()).toString(), "two");
    b.destroy();
    // LOCAL (a health check): the proxy's own address stands.
    const c = await v2Handshake(server.port, { username: "alice", psk, prefix: v2Header("0.0.0.0", 0, 0x20) });
    c.send([Buffer.from("three")]);
    assert.equal((await c.receive()).toString(), "three");
    c.destroy();
    assert.deepEqual(seen, ["203.0.113.7", "2001:db8::5", "127.0.0.1"]);
    assert.deepEqual({ ...server.stats.proxyHeaders }, { 1: 1, 2: 2 });
    // Without a header, a trusted proxy's connection is closed.
    const missing = await closedAfter(server.port, Buffer.from([0x00, 0x4e, 0x53, 0x54, 0x50, 0x02, 5]));
    assert.deepEqual(missing, { closed: true, extra: 0 });
    assert.deepEqual(failures(server), { missing: 1 });
  } finally {
    await server.close();
  }
});

test("untrusted peers are served directly, and one that sends a PROXY header is closed", async () => {
  const { server, seen } = await proxyServer(["10.0.0.0/8", "fd00::/8"]);
  try {
    const a = await v2Handshake(server.port, { username: "alice", psk });
    a.send([Buffer.from("direct")]);
    assert.equal((await a.receive()).toString(), "direct");
    a.destroy();
    assert.deepEqual(seen, ["127.0.0.1"]);
    assert.equal((await closedAfter(server.port, v2Header("10.1.2.3", 1))).closed, true);
    assert.equal((await closedAfter(server.port, Buffer.from("PROXY TCP4 10.1.2.3 10.0.0.1 1 2\r\n"))).closed, true);
    // A signature cut short and then ended is passed on to the protocol machine, which refuses it.
    assert.equal((await closedAfter(server.port, SIG.subarray(0, 4), { end: true })).closed, true);
    assert.deepEqual(failures(server), { untrusted: 2 });
  } finally {
    await server.close();
  }
});

test("malformed, oversized, truncated and late headers close the connection, each counted by reason", async () => {
  const { server } = await proxyServer(["127.0.0.1"], { limits: { handshakeTimeoutMs: 300 } });
  try {
    const bad = Buffer.from(v2Header("1.2.3.4", 5));
    bad[12] = 0x31; // version 3
    assert.equal((await closedAfter(server.port, bad)).closed, true);
    const big = Buffer.from(v2Header("1.2.3.4", 5));
    big.writeUInt16BE(0xffff, 14);
    assert.equal((await closedAfter(server.port, big.subarray(0, 16))).closed, true);
    assert.equal((await closedAfter(server.port, Buffer.from("PROXY UNKNOWN " + "x".repeat(120)))).closed, true);
    assert.equal((await closedAfter(server.port, v2Header("1.2.3.4", 5).subarray(0, 20), { end: true })).closed, true);
    const t = Date.now();
    assert.equal((await closedAfter(server.port, v2Header("1.2.3.4", 5).subarray(0, 20))).closed, true);
    assert.ok(Date.now() - t >= 250, "closed at the handshake deadline, not before");
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(failures(server), { malformed: 1, oversized: 2, truncated: 1, timeout: 1 });
    const text = renderPrometheus({ stats: server.stats, eventLoop: monitorEventLoopDelay() });
    assert.match(text, /^nstp_proxy_header_failures_total\{reason="oversized"\} 2$/m);
    assert.equal(server.stats.handshaking, 0);
  } finally {
    await server.close();
  }
});

test("the per-address failure budget counts the relayed client address, not the proxy's", async () => {
  const { server } = await proxyServer(["127.0.0.1"], { failureLimit: { burst: 2, refillPerSecond: 0.001 } });
  const wrong = Buffer.alloc(32, 7);
  try {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(v2Handshake(server.port, { username: "alice", psk: wrong, prefix: v2Header("198.51.100.1", 1000 + i) }));
    }
    // 198.51.100.1 has spent its budget: refused at once (v2's busy signal, then the close).
    await assert.rejects(v2Handshake(server.port, { username: "alice", psk, prefix: v2Header("198.51.100.1", 2000) }), /message 2 of 0 bytes/);
    // Another client behind the same proxy is still served.
    const ok = await v2Handshake(server.port, { username: "alice", psk, prefix: v2Header("198.51.100.2", 3000) });
    ok.destroy();
    assert.equal(server.stats.refused, 1);
  } finally {
    await server.close();
  }
});

test("trusted proxies: addresses and CIDR blocks, IPv4, IPv6 and IPv4-mapped; anything else is refused", () => {
  const t = new TrustedProxies(["127.0.0.1", "10.0.0.0/8", "192.168.1.128/25", "fd00::/8", "::1"]);
  for (const yes of ["127.0.0.1", "::ffff:127.0.0.1", "10.200.3.4", "192.168.1.200", "fd12::1", "::1", "0:0:0:0:0:0:0:1"]) assert.ok(t.has(yes), yes);
  for (const no of ["127.0.0.2", "11.0.0.1", "192.168.1.127", "fe80::1", "::2", "unknown", ""]) assert.ok(!t.has(no), no);
  assert.ok(new TrustedProxies(["0.0.0.0/0"]).has("8.8.8.8"));
  assert.ok(!new TrustedProxies(["0.0.0.0/0"]).has("::1"));
  for (const bad of ["10.0.0.0/33", "::/129", "10.0.0/8", "host", "10.0.0.0/8/1", "10.0.0.0/08"]) {
    assert.throws(() => new TrustedProxies([bad]), { code: "ERR_INVALID_ARG" }, bad);
  }
  assert.equal(TrustedProxies.parse("127.0.0.1, ::1,").size, 2);
});
