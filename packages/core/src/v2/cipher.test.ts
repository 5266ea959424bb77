// The transport cipher takes every nonce and makes every rekey decision, for the inline path (seal,
// receive) and the pool path (prepare, split) alike: the same frames get the same keys and nonces on
// either, across rekey boundaries, and the wire bytes are the same.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { toHex } from "../bytes.ts";
import type { CryptoBackend } from "../crypto/backend.ts";
import { BACKENDS } from "../crypto/index.ts";
import type { Output } from "../events.ts";
import { CipherState, aesGcmNonce } from "../noise/cipher-state.ts";
import { FrameReader } from "./reader.ts";
import { FrameWriter } from "./writer.ts";
import { MAX_CHUNK_BODY } from "./wire.ts";

const native = BACKENDS.native;
const INTERVAL = 3;

/** The native backend, noting the key and nonce of every frame AEAD (not Rekey()'s own encryption). */
function recording(): { crypto: CryptoBackend; frames: string[] } {
  const frames: string[] = [];
  const note = (key: Uint8Array, nonce: Uint8Array) => frames.push(`${toHex(key)}/${toHex(nonce)}`);
  const crypto: CryptoBackend = {
    ...native,
    aesGcmSealInto(key, nonce, parts, out, offset) {
      note(key, nonce);
      return native.aesGcmSealInto(key, nonce, parts, out, offset);
    },
    aesGcmOpen(key, nonce, sealed, aad) {
      note(key, nonce);
      return native.aesGcmOpen(key, nonce, sealed, aad);
    },
  };
  return { crypto, frames };
}

/** Batches that make 1, 2 and 4 frames: 10 frames, so rekeys fall inside batches and between them. */
const BATCHES: Uint8Array[][] = [
  [new Uint8Array(10).fill(1), new Uint8Array(0)],
  [native.randomBytes(MAX_CHUNK_BODY + 5)],
  [native.randomBytes(3 * MAX_CHUNK_BODY + 1), new Uint8Array(7).fill(2)],
  [native.randomBytes(100)],
  [native.randomBytes(MAX_CHUNK_BODY), new Uint8Array(1)],
];

/** Seals each batch (the last with a close) inline or by prepare() plus AEAD by hand, as the pool does. */
function sealAll(writer: FrameWriter, pooled: (i: number) => boolean, frames: string[]): Uint8Array[] {
  return BATCHES.map((b, i) => {
    const close = i === BATCHES.length - 1;
    if (!pooled(i)) return writer.seal(b, close);
    const p = writer.prepare(b, close);
    return p.assemble(p.items.map((j) => {
      frames.push(`${toHex(j.key)}/${toHex(j.nonce)}`);
      return native.aesGcmSeal(j.key, j.nonce, j.data);
    }));
  });
}

describe("v2 transport cipher", () => {
  const key = native.randomBytes(32);

  test("writer: inline, pooled and mixed paths take the same nonces, rekey at the same frames, write the same bytes", () => {
    const runs = [() => false, () => true, (i: number) => i % 2 === 1].map((pooled) => {
      const { crypto, frames } = recording();
      const writer = new FrameWriter(new CipherState(crypto, key), INTERVAL);
      const wire = sealAll(writer, pooled, frames);
      return { wire, frames, n: writer.frames };
    });
    const [inline, ...others] = runs;
    assert.equal(inline!.n, 10);
    assert.equal(inline!.frames.length, 10);
    // Nonces count 0..9; the key changes after frames 2, 5 and 8 (every INTERVAL frames), and only then.
    inline!.frames.forEach((f, i) => assert.equal(f.split("/")[1], toHex(aesGcmNonce(i))));
    const keys = inline!.frames.map((f) => f.split("/")[0]);
    for (let i = 1; i < keys.length; i++) assert.equal(keys[i] !== keys[i - 1], i % INTERVAL === 0, `key change before frame ${i}`);
    for (const o of others) {
      assert.deepEqual(o.frames, inline!.frames);
      assert.deepEqual(o.wire, inline!.wire);
      assert.equal(o.n, inline!.n);
    }
  });

  test("reader: receive() and split()/accept() take the same nonces, rekey at the same frames, deliver the same", () => {
    const wire = sealAll(new FrameWriter(new CipherState(native, key), INTERVAL), () => false, []);
    const inline = recording();
    const r1 = new FrameReader(new CipherState(inline.crypto, key), 1 << 20, INTERVAL);
    const out1: Output[] = [];
    for (const w of wire) r1.receive(w, out1);

    const pooled: string[] = [];
    const r2 = new FrameReader(new CipherState(native, key), 1 << 20, INTERVAL);
    const out2: Output[] = [];
    for (const w of wire) {
      const jobs = r2.split(w);
      r2.accept(jobs.map((j) => {
        pooled.push(`${toHex(j.key)}/${toHex(j.nonce)}`);
        return native.aesGcmOpen(j.key, j.nonce, j.data);
      }), out2);
    }
    assert.equal(inline.frames.length, 10);
    assert.deepEqual(pooled, inline.frames);
    assert.deepEqual(out2, out1);
    assert.equal(out1.filter((o) => o.type === "message").length, 8);
    assert.equal(out1.at(-1)?.type, "closed");
    assert.equal(r1.frames, r2.frames);
  });

  test("a frame sealed past the writer's rekey point cannot be opened by a reader that missed it", () => {
    const writer = new FrameWriter(new CipherState(native, key), INTERVAL);
    const reader = new FrameReader(new CipherState(native, key), 1 << 20, INTERVAL + 1);
    const out: Output[] = [];
    for (let i = 0; i < INTERVAL; i++) reader.receive(writer.seal([new Uint8Array([i])]), out);
    assert.throws(() => reader.receive(writer.seal([new Uint8Array([9])]), out), { code: "ERR_DECRYPT" });
  });
});
