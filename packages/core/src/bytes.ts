/** Byte helpers shared by every module. Inputs are always Uint8Array (Buffer is a subclass). */

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF instead of dropping it: usernames map to strings one to one, so
// "\uFEFFalice" is never looked up as "alice" (v3 binds the bytes exactly as sent).
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Decodes UTF-8, throwing on invalid sequences (usernames must be valid UTF-8). */
export function fromUtf8(b: Uint8Array): string {
  return strictDecoder.decode(b);
}

/**
 * Buffer where the runtime has it (Bun, Node): native memory search and allocation without zero
 * fill. The browser build has neither and takes the plain paths; nothing here imports node:.
 */
import { NstpError } from "./errors.ts";

const NativeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer;

/**
 * A plain Uint8Array of `length` bytes, NOT zero-filled where the runtime allows it: only for output
 * that the caller overwrites entirely before it escapes (sealed frames and records, concatenations).
 * Zero-filling is most of what a large allocation costs: 200 KB took 16.5 µs zeroed and 2 µs
 * uninitialised under Bun 1.4.5 (one seal of a pipelined echo batch). A plain view, not the Buffer
 * itself, so that slice() still copies for whoever receives it.
 */
export function allocOverwritten(length: number): Uint8Array {
  if (!NativeBuffer || length < 4096) return new Uint8Array(length);
  const b = NativeBuffer.allocUnsafeSlow(length);
  return new Uint8Array(b.buffer, b.byteOffset, length);
}

/**
 * Returns `out` (from allocOverwritten) once `written` bytes of it were written, which must be all of
 * them: uninitialised memory (old keys, old plaintext) must never leave. A backend that wrote fewer
 * bytes than the layout promised fails the session instead.
 */
export function overwritten(out: Uint8Array, written: number): Uint8Array {
  if (written !== out.length) throw new NstpError("ERR_PROTOCOL", `sealed ${written} of ${out.length} bytes laid out`);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = allocOverwritten(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function toHex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!];
  return s;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError(`invalid hex string`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function writeU16BE(out: Uint8Array, offset: number, v: number): void {
  out[offset] = (v >>> 8) & 0xff;
  out[offset + 1] = v & 0xff;
}

export function readU16BE(b: Uint8Array, offset: number): number {
  return ((b[offset]! << 8) | b[offset + 1]!) >>> 0;
}

export function writeU32BE(out: Uint8Array, offset: number, v: number): void {
  out[offset] = (v >>> 24) & 0xff;
  out[offset + 1] = (v >>> 16) & 0xff;
  out[offset + 2] = (v >>> 8) & 0xff;
  out[offset + 3] = v & 0xff;
}

export function readU32BE(b: Uint8Array, offset: number): number {
  return ((b[offset]! << 24) | (b[offset + 1]! << 16) | (b[offset + 2]! << 8) | b[offset + 3]!) >>> 0;
}

/** True when `b` starts with `prefix` (not constant time: only for public values such as nonces). */
export function startsWith(b: Uint8Array, prefix: Uint8Array, at = 0): boolean {
  if (b.length - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[at + i] !== prefix[i]) return false;
  return true;
}

/**
 * First index >= from where `needle` occurs in `hay`, or -1. Natively where the runtime has Buffer:
 * the reference protocol's record search scans every byte it receives, and the loop below was about
 * a sixth of a legacy server's time at 16 KiB (bench --profile).
 */
export function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  if (NativeBuffer) {
    if (from > hay.length - needle.length) return -1;
    return NativeBuffer.from(hay.buffer, hay.byteOffset, hay.length).indexOf(needle, from);
  }
  const first = needle[0];
  const last = hay.length - needle.length;
  for (let i = from; i <= last; i++) {
    if (hay[i] !== first) continue;
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/**
 * An append-only byte buffer with a hard capacity: the capacity is checked before bytes are copied,
 * so a peer can never make it grow past the bound.
 */
const NO_BYTES = new Uint8Array(0);

export class ByteQueue {
  /** Empty until bytes wait (and again once they have gone: release()), so an idle owner holds none. */
  private buf: Uint8Array = NO_BYTES;
  private start = 0;
  private end = 0;
  readonly capacity: number;
  private readonly initial: number;

  constructor(capacity: number, initial = 4096) {
    this.capacity = capacity;
    this.initial = Math.min(initial, capacity);
  }

  get length(): number {
    return this.end - this.start;
  }

  /** Appends bytes; returns false (appending nothing) if that would exceed the capacity. */
  push(chunk: Uint8Array): boolean {
    const len = this.length;
    if (len + chunk.length > this.capacity) return false;
    if (this.end + chunk.length > this.buf.length) {
      if (len + chunk.length <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let size = Math.max(this.buf.length, this.initial, 1);
        while (size < len + chunk.length) size *= 2;
        const next = new Uint8Array(Math.min(size, this.capacity));
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.start = 0;
      this.end = len;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
    return true;
  }

  /**
   * Gives the buffer back if nothing waits in it: owners call it when a read has been processed, so
   * that memory is held only while bytes are partly received (an idle session holds none). The next
   * push allocates again, which costs one allocation per read that ends mid-record.
   */
  release(): void {
    if (this.start === this.end) this.buf = NO_BYTES;
  }

  /** A view of the buffered bytes; valid until the next push or consume. */
  view(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }

  /** Removes and returns a copy of the first n bytes. */
  take(n: number): Uint8Array {
    if (n > this.length) throw new RangeError("take past end");
    const out = this.buf.slice(this.start, this.start + n);
    this.consume(n);
    return out;
  }

  consume(n: number): void {
    this.start += n;
    if (this.start === this.end) this.start = this.end = 0;
  }

  clear(): void {
    this.start = this.end = 0;
  }
}

/**
 * Feeds a chunk into a bounded inbox no faster than `drain` empties it: each piece is sized to fit
 * before it is copied, and a full inbox that `drain` cannot shrink is an error (`full()`), never growth.
 * An inbox left empty gives its buffer back (release()).
 */
export function feedBounded(inbox: ByteQueue, chunk: Uint8Array, drain: () => void, full: () => Error): void {
  let rest = chunk;
  while (rest.length > 0) {
    const room = inbox.capacity - inbox.length;
    if (room === 0) throw full();
    const piece = rest.subarray(0, room);
    rest = rest.subarray(piece.length);
    inbox.push(piece);
    drain();
  }
  inbox.release();
}
