/**
 * v2 transport framing over one Noise CipherState per direction.
 *
 * The writer packs the chunks of every message handed to one seal() call (the driver gathers the
 * messages of one tick) into as few frames as fit, so small messages share one AEAD operation and one
 * write. The reader accepts any packing, checks each frame's tag before it looks at a single chunk,
 * and bounds what it buffers: one frame of ciphertext and one message of plaintext.
 */
import { ByteQueue, readU16BE } from "../bytes.ts";
import { NstpError, ProtocolError, TooLargeError } from "../errors.ts";
import type { Output } from "../events.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import {
  CHUNK_CLOSE,
  CHUNK_HEADER_SIZE,
  CHUNK_LAST,
  CHUNK_MORE,
  LENGTH_SIZE,
  MAX_FRAME_CIPHERTEXT,
  MAX_FRAME_PLAINTEXT,
  MIN_FRAME_CIPHERTEXT,
  REKEY_INTERVAL,
} from "./wire.ts";

const EMPTY = new Uint8Array(0);

export class FrameWriter {
  private readonly cipher: CipherState;
  private readonly rekeyInterval: number;
  private readonly scratch = new Uint8Array(MAX_FRAME_PLAINTEXT);
  private closed = false;

  constructor(cipher: CipherState, rekeyInterval = REKEY_INTERVAL) {
    this.cipher = cipher;
    this.rekeyInterval = rekeyInterval;
  }

  /** Frames sealed so far in this direction. */
  get frames(): number {
    return this.cipher.n;
  }

  /** Seals `messages` (then a close chunk if asked) into frames; returns the bytes to send. */
  seal(messages: readonly Uint8Array[], close = false): Uint8Array {
    if (this.closed) throw new NstpError("ERR_CLOSED", "session closed");
    const frames: Uint8Array[] = [];
    let fill = 0;
    const flush = () => {
      frames.push(this.sealFrame(this.scratch.subarray(0, fill)));
      fill = 0;
    };
    for (const m of messages) {
      let off = 0;
      do {
        let room = MAX_FRAME_PLAINTEXT - fill - CHUNK_HEADER_SIZE;
        // Never start a chunk that cannot carry a byte of a non-empty remainder.
        if (room < 0 || (room === 0 && off < m.length)) {
          flush();
          room = MAX_FRAME_PLAINTEXT - CHUNK_HEADER_SIZE;
        }
        const take = Math.min(m.length - off, room);
        const last = off + take === m.length;
        this.scratch[fill] = last ? CHUNK_LAST : CHUNK_MORE;
        this.scratch[fill + 1] = take >>> 8;
        this.scratch[fill + 2] = take & 0xff;
        this.scratch.set(m.subarray(off, off + take), fill + CHUNK_HEADER_SIZE);
        fill += CHUNK_HEADER_SIZE + take;
        off += take;
      } while (off < m.length);
    }
    if (close) {
      if (MAX_FRAME_PLAINTEXT - fill < CHUNK_HEADER_SIZE) flush();
      this.scratch.fill(0, fill, fill + CHUNK_HEADER_SIZE);
      this.scratch[fill] = CHUNK_CLOSE;
      fill += CHUNK_HEADER_SIZE;
      this.closed = true;
    }
    if (fill > 0) flush();
    return frames.length === 1 ? frames[0]! : joinFrames(frames);
  }

  private sealFrame(plaintext: Uint8Array): Uint8Array {
    const ct = this.cipher.encryptWithAd(EMPTY, plaintext);
    if (this.cipher.n % this.rekeyInterval === 0) this.cipher.rekey();
    const out = new Uint8Array(LENGTH_SIZE + ct.length);
    out[0] = ct.length >>> 8;
    out[1] = ct.length & 0xff;
    out.set(ct, LENGTH_SIZE);
    return out;
  }
}

function joinFrames(frames: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const f of frames) len += f.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const f of frames) {
    out.set(f, off);
    off += f.length;
  }
  return out;
}

export class FrameReader {
  private readonly cipher: CipherState;
  private readonly rekeyInterval: number;
  readonly maxMessageSize: number;
  /** The partial frame at the end of the last read; never more than one frame. */
  private readonly partial = new ByteQueue(LENGTH_SIZE + MAX_FRAME_CIPHERTEXT);
  /** Chunks of a message still incomplete, and their total size. */
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  private closedByPeer = false;

