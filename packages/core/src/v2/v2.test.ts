// Protocol v2 machines in memory: handshake, framing, packing, rekey, close, and every way a peer can
// get it wrong. Socket-level tests (both builds, an independent peer) live in packages/server.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BACKENDS, type CryptoBackend } from "../crypto/index.ts";
import { concat, readU16BE, utf8 } from "../bytes.ts";
import type { Output } from "../events.ts";
import { CipherState } from "../noise/cipher-state.ts";
import { ServerDispatch } from "../dispatch.ts";
import { parseProtocolList } from "../registry.ts";
import { Channel } from "./channel.ts";
import { FrameReader } from "./reader.ts";
import { FrameWriter, TRANSIENT_OUT_MAX } from "./writer.ts";
import { V2Client } from "./client.ts";
import { V2Server, type V2ServerOptions } from "./server.ts";
import { reachable } from "../testing/reachable.ts";
import { BUSY_SIGNAL, CHUNK_HEADER_SIZE, LENGTH_SIZE, MAX_CHUNK_BODY, MAX_FRAME_PLAINTEXT, TAG_SIZE } from "./wire.ts";

const messages = (outs: Output[]) => outs.flatMap((o) => (o.type === "message" ? [o.data] : []));
const sends = (outs: Output[]) => concat(...outs.flatMap((o) => (o.type === "send" ? [o.data] : [])));

function handshake(crypto: CryptoBackend, opts: { serverKey?: Uint8Array; rekeyInterval?: number; maxMessageSize?: number } = {}) {
  const psk = crypto.sha256(utf8("psk"));
  const client = new V2Client({ crypto, username: "alice", psk, rekeyInterval: opts.rekeyInterval, maxMessageSize: opts.maxMessageSize });
  const server = new V2Server({ crypto, rekeyInterval: opts.rekeyInterval, maxMessageSize: opts.maxMessageSize });
  const hello = sends(client.start());
  const s1 = server.receive(hello);
  assert.deepEqual(s1[0], { type: "need-key", username: "alice" });
  const s2 = server.provideKey(opts.serverKey ?? psk);
  assert.deepEqual(s2.map((o) => o.type), ["send"]);
  assert.equal(server.stateName, "responseSent");
  const c = client.receive(sends(s2));
  assert.deepEqual(c, [{ type: "established", username: "alice" }]);
  // Key confirmation: the server counts the session only once the client's first frame authenticates.
  assert.deepEqual(server.receive(client.ping()), [{ type: "established", username: "alice" }]);
  return { client, server, hello, psk };
}

for (const crypto of Object.values(BACKENDS)) {
  describe(`v2 on the ${crypto.name} backend`, () => {
    test("handshake, then messages both ways; both sides share the handshake hash", () => {
      const { client, server } = handshake(crypto);
      assert.deepEqual(client.handshakeHash, server.handshakeHash);
      const got = messages(server.receive(client.seal([utf8("hi"), new Uint8Array(0), utf8("there")])));
      assert.deepEqual(got, [utf8("hi"), new Uint8Array(0), utf8("there")]);
      assert.deepEqual(messages(client.receive(server.seal([utf8("pushed")]))), [utf8("pushed")]);
    });

    test("a 200 KiB message crosses in chunks and arrives whole", () => {
      const { client, server } = handshake(crypto);
      const big = crypto.randomBytes(200 * 1024);
      assert.deepEqual(messages(server.receive(client.seal([big]))), [big]);
    });
  });
}

