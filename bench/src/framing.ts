/**
 * The baselines' message framing: [u32 big-endian length][payload], the least a byte stream needs to
 * carry messages. Raw TCP and TLS echo servers and the load generator all use it, so the baselines
 * see the same messages, sizes and write pattern as the secure protocols.
 */
export const HEADER = 4;

export function frame(payloads: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of payloads) len += HEADER + p.length;
  const out = new Uint8Array(len);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const p of payloads) {
    view.setUint32(off, p.length);
    out.set(p, off + HEADER);
    off += HEADER + p.length;
  }
  return out;
}

/** Splits a byte stream into messages; bounded by `max` per message. */
export class Deframer {
  private buf = new Uint8Array(0);
  private readonly max: number;
  constructor(max = 16 << 20) {
    this.max = max;
  }
  push(chunk: Uint8Array, onMessage: (m: Uint8Array) => void): void {
    let data = chunk;
    if (this.buf.length) {
      const joined = new Uint8Array(this.buf.length + chunk.length);
      joined.set(this.buf);
      joined.set(chunk, this.buf.length);
      data = joined;
    }
    let off = 0;
    while (data.length - off >= HEADER) {
      const len = ((data[off]! << 24) | (data[off + 1]! << 16) | (data[off + 2]! << 8) | data[off + 3]!) >>> 0;
      if (len > this.max) throw new Error(`baseline message of ${len} bytes`);
      if (data.length - off - HEADER < len) break;
      onMessage(data.subarray(off + HEADER, off + HEADER + len));
      off += HEADER + len;
    }
    this.buf = off === data.length ? new Uint8Array(0) : data.slice(off);
  }
}