  constructor(cipher: CipherState, maxMessageSize: number, rekeyInterval = REKEY_INTERVAL) {
    this.cipher = cipher;
    this.maxMessageSize = maxMessageSize;
    this.rekeyInterval = rekeyInterval;
  }

  /** True while a frame or a multi-frame message is partly received. */
  get hasPartialInput(): boolean {
    return this.partial.length > 0 || this.parts.length > 0;
  }

  get closed(): boolean {
    return this.closedByPeer;
  }

  /** Reads frames from `chunk`; complete frames are decrypted straight from it, without a copy. */
  receive(chunk: Uint8Array, out: Output[]): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.closedByPeer) throw new ProtocolError("data after close");
      if (this.partial.length > 0 || chunk.length - off < LENGTH_SIZE) {
        off += this.fillPartial(chunk, off, out);
        continue;
      }
      const len = readU16BE(chunk, off);
      checkFrameLength(len);
      if (chunk.length - off < LENGTH_SIZE + len) {
        off += this.fillPartial(chunk, off, out);
        continue;
      }
      this.openFrame(chunk.subarray(off + LENGTH_SIZE, off + LENGTH_SIZE + len), out);
      off += LENGTH_SIZE + len;
    }
  }

  /** Copies what the partial frame still needs (and no more); returns the bytes taken. */
  private fillPartial(chunk: Uint8Array, off: number, out: Output[]): number {
    const have = this.partial.length;
    if (have < LENGTH_SIZE) {
      const take = Math.min(LENGTH_SIZE - have, chunk.length - off);
      this.partial.push(chunk.subarray(off, off + take));
      // The length prefix is checked before any of the frame's body is buffered.
      if (this.partial.length === LENGTH_SIZE) checkFrameLength(readU16BE(this.partial.view(), 0));
      return take;
    }
    const total = LENGTH_SIZE + readU16BE(this.partial.view(), 0);
    const take = Math.min(total - have, chunk.length - off);
    this.partial.push(chunk.subarray(off, off + take));
    if (this.partial.length === total) {
      this.openFrame(this.partial.view().subarray(LENGTH_SIZE), out);
      this.partial.clear();
    }
    return take;
  }

  private openFrame(ciphertext: Uint8Array, out: Output[]): void {
    // Tag first: no chunk of a frame is looked at before the whole frame authenticated.
    const pt = this.cipher.decryptWithAd(EMPTY, ciphertext);
    if (this.cipher.n % this.rekeyInterval === 0) this.cipher.rekey();
    let off = 0;
    while (off < pt.length) {
      if (this.closedByPeer) throw new ProtocolError("chunk after close");
      if (pt.length - off < CHUNK_HEADER_SIZE) throw new ProtocolError("truncated chunk header");
      const type = pt[off]!;
      const len = readU16BE(pt, off + 1);
      const start = off + CHUNK_HEADER_SIZE;
      if (pt.length - start < len) throw new ProtocolError("chunk longer than its frame");
      off = start + len;
      if (type === CHUNK_CLOSE) {
        if (len !== 0 || this.parts.length > 0) throw new ProtocolError("close inside a message");
        this.closedByPeer = true;
        out.push({ type: "closed" });
        continue;
      }
      if (type !== CHUNK_LAST && type !== CHUNK_MORE) throw new ProtocolError(`unknown chunk type ${type}`);
      if (this.partBytes + len > this.maxMessageSize) throw new TooLargeError(`message exceeds ${this.maxMessageSize} bytes`);
      const body = pt.subarray(start, off);
      if (type === CHUNK_MORE) {
        this.parts.push(body);
        this.partBytes += len;
      } else if (this.parts.length === 0) {
        out.push({ type: "message", data: body });
      } else {
        this.parts.push(body);
        out.push({ type: "message", data: joinFrames(this.parts) });
        this.parts = [];
        this.partBytes = 0;
      }
    }
  }
}

function checkFrameLength(len: number): void {
  if (len < MIN_FRAME_CIPHERTEXT) throw new ProtocolError(`frame of ${len} bytes is shorter than one chunk`);
}