describe("v2 handshake", () => {
  const crypto = BACKENDS.native;

  test("a channel keeps its own compact copy of the handshake hash, not a view of the digest's buffer", () => {
    const digest = crypto.sha256(utf8("transcript"));
    const channel = new Channel({ send: new CipherState(crypto, new Uint8Array(32)), receive: new CipherState(crypto, new Uint8Array(32)), handshakeHash: digest }, { maxMessageSize: 1024 });
    assert.deepEqual(channel.handshakeHash, digest);
    assert.notEqual(channel.handshakeHash.buffer, digest.buffer);
    assert.equal(channel.handshakeHash.buffer.byteLength, 32);
  });

  test("from message 2 on the server, and once established the client, holds the session only: no options, inbox or key", () => {
    const psk = crypto.sha256(utf8("psk"));
    const clientOpts = { crypto, username: "alice", psk };
    const client = new V2Client(clientOpts);
    const opts: V2ServerOptions = { crypto, fakes: { psk: () => crypto.randomBytes(32), verifier: () => ({ w0: new Uint8Array(32), L: new Uint8Array(65) }) } };
    const server = new V2Server(opts);
    server.receive(sends(client.start()));
    const handshaking = Reflect.get(server, "state") as { kind: string; inbox: object };
    assert.equal(handshaking.kind, "preambleConsumed");
    const message2 = sends(server.provideKey(psk));
    client.receive(message2);
    assert.deepEqual(Object.keys(Reflect.get(client, "state") as object).sort(), ["channel", "kind"]);
    const clientHeld = reachable(client);
    for (const [name, o] of Object.entries({ clientOpts, psk })) assert.equal(clientHeld.has(o), false, `the client still retains ${name}`);
    const retained = (what: string) => {
      const held = reachable(server);
      for (const [name, o] of Object.entries({ opts, fakes: opts.fakes!, inbox: handshaking.inbox, psk })) assert.equal(held.has(o), false, `${what}: ${name} is still retained`);
    };
    assert.deepEqual(Object.keys(Reflect.get(server, "state") as object).sort(), ["channel", "kind", "username"]);
    retained("message 2 sent");
    assert.deepEqual(server.receive(client.ping()), [{ type: "established", username: "alice" }]);
    assert.deepEqual(Object.keys(Reflect.get(server, "state") as object).sort(), ["channel", "kind", "username"]);
    retained("established");
  });

  test("the preamble is 00 'NSTP' 02, the username length and the username, then message 1 of 48 bytes", () => {
    const { hello } = handshake(crypto);
    assert.deepEqual([...hello.subarray(0, 12)], [0, 0x4e, 0x53, 0x54, 0x50, 2, 5, ...utf8("alice")]);
    assert.equal(readU16BE(hello, 12), 48);
    assert.equal(hello.length, 12 + 2 + 48);
  });

  test("every segmentation of the client's first flight gives the same handshake", () => {
    const { hello, psk } = handshake(crypto);
    for (let cut = 0; cut <= hello.length; cut++) {
      const server = new V2Server({ crypto });
      const outs = [...server.receive(hello.subarray(0, cut)), ...server.receive(hello.subarray(cut))];
      assert.ok(outs.some((o) => o.type === "need-key"), `cut ${cut}`);
      assert.equal(server.provideKey(psk).at(-1)?.type, "send");
      assert.equal(server.stateName, "responseSent");
    }
    // One byte at a time, with the key arriving before message 1.
    const server = new V2Server({ crypto });
    let keyed = false;
    for (const b of hello) {
      for (const o of server.receive(new Uint8Array([b]))) if (o.type === "need-key") (server.provideKey(psk), (keyed = true));
    }
    assert.ok(keyed);
    assert.equal(server.stateName, "responseSent");
  });

  test("key confirmation: a replayed message 1 verifies but never establishes, and nothing can be sent to it", () => {
    const { hello, psk } = handshake(crypto);
    for (let i = 0; i < 3; i++) {
      const server = new V2Server({ crypto });
      const outs = [...server.receive(hello), ...server.provideKey(psk)];
      assert.deepEqual(outs.map((o) => o.type), ["need-key", "send"], "message 2 goes out, no session");
      assert.equal(server.stateName, "responseSent");
      // The server sends nothing after message 2 until the client has proven its keys.
      assert.throws(() => server.seal([utf8("push")]), { code: "ERR_PROTOCOL" });
      assert.throws(() => server.seal([], { close: true }), { code: "ERR_PROTOCOL" });
      assert.throws(() => server.prepare([utf8("push")]), { code: "ERR_PROTOCOL" });
      assert.throws(() => server.ping(), { code: "ERR_PROTOCOL" });
      // The replayer lacks the ephemeral key behind message 1, so any first frame it makes fails its tag.
      const forged = concat(new Uint8Array([0, 19]), crypto.randomBytes(19));
      assert.throws(() => server.receive(forged), { code: "ERR_DECRYPT" });
      assert.equal(server.stateName, "failed");
    }
  });

  test("key confirmation: the first frame establishes before any of its messages is released", () => {
    const psk = crypto.sha256(utf8("psk"));
    const client = new V2Client({ crypto, username: "alice", psk });
    const server = new V2Server({ crypto });
    server.receive(sends(client.start()));
    client.receive(sends(server.provideKey(psk)));
    assert.equal(client.unconfirmed, true);
    const first = client.seal([utf8("a"), utf8("b")]);
    assert.equal(client.unconfirmed, false);
    const outs = server.receive(first);
    assert.deepEqual(outs.map((o) => o.type), ["established", "message", "message"]);
    assert.equal(server.stateName, "established");
    assert.deepEqual(messages(client.receive(server.seal([utf8("now")]))), [utf8("now")]);
  });

  test("ping chunks are ignored by both roles once established, anywhere between chunks; a ping with a body is refused", () => {
    const { client, server } = handshake(crypto);
    assert.deepEqual(server.receive(client.ping()), []);
    assert.deepEqual(messages(server.receive(concat(client.ping(), client.seal([utf8("x")]), client.ping()))), [utf8("x")]);
    const k = crypto.randomBytes(32);
    const w = new CipherState(crypto, k);
    const r = new FrameReader(new CipherState(crypto, k), 1 << 20);
    // One frame: "he" (more), ping, "llo" (last), ping.
    const pt = new Uint8Array([1, 0, 2, 0x68, 0x65, 3, 0, 0, 0, 0, 3, 0x6c, 0x6c, 0x6f, 3, 0, 0]);
    const ct = w.encryptWithAd(new Uint8Array(0), pt);
    const out: Output[] = [];
    r.receive(concat(new Uint8Array([0, ct.length]), ct), out);
    assert.deepEqual(messages(out), [utf8("hello")]);
    const withBody = w.encryptWithAd(new Uint8Array(0), new Uint8Array([3, 0, 1, 0x41]));
    assert.throws(() => r.receive(concat(new Uint8Array([0, withBody.length]), withBody), []), { code: "ERR_PROTOCOL" });
    // The client ignores the server's pings too.
    const p = new FrameWriter(new CipherState(crypto, k)).sealPing();
    assert.deepEqual(readU16BE(p, 0), 3 + TAG_SIZE);
    assert.deepEqual(messages(client.receive(concat(server.seal([utf8("1")]), server.ping(), server.seal([utf8("2")])))), [utf8("1"), utf8("2")]);
  });

  test("a wrong key fails message 1 as ERR_AUTH (an unknown user's dummy key fails the same way)", () => {
    assert.throws(() => handshake(crypto, { serverKey: new Uint8Array(32) }), { code: "ERR_AUTH" });
  });

  test("a changed username fails: the preamble is the Noise prologue", () => {
    const { hello, psk } = handshake(crypto);
    const forged = hello.slice();
    forged[7] = "A".charCodeAt(0);
    const server = new V2Server({ crypto });
    server.receive(forged);
    assert.throws(() => server.provideKey(psk), { code: "ERR_AUTH" });
  });

  test("junk after the marker, an empty or non-UTF-8 username, odd lengths and early data close the connection", () => {
    const bad = [
      new Uint8Array([0, 0x4e, 0x53, 0x54, 0x50, 3]),
      new Uint8Array([0, 0x41]),
      new Uint8Array([0, 0x4e, 0x53, 0x54, 0x50, 2, 0]),
      new Uint8Array([0, 0x4e, 0x53, 0x54, 0x50, 2, 2, 0xc3, 0x28]),
      concat(new Uint8Array([0, 0x4e, 0x53, 0x54, 0x50, 2, 1, 0x61]), new Uint8Array([0, 47])),
      concat(new Uint8Array([0, 0x4e, 0x53, 0x54, 0x50, 2, 1, 0x61]), new Uint8Array([0, 48]), new Uint8Array(49)),
    ];
    for (const b of bad) assert.throws(() => new V2Server({ crypto }).receive(b), { code: "ERR_PROTOCOL" }, [...b].join(","));
  });

  test("a server's busy signal is reported as ERR_BUSY, any other length as a protocol error", () => {
    const c = new V2Client({ crypto, username: "a", psk: new Uint8Array(32) });
    c.start();
    assert.throws(() => c.receive(BUSY_SIGNAL), { code: "ERR_BUSY" });
    const d = new V2Client({ crypto, username: "a", psk: new Uint8Array(32) });
    d.start();
    assert.throws(() => d.receive(new Uint8Array([0, 49])), { code: "ERR_PROTOCOL" });
  });

  test("a forged message 2 is ERR_AUTH on the client", () => {
    const { hello, psk } = handshake(crypto);
    const server = new V2Server({ crypto });
    server.receive(hello);
    const reply = sends(server.provideKey(psk));
    assert.equal(server.stateName, "responseSent");
    const c = new V2Client({ crypto, username: "alice", psk: new Uint8Array(32).fill(1) });
    c.start();
    assert.throws(() => c.receive(reply), { code: "ERR_AUTH" });
  });

  test("dispatch: 00 'NSTP' 02 is v2, a first byte other than 0 the reference, which can be switched off", () => {
    const d = new ServerDispatch({ crypto });
    // At most the 6 claim bytes are held before a version is chosen.
    d.receive(new Uint8Array([0, 0x4e, 0x53]));
    assert.equal(d.protocol, undefined);
    d.receive(new Uint8Array([0x54, 0x50, 2]));
    assert.equal(d.protocol, "v2");
    const three = new ServerDispatch({ crypto });
    three.receive(new Uint8Array([0, 0x4e, 0x53, 0x54, 0x50, 3]));
    assert.equal(three.protocol, "v3");
    assert.throws(() => new ServerDispatch({ crypto }).receive(new Uint8Array([0, 0x4e, 0x53, 0x54, 0x50, 9])), { code: "ERR_PROTOCOL" });
    assert.throws(() => new ServerDispatch({ crypto }).receive(new Uint8Array([0, 1])), { code: "ERR_PROTOCOL" });
    const l = new ServerDispatch({ crypto });
    l.receive(new Uint8Array([5]));
    assert.equal(l.protocol, "legacy");
    assert.throws(() => new ServerDispatch({ crypto, protocols: parseProtocolList("v2,v3") }).receive(new Uint8Array([5])), { code: "ERR_PROTOCOL" });
  });
});

