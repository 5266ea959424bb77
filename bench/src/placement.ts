/**
 * Where should AES-GCM run: inline on the event loop, or in the worker pool? For each backend and
 * frame size this measures sealing + opening inline, and through the pool in batches of frames (about
 * 256 KiB per task), after checking that each path returns the original bytes. Prints one JSON line.
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { type CryptoBackend } from "@nstp/core";
import { BACKENDS } from "@nstp/core/node";
import { CryptoPool } from "@nstp/core/pool";

const { values } = parseArgs({
  options: {
    ms: { type: "string", default: "300" },
    sizes: { type: "string", default: "64,1024,16384,61440" },
    backends: { type: "string", default: "native,noble" },
    /** One core's seal+open rate only (the echo group's crypto-inclusive ceiling): no pool. */
    "inline-only": { type: "boolean", default: false },
  },
  strict: true,
});
const MS = Number(values.ms);
const SIZES = values.sizes!.split(",").map(Number);
const BATCH_BYTES = 256 * 1024;
const now = () => performance.now();

function nonceOf(i: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setUint32(8, i);
  return n;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`placement bench: ${what} did not round-trip`);
}

function inline(b: CryptoBackend, size: number) {
  const key = b.randomBytes(32);
  const pt = b.randomBytes(size);
  const first = b.aesGcmOpen(key, nonceOf(0), b.aesGcmSeal(key, nonceOf(0), pt));
  check(!!first && Buffer.from(first).equals(Buffer.from(pt)), `${b.name} inline`);
  let frames = 0;
  const end = now() + MS;
  const t = now();
  while (now() < end) {
    for (let k = 0; k < 8; k++) {
      const ct = b.aesGcmSeal(key, nonceOf(frames), pt);
      b.aesGcmOpen(key, nonceOf(frames), ct);
      frames++;
    }
  }
  const secs = (now() - t) / 1000;
  return { mbps: (frames * size) / secs / 1e6, usPerFrame: (secs * 1e6) / frames };
}

async function pooled(pool: CryptoPool, b: CryptoBackend, size: number) {
  const key = b.randomBytes(32);
  const per = Math.max(1, Math.floor(BATCH_BYTES / Math.max(size, 1)));
  const items = Array.from({ length: per }, (_, i) => ({ nonce: nonceOf(i), data: b.randomBytes(size) }));
  const sealed = await pool.seal(key, items);
  const opened = await pool.open(key, sealed.map((data, i) => ({ nonce: nonceOf(i), data })));
  check(opened.every((o, i) => o && Buffer.from(o).equals(Buffer.from(items[i]!.data))), `${b.name} pool`);
  // Hand-over cost: one frame there and back.
  const one = [{ nonce: nonceOf(0), data: items[0]!.data }];
  const h0 = now();
  for (let i = 0; i < 20; i++) await pool.seal(key, one);
  const handoverUs = ((now() - h0) / 20) * 1000;
  let frames = 0;
  const end = now() + MS;
  const t = now();
  // Two tasks in flight per thread keep every thread busy.
  await Promise.all(Array.from({ length: pool.threads * 2 }, async () => {
    while (now() < end) {
      const s = await pool.seal(key, items);
      await pool.open(key, s.map((data, i) => ({ nonce: nonceOf(i), data })));
      frames += per;
    }
  }));
  const secs = (now() - t) / 1000;
  return { mbps: (frames * size) / secs / 1e6, handoverUs };
}

const out: { backend: string; size: number; inlineMBps: number; inlineUsPerFrame: number; poolMBps?: number; poolHandoverUs?: number }[] = [];
for (const b of Object.values(BACKENDS).filter((b) => values.backends!.split(",").includes(b.name))) {
  const pool = values["inline-only"] ? undefined : new CryptoPool({ backend: b });
  for (const size of SIZES) {
    const i = inline(b, size);
    const p = pool ? await pooled(pool, b, size) : undefined;
    out.push({ backend: b.name, size, inlineMBps: i.mbps, inlineUsPerFrame: i.usPerFrame, poolMBps: p?.mbps, poolHandoverUs: p?.handoverUs });
  }
  await pool?.destroy();
}
console.log(JSON.stringify({ threads: availableParallelism(), results: out }));
process.exit(0);
