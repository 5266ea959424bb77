// Message reassembly: memory bounded by what is retained, however the chunks are cut; honest large
// messages unchanged.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TooLargeError } from "../errors.ts";
import { MessageAssembly, RUN_SIZE, retainedLimit } from "./assembly.ts";
import { MAX_CHUNK_BODY, MAX_FRAME_PLAINTEXT } from "./wire.ts";

/** A chunk body as the reader sees it: in its own opened frame of `frame` bytes, after the header. */
function inFrame(body: Uint8Array, frame = MAX_FRAME_PLAINTEXT): [Uint8Array, number, number] {
  const f = new Uint8Array(frame);
  f.set(body, 3);
  return [f, 3, body.length];
}

test("empty and tiny chunks retain nothing of their frames", () => {
  const m = new MessageAssembly(1 << 20);
  for (let i = 0; i < 100_000; i++) m.add(...inFrame(new Uint8Array(0)));
  assert.equal(m.retainedBytes, 0, "empty chunks keep no frame alive");
  assert.ok(m.started);
  for (let i = 0; i < 1000; i++) m.add(...inFrame(Uint8Array.of(i & 0xff)));
  // 1,000 bytes copied into one run buffer, not 1,000 frames of 64 KiB.
  assert.equal(m.retainedBytes, RUN_SIZE);
  const msg = m.finish(Uint8Array.of(7), 0, 1);
  assert.equal(msg.length, 1001);
  assert.equal(msg[999], 999 & 0xff);
  assert.equal(m.retainedBytes, 0);
});

test("a message cut into 1-byte chunks is refused at the maximum, retaining at most the bound", () => {
  const max = 200_000;
  const m = new MessageAssembly(max);
  let added = 0;
  assert.throws(() => {
    for (;;) (m.add(...inFrame(Uint8Array.of(1))), added++);
  }, TooLargeError);
  assert.equal(added, max);
  assert.ok(m.retainedBytes <= retainedLimit(max));
});

test("a mid-sized body in a large frame is copied out; retained stays within the limit", () => {
  const max = 1 << 20;
  const m = new MessageAssembly(max);
  // 9 KiB bodies each alone in a 64 KiB frame: keeping them would retain 7 times the message.
  let err: unknown;
  let bytes = 0;
  try {
    for (;;) (m.add(...inFrame(new Uint8Array(9 * 1024))), (bytes += 9 * 1024));
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof TooLargeError);
  assert.ok(bytes > max - 9 * 1024, `${bytes} bytes accepted before the message maximum`);
  assert.ok(m.retainedBytes <= retainedLimit(max));
});

test("an honest message of exactly the maximum, behind a short first chunk, is assembled whole", () => {
  const max = 16 * 1024 * 1024;
  const msg = new Uint8Array(max);
  for (let i = 0; i < max; i += 4093) msg[i] = i & 0xff;
  const m = new MessageAssembly(max);
  let off = 0;
  m.add(...inFrame(msg.subarray(0, 5))); // the writer's first chunk may be short, after other messages
  off = 5;
  while (max - off > MAX_CHUNK_BODY) {
    m.add(...inFrame(msg.subarray(off, off + MAX_CHUNK_BODY)));
    off += MAX_CHUNK_BODY;
  }
  assert.deepEqual(m.finish(...inFrame(msg.subarray(off))), msg);
});