describe("v2 framing", () => {
  const crypto = BACKENDS.native;
  const pair = (rekeyInterval?: number, maxMessageSize = 1 << 24, readerRekeyInterval = rekeyInterval) => {
    const k = crypto.randomBytes(32);
    return {
      writer: new FrameWriter(new CipherState(crypto, k), rekeyInterval),
      reader: new FrameReader(new CipherState(crypto, k), maxMessageSize, readerRekeyInterval),
    };
  };
  const read = (reader: FrameReader, bytes: Uint8Array) => {
    const out: Output[] = [];
    reader.receive(bytes, out);
    return out;
  };
  const frameCount = (bytes: Uint8Array) => {
    let n = 0;
    for (let off = 0; off < bytes.length; n++) off += LENGTH_SIZE + readU16BE(bytes, off);
    return n;
  };

  test("messages queued together share frames: 1,000 x 64 B is one frame, one AEAD", () => {
    const { writer, reader } = pair();
    const batch = Array.from({ length: 1000 }, (_, i) => new Uint8Array(64).fill(i & 0xff));
    const bytes = writer.seal(batch);
    assert.equal(frameCount(bytes), 2); // 1000 * 67 = 67,000 > 65,519: two frames
    assert.equal(writer.frames, 2);
    assert.deepEqual(messages(read(reader, bytes)), batch);
  });

  test("a message that fits a frame of its own is never split across two (the reader hands out views, not copies)", () => {
    for (const size of [16_384, 61_440, MAX_CHUNK_BODY]) {
      const { writer, reader } = pair();
      const batch = Array.from({ length: 5 }, (_, i) => crypto.randomBytes(size).fill(i, 0, 1));
      // Greedily, 16 KiB messages would share 4 to a frame with every 4th split (65,519 < 4 x 16,387),
      // and every 60 KiB message after the first would be split.
      const perFrame = Math.floor(MAX_FRAME_PLAINTEXT / (CHUNK_HEADER_SIZE + size));
      const bytes = writer.seal(batch);
      assert.equal(frameCount(bytes), Math.ceil(5 / perFrame), `size ${size}`);
      const got = messages(read(reader, bytes));
      assert.deepEqual(got, batch);
      // A view of its opened frame (which also holds a chunk header), not a reassembled buffer.
      for (const m of got) assert.ok(m.buffer.byteLength > m.byteLength, `size ${size}: a copy`);
    }
  });

  test("a transient seal (for a wire that copies writes) reuses one output buffer per thread, up to its maximum", () => {
    const { writer, reader } = pair();
    const a = [crypto.randomBytes(70_000), utf8("y")];
    const first = writer.seal(a, false, true);
    assert.deepEqual(messages(read(reader, first)), a, "read before the next seal, as the wire does");
    const b = [crypto.randomBytes(1000)];
    const second = writer.seal(b, false, true);
    assert.equal(second.buffer, first.buffer, "the same memory");
    assert.deepEqual(messages(read(reader, second)), b);
    const large = [crypto.randomBytes(TRANSIENT_OUT_MAX)];
    const third = writer.seal(large, false, true);
    assert.notEqual(third.buffer, first.buffer, "a batch beyond the maximum gets its own memory");
    assert.notEqual(writer.seal([utf8("z")]).buffer, first.buffer, "not transient: its own memory");
    assert.deepEqual(messages(read(reader, third)), large);
  });

  test("chunk boundaries: sizes around the largest chunk body", () => {
    const { writer, reader } = pair();
    for (const size of [0, 1, MAX_CHUNK_BODY - 1, MAX_CHUNK_BODY, MAX_CHUNK_BODY + 1, 3 * MAX_CHUNK_BODY + 7]) {
      const m = crypto.randomBytes(size);
      const bytes = writer.seal([m]);
      assert.equal(frameCount(bytes), Math.max(1, Math.ceil(size / MAX_CHUNK_BODY)), `size ${size}`);
      assert.deepEqual(messages(read(reader, bytes)), [m]);
    }
  });

  test("the reader accepts any packing and any segmentation", () => {
    const { writer, reader } = pair();
    const ms = [utf8("one"), crypto.randomBytes(70_000), utf8("three")];
    const bytes = concat(writer.seal([ms[0]!]), writer.seal([ms[1]!, ms[2]!]));
    const got: Uint8Array[] = [];
    for (let off = 0; off < bytes.length; off += 997) got.push(...messages(read(reader, bytes.subarray(off, off + 997))));
    assert.deepEqual(got, ms);
    assert.equal(reader.hasPartialInput, false);
  });

  test("a message larger than the maximum is refused while it arrives", () => {
    const { writer, reader } = pair(undefined, 100_000);
    const bytes = writer.seal([new Uint8Array(150_000)]);
    // The first frame (65,516 bytes) is accepted; the second pushes past 100,000.
    const first = LENGTH_SIZE + readU16BE(bytes, 0);
    assert.deepEqual(read(reader, bytes.subarray(0, first)), []);
    const secondEnd = first + LENGTH_SIZE + readU16BE(bytes, first);
    assert.throws(() => read(reader, bytes.subarray(first, secondEnd)), { code: "ERR_TOO_LARGE" });
  });

  test("tampered, replayed, reordered and truncated frames are refused; nothing is released early", () => {
    for (let i = LENGTH_SIZE; i < LENGTH_SIZE + 3 + 1 + TAG_SIZE; i++) {
      const { writer, reader } = pair();
      const bad = writer.seal([utf8("a")]);
      bad[i]! ^= 0x80;
      assert.throws(() => read(reader, bad), { code: "ERR_DECRYPT" }, `byte ${i}`);
    }
    const other = pair();
    assert.throws(() => read(pair().reader, other.writer.seal([utf8("a")])), { code: "ERR_DECRYPT" }, "another session's key");

    const reordered = pair();
    reordered.writer.seal([utf8("x")]);
    assert.throws(() => read(reordered.reader, reordered.writer.seal([utf8("y")])), { code: "ERR_DECRYPT" }, "frame 1 before frame 0");

    const replayed = pair();
    const a = replayed.writer.seal([utf8("a")]);
    assert.deepEqual(messages(read(replayed.reader, a)), [utf8("a")]);
    assert.throws(() => read(replayed.reader, a), { code: "ERR_DECRYPT" }, "frame 0 twice");

    const whole = pair().writer.seal([utf8("truncated")]);
    for (let cut = 1; cut < whole.length; cut++) {
      const { writer, reader } = pair();
      assert.deepEqual(read(reader, writer.seal([utf8("truncated")]).subarray(0, cut)), [], `cut ${cut}`);
      assert.equal(reader.hasPartialInput, true);
    }
  });

  test("a frame length shorter than one chunk is refused before anything is buffered", () => {
    const { reader } = pair();
    assert.throws(() => read(reader, new Uint8Array([0, CHUNK_HEADER_SIZE + TAG_SIZE - 1])), { code: "ERR_PROTOCOL" });
    const r2 = pair().reader;
    assert.deepEqual(read(r2, new Uint8Array([0])), []);
    assert.throws(() => read(r2, new Uint8Array([0])), { code: "ERR_PROTOCOL" });
  });

  test("close: the close chunk is reported, and nothing may follow it", () => {
    const { writer, reader } = pair();
    const bytes = writer.seal([utf8("last words")], true);
    assert.deepEqual(read(reader, bytes).map((o) => o.type), ["message", "closed"]);
    assert.throws(() => writer.seal([utf8("more")]), { code: "ERR_CLOSED" });
    const p = pair();
    const closing = p.writer.seal([], true);
    read(p.reader, closing);
    assert.throws(() => read(p.reader, new Uint8Array(21)), { code: "ERR_PROTOCOL" });
  });

  test("prepare/split/accept (AEAD run elsewhere) give the same bytes and messages as seal/receive", () => {
    const k = crypto.randomBytes(32);
    const inline = new FrameWriter(new CipherState(crypto, k), 3);
    const deferred = new FrameWriter(new CipherState(crypto, k), 3);
    const reader = new FrameReader(new CipherState(crypto, k), 1 << 24, 3);
    const batches = [[utf8("a"), crypto.randomBytes(70_000)], [utf8("b")], Array.from({ length: 300 }, (_, i) => utf8(`m${i}`))];
    for (const [i, batch] of batches.entries()) {
      const close = i === batches.length - 1;
      const expected = inline.seal(batch, close);
      const prepared = deferred.prepare(batch, close);
      // What the pool does with each job: seal under its key and nonce.
      const wire = prepared.assemble(prepared.items.map((j) => crypto.aesGcmSeal(j.key, j.nonce, j.data)));
      assert.deepEqual(wire, expected, `batch ${i}`);
      const jobs = reader.split(wire);
      const out: Output[] = [];
      reader.accept(jobs.map((j) => crypto.aesGcmOpen(j.key, j.nonce, j.data)), out);
      assert.deepEqual(messages(out), batch);
      if (close) assert.equal(out.at(-1)?.type, "closed");
    }
    // A frame that fails its tag in the pool (null) ends the session; nothing of it is released.
    const p = pair();
    const jobs = p.reader.split(p.writer.seal([utf8("x")]));
    const out: Output[] = [];
    assert.throws(() => p.reader.accept(jobs.map(() => null), out), { code: "ERR_DECRYPT" });
    assert.deepEqual(out, []);
  });

  test("each direction rekeys after every interval of frames, and a peer that does not cannot follow", () => {
    const { writer, reader } = pair(3);
    for (let i = 0; i < 10; i++) assert.deepEqual(messages(read(reader, writer.seal([utf8(`m${i}`)]))), [utf8(`m${i}`)]);
    const lagging = pair(3, 1 << 24, 2 ** 20);
    for (let i = 0; i < 3; i++) read(lagging.reader, lagging.writer.seal([utf8(`m${i}`)]));
    assert.throws(() => read(lagging.reader, lagging.writer.seal([utf8("m3")])), { code: "ERR_DECRYPT" });
  });
});
